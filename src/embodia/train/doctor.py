"""`embodia doctor train`: the training bugs that make a policy "converge" and then fail on the robot.

Three probes, cheapest first:
- preflight (seconds, runs at the start of every `embodia train`): dimensions, units and embodiment
  against the checkpoint, camera keys and their order, normalisation stats present, sane and agreeing
  with the data, chunk size vs episode length, the LR schedule over the requested steps, dataset fps vs
  the environment's, idle starts in the data;
- overfit probe (a minute): a small copy of the model trained on one episode must drive its loss down
  >= 10x; if it cannot, nothing downstream will work, and the likely causes are listed;
- open-loop replay (needs a checkpoint): predicted chunks vs the recorded actions on held-out
  episodes, per joint and per chunk step.
`diagnose` then reads the findings together with closed-loop results: when the open-loop error is low
but success is low, the findings that explain such gaps (idle starts, normalisation, execution horizon,
fps) are named first.

Every finding has a check name, a severity (WARN / FAIL), what was seen, and how to fix it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embodia.data.doctor_checks import IDLE_SECONDS, robust_range
from embodia.data.doctor_motion import idle_frames
from embodia.data.reader import LeRobotDataset
from embodia.data.stats import aggregate, vector_stats
from embodia.policy.inputs import to_delta
from embodia.robots.spec import ACTION, OBS_STATE
from embodia.train.config import TINY_MODEL, TrainConfig, lr_at

ENV_FPS = {"so101": 30.0, "so101_ee": 30.0, "sawyer": 80.0}


@dataclass
class Finding:
    check: str
    severity: str  # "WARN" or "FAIL"
    message: str
    fix: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------- preflight
def preflight(cfg: TrainConfig, checkpoint=None, env_fps: float | None = None) -> list[Finding]:
    """Static checks of a training configuration (and the checkpoint it fine-tunes or is judged with)."""
    from embodia.train.batches import embodiment_of

    findings: list[Finding] = []
    findings += check_schedule(cfg)
    for root in cfg.datasets:
        ds = LeRobotDataset.open(root)
        name = str(root)
        for key in (OBS_STATE, ACTION):
            if key not in ds.features:
                findings.append(
                    Finding("features", "FAIL", f"{name}: no {key!r} feature", "record state and action")
                )
        if any(f.severity == "FAIL" and f.check == "features" for f in findings):
            continue
        state_dim = int(np.prod(ds.features[OBS_STATE]["shape"]))
        action_dim = int(np.prod(ds.features[ACTION]["shape"]))
        m = cfg.model
        if state_dim > m.max_state_dim or action_dim > m.max_action_dim:
            findings.append(Finding("dimensions", "FAIL", f"{name}: state {state_dim} / action {action_dim} "
                                    f"exceed the model's {m.max_state_dim} / {m.max_action_dim}",
                                    "raise max_state_dim / max_action_dim"))  # fmt: skip
        actions = _column(ds, ACTION)
        findings += check_units(ds, name, actions)
        findings += check_stats(ds, name, actions)
        findings += check_chunking(ds, name, cfg)
        findings += check_idle_starts(ds, name, actions)
        emb = embodiment_of(ds.robot_type, state_dim, action_dim)
        fps_env = env_fps or ENV_FPS.get(emb)
        if fps_env and abs(ds.fps - fps_env) / fps_env > 0.05:
            findings.append(Finding("fps", "FAIL", f"{name}: recorded at {ds.fps} fps but the {emb} environment "
                                    f"runs at {fps_env} fps: every action chunk plays back at the wrong speed",
                                    "re-record at the environment's rate or resample the dataset"))  # fmt: skip
        if checkpoint is not None:
            findings += check_against_checkpoint(ds, name, emb, state_dim, action_dim, actions, checkpoint)
    return findings


def check_schedule(cfg: TrainConfig) -> list[Finding]:
    lrs = np.array([lr_at(cfg, s) for s in range(cfg.steps)])
    near_zero = float(np.mean(lrs < 0.01 * cfg.lr))
    if near_zero > 0.2:
        first = int(np.argmax(lrs < 0.01 * cfg.lr))
        return [Finding("lr_schedule", "FAIL", f"the learning rate is < 1% of its peak for {near_zero:.0%} of "
                        f"the {cfg.steps} steps (from step {first}): those steps barely train",
                        "let the schedule decay over the run (decay_steps = steps, the default)",
                        {"first_near_zero_step": first, "fraction": near_zero})]  # fmt: skip
    return []


def check_units(ds: LeRobotDataset, name: str, actions: np.ndarray) -> list[Finding]:
    """An SO-101 dataset in LeRobot's degrees or -100..100 instead of radians (embodia.data.units)."""
    from embodia.data import units

    conv = units.detect_from(ds.robot_type, ds.features, ds.info, [_column(ds, OBS_STATE), actions])
    if not conv.lerobot:
        return []
    need = "--calibration CAL.json" if conv.name == units.RANGE else "[--calibration CAL.json]"
    return [Finding("units", "FAIL" if conv.confidence != "low" else "WARN",
                    f"{name}: in LeRobot's units ({conv.describe()}), not radians: the policy would learn "
                    "degrees or percentages as radians", f"{units.COMMAND} {name} --out OUT {need}",
                    {"convention": conv.name, "confidence": conv.confidence})]  # fmt: skip


