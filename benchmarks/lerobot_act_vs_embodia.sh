#!/usr/bin/env bash
# LeRobot's ACT (`lerobot-train`) against embodia's policy (`embodia train`), same tabletop dataset, same
# CPU time: both train for the same wall-clock budget at the same time, each pinned to its own core with
# one thread (taskset -c 0 / -c 1, OMP_NUM_THREADS=1 MKL_NUM_THREADS=1, LeRobot with --num_workers=0).
#
#     EMBODIA_LEROBOT_ENV=/path/to/lerobot-venv benchmarks/lerobot_act_vs_embodia.sh [OUT] [STAGE...]
#     benchmarks/lerobot_act_vs_embodia.sh --help
#
# OUT defaults to embodia_runs/lerobot_act_vs_embodia (relative to the current folder). STAGEs run in the
# order given (default: all of them, in this order); each can be run alone on an OUT the earlier ones
# filled:
#
#   record     embodia record pick,push,stack,touch, EPISODES episodes (default 450), 2 envs, 96 px,
#              seed 2000000, into OUT/data. ~10 min on the 2-core CPU (~0.77 episodes/s).
#   check      `embodia dataset info` and `embodia doctor data` on OUT/data (OUT/dataset_info.txt,
#              OUT/doctor_data.txt). Under a minute.
#   calibrate  40 ACT steps with lerobot-train (batch 8, pinned to core 0, one thread) while an embodia run
#              loads core 1 as in the real run; the seconds per step (update + data, from the log) and the
#              start-up cost give ACT_STEPS, what fits MINUTES, written to OUT/act_steps.txt. ~3 min.
#   train      start both trainings in the background (nohup): ACT for ACT_STEPS steps (default: the
#              calibrated count) into OUT/act, log OUT/act.log; embodia with --minutes MINUTES (default 30)
#              into OUT/embodia, log OUT/embodia.log. Writes the commands to OUT/experiment.md and returns.
#   wait       poll until both trainings end (MINUTES + a few), then append their start/end times, wall
#              times, exit codes, last log lines and checkpoint folders to OUT/experiment.md.
#
# Environment: EMBODIA_LEROBOT_ENV (required for calibrate/train: a venv with LeRobot 0.4, `lerobot-train`
# in its bin/), EPISODES, MINUTES, ACT_STEPS, ACT_BATCH (8), EMBODIA_PRESET (base: the base's
# architecture, the tabletop recipe for one CPU core, from scratch), ACT_CORE (0), EMBODIA_CORE (1).
# embodia is `embodia` on PATH, else .venv/bin/embodia of this repository.
#
# ACT keeps LeRobot's defaults (chunk_size 100, n_action_steps 100, ResNet-18) except that the backbone
# starts from random weights (--policy.pretrained_backbone_weights=null: no download), so neither policy
# starts from pretrained weights.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    # The header comment is the help.
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 0
fi
OUT="${1:-embodia_runs/lerobot_act_vs_embodia}"
shift || true
STAGES=("$@")
[ ${#STAGES[@]} -eq 0 ] && STAGES=(record check calibrate train wait)
for st in "${STAGES[@]}"; do  # refuse a typo before any stage runs
    case "$st" in
        record | check | calibrate | train | wait) ;;
        *) echo "unknown stage '$st' (record, check, calibrate, train, wait)" >&2; exit 2 ;;
    esac
done

EPISODES="${EPISODES:-450}"
MINUTES="${MINUTES:-30}"
ACT_BATCH="${ACT_BATCH:-8}"
EMBODIA_PRESET="${EMBODIA_PRESET:-base}"
ACT_CORE="${ACT_CORE:-0}"
EMBODIA_CORE="${EMBODIA_CORE:-1}"
CALIB_STEPS=40

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
DATA="$OUT/data"
MD="$OUT/experiment.md"

if command -v embodia >/dev/null 2>&1; then
    EMBODIA="$(command -v embodia)"
elif [ -x "$REPO/.venv/bin/embodia" ]; then
    EMBODIA="$REPO/.venv/bin/embodia"
else
    echo "embodia not found: put it on PATH or create $REPO/.venv" >&2
    exit 1
fi

lerobot_train() {
    : "${EMBODIA_LEROBOT_ENV:?set EMBODIA_LEROBOT_ENV to the LeRobot venv folder}"
    echo "$EMBODIA_LEROBOT_ENV/bin/lerobot-train"
}

export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMEXPR_NUM_THREADS=1
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

act_args() {  # act_args STEPS OUTPUT_DIR LOG_FREQ
    echo --policy.type=act --policy.device=cpu --policy.push_to_hub=false \
        --policy.pretrained_backbone_weights=null \
        --dataset.root="$DATA" --dataset.repo_id=local/tabletop --dataset.video_backend=pyav \
        --batch_size="$ACT_BATCH" --num_workers=0 --wandb.enable=false \
        --output_dir="$2" --steps="$1" --save_freq="$1" --log_freq="$3"
}

embodia_train_cmd() {  # embodia_train_cmd OUT_DIR
    echo taskset -c "$EMBODIA_CORE" "$EMBODIA" train "$DATA" --preset "$EMBODIA_PRESET" --device cpu \
        --minutes "$MINUTES" --cache-dir "$OUT/frame_cache" --out "$1"
}

stage_record() {
    local t0 t1
    t0=$(date +%s)
    "$EMBODIA" record pick,push,stack,touch --episodes "$EPISODES" --num-envs 2 --image-size 96 \
        --seed 2000000 --out "$DATA" 2>&1 | tee "$OUT/record.log"
    t1=$(date +%s)
    echo "record: $EPISODES episodes requested, $((t1 - t0)) s (kept: see the log's 'recorded N episodes')" | tee "$OUT/record_time.txt"
}

stage_check() {
    "$EMBODIA" dataset info "$DATA" 2>&1 | tee "$OUT/dataset_info.txt"
    "$EMBODIA" doctor data "$DATA" 2>&1 | tee "$OUT/doctor_data.txt"
}

stage_calibrate() {
    local lt load_pid t0 t1
    lt="$(lerobot_train)"
    rm -rf "$OUT/calib_act" "$OUT/calib_embodia"
    # Load the other core the way the real run will, so the measured rate includes that contention.
    # shellcheck disable=SC2046
    $(embodia_train_cmd "$OUT/calib_embodia") >"$OUT/calib_embodia.log" 2>&1 &
    load_pid=$!
    sleep 20
    t0=$(date +%s.%N)
    # shellcheck disable=SC2046
    taskset -c "$ACT_CORE" "$lt" $(act_args "$CALIB_STEPS" "$OUT/calib_act" 10) 2>&1 | tee "$OUT/calib_act.log"
    t1=$(date +%s.%N)
    kill "$load_pid" 2>/dev/null || true
    wait "$load_pid" 2>/dev/null || true
    # updt_s/data_s are means over each log window; the first window carries one-off costs, so skip it.
    python3 - "$OUT/calib_act.log" "$t0" "$t1" "$CALIB_STEPS" "$MINUTES" "$OUT/act_steps.txt" <<'EOF'
import re, sys
log, t0, t1, n, minutes, out = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
rows = [(float(u), float(d)) for u, d in re.findall(r"updt_s:([0-9.]+)\s+data_s:([0-9.]+)", open(log).read())]
if len(rows) < 2:
    sys.exit(f"no ACT step timings in {log}")
steady = rows[1:]
per_step = sum(u + d for u, d in steady) / len(steady)
wall = t1 - t0
overhead = max(0.0, wall - n * per_step)  # start-up (dataset, model) and the final save
steps = int((60 * minutes - overhead) / per_step)
msg = (f"ACT: {per_step:.3f} s/step (updt+data, steps after the first log window), wall {wall:.0f} s for "
       f"{n} steps, overhead {overhead:.0f} s -> {steps} steps for {minutes:g} min")
print(msg)
open(out, "w").write(f"{steps}\n# {msg}\n")
EOF
}