def check_stats(ds: LeRobotDataset, name: str, actions: np.ndarray) -> list[Finding]:
    out = []
    stats = ds.stats
    for key in (OBS_STATE, ACTION):
        if key not in stats:
            out.append(Finding("norm_stats", "FAIL", f"{name}: meta/stats.json has no {key!r}: the policy would "
                               "run unnormalised", "embodia dataset recompute-stats"))  # fmt: skip
    if out:
        return out
    a = stats[ACTION]
    q01, q99 = np.asarray(a["q01"], float), np.asarray(a["q99"], float)
    bad = np.flatnonzero(q99 < q01)
    if len(bad):
        out.append(Finding("norm_stats", "FAIL", f"{name}: action q01 > q99 on dims {bad.tolist()}",
                           "embodia dataset recompute-stats"))  # fmt: skip
    std = np.asarray(stats[OBS_STATE]["std"], float)
    if np.any(std < 1e-6):
        out.append(Finding("norm_stats", "WARN", f"{name}: state dims {np.flatnonzero(std < 1e-6).tolist()} never "
                           "vary (std 0): identity normalisation", "fine if that joint is really fixed"))  # fmt: skip
    # stats.json must describe the data it ships with. Recompute it the way LeRobot (and our writer)
    # does, per episode then aggregated (quantiles as count-weighted means), so clean data agrees.
    per_ep = [vector_stats(actions[e["dataset_from_index"] : e["dataset_to_index"]]) for e in ds.episodes]
    true = aggregate(per_ep)
    span = np.maximum(true["q99"] - true["q01"], 1e-6)
    drift = np.maximum(np.abs(q01 - true["q01"]), np.abs(q99 - true["q99"])) / span
    if np.any(drift > 0.1):
        dims = np.flatnonzero(drift > 0.1).tolist()
        out.append(Finding("norm_stats", "FAIL", f"{name}: meta/stats.json disagrees with the data on action dims "
                           f"{dims} (q01/q99 off by up to {drift.max():.0%} of the range): actions would be "
                           "normalised with the wrong scale", "embodia dataset recompute-stats",
                           {"dims": dims, "max_relative_error": float(drift.max())}))  # fmt: skip
    return out


def check_chunking(ds: LeRobotDataset, name: str, cfg: TrainConfig) -> list[Finding]:
    lengths = np.array([e["length"] for e in ds.episodes])
    h = cfg.model.chunk_size
    short = int(np.sum(lengths < 2 * h))
    if short / len(lengths) > 0.1:
        return [Finding("chunk_size", "WARN", f"{name}: {short} of {len(lengths)} episodes are shorter than 2 x "
                        f"chunk_size ({2 * h} frames): most chunks are padding", "lower chunk_size")]  # fmt: skip
    horizon_s = cfg.model.n_action_steps / ds.fps
    if horizon_s > 1.0:
        return [Finding("chunk_size", "WARN", f"{name}: the policy executes {cfg.model.n_action_steps} actions "
                        f"({horizon_s:.1f} s) before looking again", "lower n_action_steps")]  # fmt: skip
    return []


def check_idle_starts(ds: LeRobotDataset, name: str, actions: np.ndarray) -> list[Finding]:
    """Episodes that start with more than IDLE_SECONDS without motion, by the data doctor's idle test
    (`embodia doctor data`'s actions.idle_ends, whose --fix trims exactly these): neither action nor
    state moves faster than IDLE_SPEED ranges per second, ranges taken over the whole dataset."""
    states = _column(ds, OBS_STATE)
    a_range, s_range = robust_range([actions]), robust_range([states])
    idle = []
    for ep in ds.episodes:
        rows = slice(ep["dataset_from_index"], ep["dataset_to_index"])
        start, _ = idle_frames(actions[rows], states[rows], a_range, s_range, ds.fps)
        if start / ds.fps > IDLE_SECONDS:
            idle.append({"episode": ep["episode_index"], "seconds": round(start / ds.fps, 2)})
    if len(idle) / max(1, ds.num_episodes) > 0.05:
        return [Finding("idle_start", "FAIL" if len(idle) / ds.num_episodes > 0.3 else "WARN",
                        f"{name}: {len(idle)} of {ds.num_episodes} episodes start with > {IDLE_SECONDS} s of no motion: "
                        "the policy learns that standing still is right at the start, and stalls",
                        "trim idle starts (embodia doctor data --fix OUT)", {"episodes": idle[:20]})]  # fmt: skip
    return []


def check_against_checkpoint(ds, name, emb, state_dim, action_dim, actions, policy) -> list[Finding]:
    out = []
    if emb not in policy.embodiments:
        return [Finding("embodiment", "FAIL", f"{name}: embodiment {emb!r} is unknown to the checkpoint "
                        f"({sorted(policy.embodiments)})", "train it as a new embodiment")]  # fmt: skip
    info = policy.embodiments[emb]
    if (info.state_dim, info.action_dim) != (state_dim, action_dim):
        out.append(Finding("dimensions", "FAIL", f"{name}: state/action dims ({state_dim}, {action_dim}) but the "
                           f"checkpoint's {emb} has ({info.state_dim}, {info.action_dim})",
                           "use a dataset of the same robot/action space"))  # fmt: skip
        return out
    cams = list(ds.camera_keys)
    if cams != info.cameras:
        if sorted(cams) == sorted(info.cameras):
            msg = f"{name}: cameras {cams} are in a different order than the checkpoint's {info.cameras}"
        else:
            msg = f"{name}: cameras {cams} do not match the checkpoint's {info.cameras}"
        rename = dict(zip(cams, info.cameras, strict=False)) if len(cams) == len(info.cameras) else {}
        out.append(Finding("camera_keys", "FAIL", msg + ": each camera would feed the other's slot",
                           f"rename/reorder to match (suggested map by position: {rename})", {"rename": rename}))  # fmt: skip
    if info.normalizer is None:  # a LeRobot policy: it normalises inside its own processors
        return out + _check_action_range(name, actions, policy.action_range())
    # Units / normalisation: the data normalised with the checkpoint's stats should mostly lie in [-1, 1].
    targets = torch.from_numpy(actions).double()
    if info.delta_dims:  # the checkpoint predicts actions relative to the state: compare like with like
        state = torch.from_numpy(_column(ds, OBS_STATE))
        targets = to_delta(info, targets[:, None], state)[:, 0]
    normed = info.normalizer.normalize_action(targets).numpy()
    outside = float(np.mean(np.abs(normed) > 1.5))
    if outside > 0.1:
        ratio = np.median(np.abs(actions), 0) / np.maximum(np.abs(info.normalizer.action_high), 1e-6)
        units = (
            " (the data looks ~57x larger: degrees vs radians?)"
            if np.any((ratio > 20) & (ratio < 120))
            else ""
        )
        out.append(Finding("units", "FAIL", f"{name}: {outside:.0%} of actions fall outside [-1.5, 1.5] after the "
                           f"checkpoint's normalisation{units}", "check units and calibration; recompute stats",
                           {"fraction_outside": outside}))  # fmt: skip
    return out