stage_train() {
    local lt steps act_cmd emb_cmd
    lt="$(lerobot_train)"
    steps="${ACT_STEPS:-$(head -n1 "$OUT/act_steps.txt" 2>/dev/null || true)}"
    [ -n "$steps" ] || { echo "no ACT_STEPS and no $OUT/act_steps.txt: run calibrate first" >&2; exit 1; }
    if [ -e "$OUT/act" ] || [ -e "$OUT/embodia" ]; then
        echo "$OUT/act or $OUT/embodia exists: move it away first" >&2
        exit 1
    fi
    rm -f "$OUT"/act.{start,end,rc} "$OUT"/embodia.{start,end,rc}
    # GNU time records each job's wall and CPU seconds (user, system): the comparison is in CPU time.
    act_cmd="/usr/bin/time -o '$OUT/act.cpu' -f '%e %U %S' taskset -c $ACT_CORE $lt $(act_args "$steps" "$OUT/act" 100)"
    emb_cmd="/usr/bin/time -o '$OUT/embodia.cpu' -f '%e %U %S' $(embodia_train_cmd "$OUT/embodia")"
    # Each job stamps its own start/end (epoch seconds) and exit code beside its log.
    nohup bash -c "date +%s >'$OUT/act.start'; $act_cmd >'$OUT/act.log' 2>&1; echo \$? >'$OUT/act.rc'; date +%s >'$OUT/act.end'" \
        >/dev/null 2>&1 &
    echo $! >"$OUT/act.pid"
    nohup bash -c "date +%s >'$OUT/embodia.start'; $emb_cmd >'$OUT/embodia.log' 2>&1; echo \$? >'$OUT/embodia.rc'; date +%s >'$OUT/embodia.end'" \
        >/dev/null 2>&1 &
    echo $! >"$OUT/embodia.pid"
    {
        echo "# LeRobot ACT vs embodia, $MINUTES min of one CPU core each, concurrently"
        echo
        echo "Started $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname), $(nproc --all) cores."
        echo "Environment: OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 HF_HUB_OFFLINE=1"
        echo
        echo "Dataset: $DATA"
        [ -f "$OUT/record_time.txt" ] && echo "Recording: $(cat "$OUT/record_time.txt")"
        [ -f "$OUT/act_steps.txt" ] && echo "Calibration: $(sed -n 2p "$OUT/act_steps.txt" | sed 's/^# //')"
        echo
        echo "ACT (log act.log):"
        echo
        echo '```'
        echo "$act_cmd"
        echo '```'
        echo
        echo "embodia (log embodia.log):"
        echo
        echo '```'
        echo "$emb_cmd"
        echo '```'
        echo
    } >"$MD"
    echo "started ACT ($steps steps) and embodia ($MINUTES min); logs $OUT/act.log, $OUT/embodia.log"
}

stamp() { date -u -d "@$1" '+%Y-%m-%d %H:%M:%S UTC'; }

stage_wait() {
    while [ ! -f "$OUT/act.end" ] || [ ! -f "$OUT/embodia.end" ]; do
        sleep 60
        echo "$(date '+%H:%M:%S') act: $(tail -c 2000 "$OUT/act.log" 2>/dev/null | tr '\r' '\n' | grep -a 'Training' | tail -n1)"
        echo "$(date '+%H:%M:%S') embodia: $(tail -c 2000 "$OUT/embodia.log" 2>/dev/null | tr '\r' '\n' | grep -a . | tail -n1)"
    done
    {
        echo "## Results"
        echo
        echo "| run | start | end | wall (s) | exit |"
        echo "|---|---|---|---|---|"
        for r in act embodia; do
            s=$(cat "$OUT/$r.start"); e=$(cat "$OUT/$r.end")
            echo "| $r | $(stamp "$s") | $(stamp "$e") | $((e - s)) | $(cat "$OUT/$r.rc") |"
        done
        echo
        echo "ACT, last log lines:"
        echo
        echo '```'
        tr '\r' '\n' <"$OUT/act.log" | grep -a 'step:' | tail -n 3 || true
        echo '```'
        echo
        echo "ACT checkpoints: $(ls -d "$OUT"/act/checkpoints/*/pretrained_model 2>/dev/null | tr '\n' ' ')"
        echo
        echo "embodia, last log lines:"
        echo
        echo '```'
        tr '\r' '\n' <"$OUT/embodia.log" | grep -a . | tail -n 6 || true
        echo '```'
        echo
        echo "embodia, last metrics: $(tail -n1 "$OUT/embodia/metrics.jsonl" 2>/dev/null || echo none)"
        echo
        echo "embodia policy: $OUT/embodia/final"
    } >>"$MD"
    cat "$MD"
}

for st in "${STAGES[@]}"; do
    "stage_$st"
done