def _check_action_range(name: str, actions: np.ndarray, bounds) -> list[Finding]:
    """The data against the range of actions the policy was trained on (its own statistics, in the
    world's units), widened by a quarter of its span on each side."""
    if bounds is None:
        return []
    low, high = (np.asarray(b, np.float64) for b in bounds)
    margin = 0.25 * np.maximum(high - low, 1e-6)
    outside = float(np.mean((actions < low - margin) | (actions > high + margin)))
    if outside <= 0.1:
        return []
    return [Finding("units", "FAIL", f"{name}: {outside:.0%} of action values fall outside the range the policy "
                    "was trained on (its saved statistics)", "check units and calibration (embodia doctor data)",
                    {"fraction_outside": outside})]  # fmt: skip


def _column(ds: LeRobotDataset, key: str) -> np.ndarray:
    return np.concatenate([ds.episode_data(e["episode_index"])[key] for e in ds.episodes]).astype(np.float64)


# ------------------------------------------------------------------------------------ overfit probe
# The probe's "small copy": the L1 head (see overfit_probe) on a narrow backbone at 48 px.
PROBE_MODEL = replace(TINY_MODEL, head="l1", d_model=64, n_heads=4, prefix_layers=2, expert_layers=2,
                      cnn_channels=(16, 32, 64), image_size=48)  # fmt: skip


def train_on_one_episode(
    dataset: str | Path, work: Path, steps: int = 400, seed: int = 0, head: str = "l1", on_log=None
) -> tuple[Path, Path]:
    """Train the probe-sized model (PROBE_MODEL, with `head`) on the first episode of `dataset` alone;
    returns (the one-episode dataset, the trained policy folder). Used by the overfit probe and by the
    one-episode overfit test."""
    from embodia.data import edit
    from embodia.train.loop import train

    ds = LeRobotDataset.open(dataset)
    one = work / "one_episode"
    if not one.exists():
        keep = [e["episode_index"] for e in ds.episodes][1:]
        edit.delete_episodes(dataset, keep, one)
    cfg = TrainConfig(datasets=[str(one)], steps=steps, batch_size=32, lr=3e-3, warmup_steps=20, log_every=10,
                      save_every=steps, ema_decay=0.0, augment=False, seed=seed, cache_dir=str(work / "cache"),
                      model=replace(PROBE_MODEL, head=head, embodiments=list(PROBE_MODEL.embodiments)))  # fmt: skip
    return one, train(cfg, work / "run", on_log=on_log)


def overfit_probe(
    dataset: str | Path, steps: int = 400, workdir: Path | None = None, seed: int = 0
) -> tuple[list[Finding], dict]:
    """Train a tiny model on one episode; the loss must fall >= 10x.

    The probe uses the L1 head: a flow-matching loss keeps a noise-dependent part until the model has
    learned the whole flow, so its drop in a short probe says little, while one-pass regression on a
    single episode must be memorised quickly by any working data -> model -> loss pipeline."""
    import tempfile

    work = Path(workdir or tempfile.mkdtemp(prefix="embodia-overfit-"))
    losses: list[float] = []
    train_on_one_episode(dataset, work, steps=steps, seed=seed, on_log=lambda r: losses.append(r["loss"]))
    first, last = losses[0], float(np.mean(losses[-2:]))
    ratio = first / max(last, 1e-12)
    evidence = {"first_loss": first, "final_loss": last, "ratio": ratio, "steps": steps}
    if ratio >= 10:
        return [], evidence
    return [Finding("overfit", "FAIL", f"a small model trained on one episode only reduced its loss {ratio:.1f}x "
                    f"({first:.3f} -> {last:.3f}) in {steps} steps; it should be >= 10x",
                    "likely causes: actions not normalised (check stats.json), all-identical actions (frozen "
                    "data), inputs that do not match the actions (misaligned timestamps), or a too-low LR",
                    evidence)], evidence  # fmt: skip


# --------------------------------------------------------------------------------- open-loop replay
@torch.inference_mode()
def open_loop_replay(policy, dataset: str | Path, episodes: list[int] | None = None, every: int = 4,
                     seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Predicted chunks vs the recorded actions: per-joint MAE and MAE per chunk step (normalised units,
    where 1.0 is half the q01..q99 range)."""
    ds = LeRobotDataset.open(dataset)
    info = policy.info
    chosen = episodes if episodes is not None else [e["episode_index"] for e in ds.episodes][-3:]
    h = policy.chunk_size
    errs = []
    gen = torch.Generator().manual_seed(seed)
    scale = _replay_scale(info, ds, chosen)
    for ep in chosen:
        data = ds.episode_data(ep)
        frames = {cam: ds.episode_frames(ep, cam) for cam in info.cameras}
        task = ds.tasks[int(data["task_index"][0])]
        n = len(data[ACTION])
        for t in range(0, n - h, every):
            obs = {cam: frames[cam][t] for cam in info.cameras}
            obs[OBS_STATE], obs["task"] = data[OBS_STATE][t], task
            pred = _replay_chunk(policy, obs, gen)
            true = data[ACTION][t : t + h]
            errs.append(np.abs(scale(pred) - scale(np.array(true, np.float64))))
    err = np.stack(errs)  # (N, H, d)
    names = info.action_names or [f"a{i}" for i in range(info.action_dim)]
    return {
        "episodes": chosen,
        "chunks": int(len(err)),
        "mae": float(err.mean()),
        "mae_per_joint": {n: float(v) for n, v in zip(names, err.mean((0, 1)), strict=False)},
        "mae_per_step": [float(v) for v in err.mean((0, 2))],
    }


def _replay_chunk(policy, obs: dict[str, Any], gen: torch.Generator) -> np.ndarray:
    """One chunk for `obs`: embodia's policy from noise drawn here; another ChunkPolicy (a LeRobot
    policy) from a noise seed drawn here, each chunk as a new episode of its own."""
    max_dim = getattr(policy.cfg, "max_action_dim", None)
    if max_dim is not None:
        noise = torch.randn(1, policy.chunk_size, max_dim, generator=gen)
        return policy.predict_chunk(obs, noise=noise)[0]
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    return policy.predict_chunk([obs], noise_seed=[seed], episodes=[(seed, 0)])[0]


def _replay_scale(info, ds: LeRobotDataset, episodes: list[int]):
    """Actions -> the units replay errors are reported in: the checkpoint's normalisation (1.0 is half
    its q01..q99 range), or for a policy that normalises inside itself, the same measured on the
    replayed episodes."""
    norm = info.normalizer
    if norm is not None:
        return lambda a: norm.normalize_action(torch.from_numpy(np.asarray(a, np.float64))).numpy()
    actions = np.concatenate([ds.episode_data(e)[ACTION] for e in episodes]).astype(np.float64)
    lo, hi = np.quantile(actions, [0.01, 0.99], axis=0)
    mid, half = (lo + hi) / 2, np.maximum((hi - lo) / 2, 1e-6)
    return lambda a: (np.asarray(a, np.float64) - mid) / half


def diagnose(findings: list[Finding], replay: dict | None, success: float | None) -> list[str]:
    """When the open-loop error is low but closed-loop success is low, say which findings explain it."""
    notes = []
    if replay is not None and success is not None and replay["mae"] < 0.15 and success < 0.5:
        notes.append(f"open-loop error is low (MAE {replay['mae']:.3f}) but closed-loop success is "
                     f"{success:.0%}: the model fits the data, so look at what differs when it acts")  # fmt: skip
        for f in findings:
            if f.check in ("idle_start", "norm_stats", "units", "fps", "camera_keys", "chunk_size"):
                notes.append(f"- {f.check}: {f.message}")
        per_step = replay["mae_per_step"]
        if len(per_step) > 2 and per_step[-1] > 2 * max(per_step[0], 1e-6):
            notes.append("- the error grows along the chunk: execute fewer actions per chunk (replan_every)")
        if len(notes) == 1:
            notes.append("- no data or config finding explains it: compounding error; add recovery data")
    return notes


def to_json(findings: list[Finding]) -> list[dict]:
    return [asdict(f) for f in findings]


def severity_rank(f: Finding) -> int:
    return {"FAIL": 0, "WARN": 1}.get(f.severity, 2)


def summary_line(findings: list[Finding]) -> str:
    n_fail = sum(f.severity == "FAIL" for f in findings)
    n_warn = sum(f.severity == "WARN" for f in findings)
    return "no findings" if not findings else f"{n_fail} FAIL, {n_warn} WARN"


# ------------------------------------------------------------------------------------ the full run
def run_doctor(
    cfg: TrainConfig,
    out_dir: Path,
    checkpoint=None,
    overfit: bool = True,
    suite: str | None = None,
    eval_episodes: int = 10,
    console=None,
) -> dict[str, Any]:
    """Preflight, then the overfit probe, open-loop replay and (with `suite`) a closed-loop check;
    writes doctor.json and report.html into `out_dir` and returns the JSON."""
    import json

    from embodia.runs import atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def say(text: str) -> None:
        if console is not None:
            console.print(text)

    say("preflight ...")
    findings = preflight(cfg, checkpoint=checkpoint)
    probe = replay = None
    success = None
    if overfit and cfg.datasets:
        say("overfit probe: a small model on one episode ...")
        probe_findings, probe = overfit_probe(cfg.datasets[0], workdir=out_dir / "overfit")
        findings += probe_findings
    if checkpoint is not None and cfg.datasets:
        say("open-loop replay on held-out episodes ...")
        replay = open_loop_replay(checkpoint, cfg.datasets[0])
        if suite:
            from embodia.eval.run import evaluate

            say(f"closed loop: {eval_episodes} episodes per task of {suite} ...")
            result = evaluate(checkpoint, suite=suite, episodes=eval_episodes, out_dir=out_dir / "eval",
                              videos_per_task=0, show_progress=console is not None)  # fmt: skip
            success = result.overall.rate
    notes = diagnose(findings, replay, success)
    findings = sorted(findings, key=severity_rank)
    doc = {
        "summary": summary_line(findings),
        "findings": to_json(findings),
        "overfit_probe": probe,
        "open_loop": replay,
        "closed_loop_success": success,
        "diagnosis": notes,
        "config": cfg.to_dict(),
    }
    atomic_write_text(out_dir / "doctor.json", json.dumps(doc, indent=2, default=str) + "\n")
    _report(doc, findings).save(out_dir / "report.html")
    return doc


def _report(doc: dict, findings: list[Finding]):
    from embodia.report.html import Report, new_figure

    rep = Report("embodia doctor train", doc["summary"])
    rep.heading("Findings")
    if findings:
        rep.table(
            [[f.severity, f.check, f.message, f.fix] for f in findings],
            ["severity", "check", "finding", "fix"],
        )
    else:
        rep.paragraph("No findings: the configuration, the data and the probes look right.")
    if doc["overfit_probe"]:
        p = doc["overfit_probe"]
        rep.heading("Overfit probe")
        rep.paragraph(f"Loss {p['first_loss']:.3f} -> {p['final_loss']:.3f} ({p['ratio']:.1f}x) in {p['steps']} "
                      "steps on one episode; a working pipeline gives >= 10x.")  # fmt: skip
    if doc["open_loop"]:
        r = doc["open_loop"]
        rep.heading("Open-loop replay")
        rep.paragraph(f"{r['chunks']} chunks from episodes {r['episodes']}: mean |error| {r['mae']:.3f} "
                      "(normalised units; 1.0 = half the q01..q99 range).")  # fmt: skip
        fig = new_figure(9, 3)
        ax1, ax2 = fig.subplots(1, 2)
        joints = list(r["mae_per_joint"])
        ax1.bar(joints, [r["mae_per_joint"][j] for j in joints])
        ax1.set_title("error per joint")
        ax1.tick_params(axis="x", labelrotation=45)
        ax2.plot(range(1, len(r["mae_per_step"]) + 1), r["mae_per_step"], marker="o")
        ax2.set_title("error vs step within the chunk")
        ax2.set_xlabel("chunk step")
        rep.figure(fig)
    if doc["closed_loop_success"] is not None:
        rep.heading("Closed loop")
        rep.paragraph(f"success {doc['closed_loop_success']:.0%}")
    if doc["diagnosis"]:
        rep.heading("Diagnosis")
        rep.preformatted("\n".join(doc["diagnosis"]))
    return rep
