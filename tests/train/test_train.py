"""Training loop: schedule, exact resume (including after kill -9), fine-tuning, multi-process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from embodia.policy.policy import Policy
from embodia.sim.tasks import paraphrases
from embodia.train.config import LanguageAugConfig, TrainConfig, lr_at, preset
from embodia.train.loop import latest_checkpoint, train

FIXTURE = Path(__file__).parents[1] / "fixtures" / "so101_tabletop_tiny"
SHARED_MW = Path(__file__).parents[3] / "shared" / "fixtures" / "lerobot_v3_metaworld3"


def tiny(tmp_path: Path, **kw) -> TrainConfig:
    return preset("tiny", datasets=[str(FIXTURE)], cache_dir=str(tmp_path / "cache"), **kw)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_lr_schedule_is_scaled_to_the_requested_steps():
    for steps in (100, 10_000):
        cfg = TrainConfig(steps=steps, lr=1e-3, warmup_steps=50, min_lr_ratio=0.05)
        lrs = [lr_at(cfg, s) for s in range(steps)]
        assert max(lrs) == pytest.approx(1e-3, rel=1e-3)
        assert lrs[0] < lrs[cfg.warmup - 1]  # warming up
        assert lrs[-1] == pytest.approx(0.05e-3, rel=0.05)  # ends at the floor, at the last step
        near_zero = sum(lr < 0.1e-3 for lr in lrs) / steps
        assert near_zero < 0.2  # never "LR at ~0 for most of the run"


def test_train_writes_a_loadable_policy_and_metrics(tmp_path):
    final = train(tiny(tmp_path, steps=6, save_every=3, log_every=2), tmp_path / "run")
    policy = Policy.from_pretrained(final)
    assert policy.chunk_size == 8 and policy.n_action_steps == 4
    assert set(policy.embodiments) == {"so101"}
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3
    assert latest_checkpoint(tmp_path / "run").name == "step-0000006"
    for name in os.listdir(final):  # nothing pickled: JSON and safetensors only
        assert name.endswith((".json", ".safetensors")), name


def test_resume_is_bit_exact(tmp_path):
    full = train(tiny(tmp_path, steps=8, save_every=4), tmp_path / "a")
    train(tiny(tmp_path, steps=8, save_every=4, stop_after=5), tmp_path / "b")  # "dies" after step 5
    assert latest_checkpoint(tmp_path / "b").name == "step-0000004"
    resumed = train(TrainConfig(), tmp_path / "b", resume=True)
    assert_same(weights(full), weights(resumed))
    a = load_file(str(tmp_path / "a" / "checkpoints" / "step-0000008" / "train_state.safetensors"))
    b = load_file(str(tmp_path / "b" / "checkpoints" / "step-0000008" / "train_state.safetensors"))
    assert_same(a, b)  # raw weights, EMA and AdamW moments


def test_kill_9_then_resume_equals_uninterrupted(tmp_path):
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "embodia.cli", "train", str(FIXTURE), "--preset", "tiny", "--steps", "40",
           "--save-every", "2", "--cache-dir", str(cache)]  # fmt: skip
    full = train(tiny(tmp_path, steps=40, save_every=2), tmp_path / "full")
    run = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "--out", str(run)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (run / "checkpoints" / "latest").exists():
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    assert latest_checkpoint(run) is not None
    subprocess.run([sys.executable, "-m", "embodia.cli", "train", "--resume", str(run)], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    assert_same(weights(full), weights(run / "final"))


def test_finetune_with_frozen_encoders(tmp_path):
    base = train(tiny(tmp_path, steps=4), tmp_path / "base")
    ft = train(
        tiny(tmp_path, steps=4, init_from=str(base), freeze_encoders=True, ema_decay=0.0), tmp_path / "ft"
    )
    w0, w1 = weights(base), weights(ft)
    vision = [k for k in w0 if k.startswith("vision.")]
    assert vision and all(torch.equal(w0[k], w1[k]) for k in vision)
    assert not torch.equal(w0["action_out.weight"], w1["action_out.weight"])
    # Without a checkpoint to keep the encoders of: a clear error before any run folder exists.
    with pytest.raises(ValueError, match="freeze_encoders needs init_from"):
        train(tiny(tmp_path, steps=4, freeze_encoders=True), tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


def test_distilling_every_dataset_fully_keeps_the_starting_policy_exactly(tmp_path):
    base = train(tiny(tmp_path, steps=4), tmp_path / "base")
    # The target is the starting policy's own output for the same noisy chunk: the loss is 0 from the
    # first step, so without weight decay no weight moves.
    kept = train(
        tiny(tmp_path, steps=4, init_from=str(base), distill=[1.0], weight_decay=0.0), tmp_path / "kept"
    )
    assert_same(weights(base), weights(kept))
    losses = [
        json.loads(line)["loss"] for line in (tmp_path / "kept" / "metrics.jsonl").read_text().splitlines()
    ]
    assert losses and all(loss == 0.0 for loss in losses)
    # Weight 0 is the plain fine-tune, bit for bit; weight 0.5 trains toward both targets.
    plain = train(tiny(tmp_path, steps=4, init_from=str(base), weight_decay=0.0), tmp_path / "plain")
    zero = train(
        tiny(tmp_path, steps=4, init_from=str(base), distill=[0.0], weight_decay=0.0), tmp_path / "zero"
    )
    assert_same(weights(plain), weights(zero))
    half = train(
        tiny(tmp_path, steps=4, init_from=str(base), distill=[0.5], weight_decay=0.0), tmp_path / "half"
    )
    w0, wp, wh = weights(base), weights(plain), weights(half)
    moved = {k: (wp[k] - w0[k]).abs().sum() for k in w0}
    assert any(moved[k] > 0 for k in w0)
    assert sum((wh[k] - w0[k]).abs().sum() for k in w0) < sum(moved.values())


def test_distill_is_checked_against_the_datasets_and_needs_a_starting_policy(tmp_path):
    with pytest.raises(ValueError, match="one weight per dataset"):
        TrainConfig(datasets=["a", "b"], distill=[1.0])
    with pytest.raises(ValueError, match="between 0 and 1"):
        TrainConfig(datasets=["a"], distill=[1.5])
    with pytest.raises(ValueError, match="distill needs init_from"):
        train(tiny(tmp_path, steps=4, distill=[1.0]), tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


def test_l1_head_trains(tmp_path):
    cfg = tiny(tmp_path, steps=3)
    cfg.model.head = "l1"
    policy = Policy.from_pretrained(train(cfg, tmp_path / "run"))
    assert policy.cfg.head == "l1"


def test_accelerate_launch_two_cpu_processes(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "embodia.cli", "train", str(FIXTURE), "--preset", "tiny", "--steps", "4",
           "--out", str(run), "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    Policy.from_pretrained(run / "final")
    assert (run / "metrics.jsonl").read_text().count("\n") >= 1


@pytest.mark.skipif(
    not SHARED_MW.exists(), reason="../shared/fixtures (LeRobot-written Meta-World data) absent"
)
def test_trains_unchanged_on_a_lerobot_metaworld_dataset(tmp_path):
    cfg = preset("tiny", datasets=[str(SHARED_MW)], cache_dir=str(tmp_path / "cache"), steps=3)
    policy = Policy.from_pretrained(train(cfg, tmp_path / "run"))
    info = policy.embodiments["sawyer"]
    assert (info.state_dim, info.action_dim, info.fps) == (4, 4, 80.0)
    assert info.cameras == ["observation.images.corner", "observation.images.corner2"]
    # LeRobot's stats.json says q01 == q99 == 0.78 for this gripper (a mean of per-episode quantiles);
    # the gripper really spans 0..1, so the policy's range is measured on the data instead.
    assert info.normalizer.action_low[3] == pytest.approx(0.0, abs=1e-6)
    assert info.normalizer.action_high[3] == pytest.approx(1.0, abs=1e-6)


def test_action_range_is_measured_on_the_data_not_read_from_stats_json(tmp_path):
    """meta/stats.json's quantiles are approximations (LeRobot averages per-episode quantiles); a range
    far inside the data would normalise targets to |x| >> 1. Here the file is made to lie outright."""
    import json
    import shutil

    import numpy as np

    from embodia.data.reader import LeRobotDataset

    root = tmp_path / "ds"
    shutil.copytree(FIXTURE, root)
    stats_path = root / "meta" / "stats.json"
    stats = json.loads(stats_path.read_text())
    stats["action"]["q01"] = [0.0] * 6
    stats["action"]["q99"] = [1e-3] * 6
    stats_path.write_text(json.dumps(stats))
    cfg = preset("tiny", datasets=[str(root)], cache_dir=str(tmp_path / "cache"), steps=2)
    info = Policy.from_pretrained(train(cfg, tmp_path / "run")).info
    ds = LeRobotDataset.open(root)
    actions = np.concatenate([ds.episode_data(i)["action"] for i in range(ds.num_episodes)])
    lo, hi = info.normalizer.action_low, info.normalizer.action_high
    # Chunk targets repeat frames near episode ends, so the quantiles are close to, not equal to, the
    # per-frame ones; what matters is that they bracket the data, unlike the file's.
    spread = np.quantile(actions, 0.99, 0) - np.quantile(actions, 0.01, 0)
    assert np.all(np.abs(lo - np.quantile(actions, 0.01, 0)) <= 0.05 * spread)
    assert np.all(np.abs(hi - np.quantile(actions, 0.99, 0)) <= 0.05 * spread)
    normed = info.normalizer.normalize_action(torch.from_numpy(actions).double()).numpy()
    assert np.mean(np.abs(normed) > 1.5) < 0.01


def test_delta_actions_round_trip_and_train(tmp_path):
    """Joint actions predicted relative to the state: the stats describe the deltas, and the policy
    adds the state back, so a chunk it returns is absolute joint targets again."""
    import numpy as np

    from embodia.data.reader import LeRobotDataset
    from embodia.policy.inputs import action_targets, to_numpy_actions

    cfg = tiny(tmp_path, steps=3, delta_actions=True, aug_shift=0.04)
    policy = Policy.from_pretrained(train(cfg, tmp_path / "run"))
    info = policy.info
    assert info.delta_dims == [0, 1, 2, 3, 4]  # joints, not the gripper
    ds = LeRobotDataset.open(FIXTURE)
    # Targets -> model space -> back is the identity.
    a = torch.from_numpy(ds.episode_data(0)["action"][:8][None])
    s = torch.from_numpy(ds.episode_data(0)["observation.state"][:1])
    normed, _ = action_targets(info, a, torch.zeros(1, 8, dtype=torch.bool), 32, state=s)
    np.testing.assert_allclose(to_numpy_actions(info, normed, s)[0], a[0].numpy(), atol=1e-4)
    # predict_chunk adds the current state to the joint dims (same model output, with and without).
    obs = {k: (v.numpy() if hasattr(v, "numpy") else v) for k, v in ds.frame(10).items()}
    noise = torch.randn(1, policy.chunk_size, policy.cfg.max_action_dim)
    with_state = policy.predict_chunk(obs, noise=noise)[0]
    info.delta_dims = []
    without = policy.predict_chunk(obs, noise=noise)[0]
    shift = with_state - without
    np.testing.assert_allclose(shift[:, :5], np.broadcast_to(obs["observation.state"][:5], (8, 5)), atol=1e-5)
    np.testing.assert_allclose(shift[:, 5], 0.0, atol=1e-6)


def test_ema_follows_the_weights_onto_the_training_device(tmp_path):
    """The EMA copy must be taken after accelerate's prepare(), which moves the model to the GPU;
    taken before, the first EMA update mixes cuda and cpu tensors (found on an H200). CI has no GPU,
    so a prepare() that converts the model to float64 stands in for the move."""
    from accelerate import Accelerator

    from embodia.train.loop import Trainer

    class MovingAccelerator(Accelerator):
        def prepare(self, model, optimizer):
            model.double()
            return super().prepare(model, optimizer)

    trainer = Trainer(tiny(tmp_path), tmp_path / "run", accelerator=MovingAccelerator(cpu=True))
    params = list(trainer.model.parameters())
    assert all(p.dtype == torch.float64 for p in params)
    assert [(e.dtype, e.device) for e in trainer.ema] == [(p.dtype, p.device) for p in params]


def test_dataset_weights_set_how_often_each_dataset_is_drawn():
    from types import SimpleNamespace

    from embodia.train.batches import draw_source, step_generator

    sources = [SimpleNamespace(data=range(900)), SimpleNamespace(data=range(100))]

    def share_of_second(cfg: TrainConfig) -> float:
        draws = [draw_source(sources, cfg, step_generator(0, step, 0)) for step in range(2000)]
        return sum(draws) / len(draws)

    by_size = TrainConfig(datasets=["big", "small"])
    assert share_of_second(by_size) == pytest.approx(0.1, abs=0.03)
    equal = TrainConfig(datasets=["big", "small"], dataset_weights=[1.0, 1.0])
    assert share_of_second(equal) == pytest.approx(0.5, abs=0.04)


def test_dataset_weights_are_checked_against_the_datasets():
    with pytest.raises(ValueError, match="one weight per dataset"):
        TrainConfig(datasets=["a", "b"], dataset_weights=[1.0])
    with pytest.raises(ValueError, match="positive"):
        TrainConfig(datasets=["a", "b"], dataset_weights=[1.0, 0.0])


def test_cotraining_two_datasets_with_weights_trains_and_records_them(tmp_path):
    cfg = preset(
        "tiny",
        datasets=[str(FIXTURE), str(FIXTURE)],
        dataset_weights=[1.0, 3.0],
        cache_dir=str(tmp_path / "cache"),
        steps=4,
        save_every=2,
    )
    final = train(cfg, tmp_path / "run")
    assert Policy.from_pretrained(final).embodiments.keys() == {"so101"}
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert saved["dataset_weights"] == [1.0, 3.0]


def test_prefetching_batches_trains_exactly_the_same_weights(tmp_path):
    inline = train(tiny(tmp_path, steps=6, save_every=3, prefetch=0), tmp_path / "inline")
    ahead = train(tiny(tmp_path, steps=6, save_every=3, prefetch=2), tmp_path / "ahead")
    assert_same(weights(inline), weights(ahead))
    with pytest.raises(ValueError, match="prefetch must be >= 0"):
        tiny(tmp_path, prefetch=-1)


def test_a_time_budget_fixes_the_steps_after_calibration_and_completes_the_schedule(tmp_path):
    from embodia.train.loop import BUDGET_CALIBRATION_STEPS, fit_steps_to_budget

    # The arithmetic: 60 s budget, 10 s spent, 2 steps/s -> (60 * 0.96 - 10) * 2 = 95 more steps.
    assert fit_steps_to_budget(TrainConfig(minutes=60.0 / 60), 20, 2.0, 10.0) == 20 + 95
    assert fit_steps_to_budget(TrainConfig(minutes=5.0 / 60), 20, 2.0, 10.0) == 20  # already over

    cfg = tiny(tmp_path, steps=5, save_every=1000, log_every=1, minutes=6.0 / 60)
    final = train(cfg, tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    # --steps 5 was replaced by what fits; the run ended exactly there, with the cosine at its floor.
    assert saved["steps"] == cfg.steps == lines[-1]["step"] >= BUDGET_CALIBRATION_STEPS
    assert lines[-1]["lr"] == pytest.approx(lr_at(cfg, cfg.steps - 1))
    assert lines[-1]["lr"] < 0.1 * cfg.lr  # the cosine ran its course, not a 10**9-step schedule
    assert Policy.from_pretrained(final).n_action_steps == 4
    with pytest.raises(ValueError, match="minutes"):
        tiny(tmp_path, minutes=-1)


def test_step_budget_refits_once_when_the_warmup_ends():
    from embodia.train.loop import BUDGET_WARM_STEPS, UNFITTED_STEPS, StepBudget

    assert BUDGET_WARM_STEPS == 3  # the numbers below assume it
    cfg = TrainConfig(minutes=600.0 / 60, warmup_steps=100, steps=UNFITTED_STEPS)
    budget = StepBudget(cfg, t_start=0.0, step=0, now=20.0)  # 20 s of data loading
    # The first 3 steps carry one-off costs (10 s here) and are left out of the rate.
    assert budget.candidate(3, 30.0) is None and budget.candidate(10, 33.0) is None
    # Slow steps still: 20 in 16 s -> 1.25 steps/s over the 576 s usable minus 46 s spent.
    first = budget.candidate(23, 46.0)
    assert first == 23 + int(1.25 * (576 - 46))
    budget.decided(23, first)
    assert budget.refit_at == 100 and cfg.warmup_steps == 100  # the warmup's end under that count
    # Steps 23..100 at 0.5 s each: the second fit sees the real rate and gives the run more steps.
    second = budget.candidate(100, 84.5)
    assert second == 100 + int(2.0 * (576 - 84.5)) and second > first
    budget.decided(100, second)
    assert budget.refit_at is None and budget.candidate(200, 134.5) is None

    # A first fit far too low (the rate fell during its 20 steps) fixes a short warmup, and the second
    # fit, at that warmup's end, may still give the run the steps its budget allows.
    cfg = TrainConfig(minutes=540.0 / 60, warmup_steps=500, steps=UNFITTED_STEPS)
    budget = StepBudget(cfg, t_start=0.0, step=0, now=230.0)  # 230 s of frame decoding
    budget.candidate(3, 237.0)
    first = budget.candidate(23, 244.5)  # 20 steps in 7.5 s -> 2.67 steps/s -> 742 steps
    assert first == 23 + int(20 / 7.5 * (540 * 0.96 - 244.5))
    budget.decided(23, first)
    assert cfg.warmup_steps == first // 5 == budget.refit_at
    now = 244.5 + (budget.refit_at - 23) / 21.0  # then 21 steps/s
    second = budget.candidate(budget.refit_at, now)
    assert second == budget.refit_at + int(21.0 * (540 * 0.96 - now)) and second > 5 * first
    cfg.steps = second
    assert cfg.warmup == budget.refit_at  # the schedule keeps the warmup it has run

    # A second fit with fewer steps than that warmup allows (under 500 at warmup 100) keeps the first.
    cfg = TrainConfig(minutes=600.0 / 60, warmup_steps=100, steps=UNFITTED_STEPS)
    budget = StepBudget(cfg, t_start=0.0, step=0, now=0.0)
    budget.candidate(3, 1.0)
    budget.decided(23, budget.candidate(23, 11.0))
    assert budget.candidate(100, 200.0) == -1
    # A warmup too short to measure a second rate on: one fit only.
    short = StepBudget(TrainConfig(minutes=60.0 / 60, warmup_steps=10), 0.0, 0, 0.0)
    short.candidate(3, 1.0)
    short.decided(23, short.candidate(23, 5.0))
    assert short.refit_at is None


def test_training_from_an_instruction_table_needs_no_encoder_and_trains_the_same_weights(
    tmp_path, monkeypatch
):
    import embodia.train.loop as loop
    from embodia.cli import main
    from embodia.train.batches import write_instruction_table

    cfg = tiny(tmp_path, steps=4, save_every=1000, language=LanguageAugConfig(paraphrase=0.5))
    table = tmp_path / "instructions.safetensors"
    path, n = write_instruction_table(cfg, table, phrasings=paraphrases)
    assert path == table and n > 4  # the fixture's tasks and the phrasings --paraphrase swaps in
    reference = train(cfg, tmp_path / "with_encoder", phrasings=paraphrases)

    def no_encoder(*args, **kwargs):
        raise AssertionError("the sentence encoder was loaded although an instruction table was given")

    monkeypatch.setattr(loop, "InstructionEncoder", no_encoder)
    from_table = train(tiny(tmp_path, steps=4, save_every=1000, instruction_table=str(table), language=LanguageAugConfig(paraphrase=0.5)),
                       tmp_path / "with_table", phrasings=paraphrases)  # fmt: skip
    assert_same(weights(reference), weights(from_table))
    # A table written without the phrasings cannot serve a run that swaps them in.
    monkeypatch.undo()
    write_instruction_table(tiny(tmp_path), tmp_path / "tasks_only.safetensors")
    with pytest.raises(ValueError, match="not in the table"):
        train(tiny(tmp_path, steps=2, instruction_table=str(tmp_path / "tasks_only.safetensors"), language=LanguageAugConfig(paraphrase=0.5)),
              tmp_path / "bad", phrasings=paraphrases)  # fmt: skip
    # The CLI writes a table and stops without a run folder.
    out = tmp_path / "cli.safetensors"
    monkeypatch.chdir(tmp_path)
    assert main(["train", str(FIXTURE), "--preset", "tiny", "--save-instructions", str(out)]) == 0
    assert out.is_file() and not (tmp_path / "embodia_runs").exists()
    from embodia.cli import parse

    cmd, options = parse(["train", "--resume", str(tmp_path / "with_table"), "--save-instructions", str(out)])
    with pytest.raises(ValueError, match="not --resume"):
        cmd.run(options)


def test_a_run_past_its_time_budget_stops_and_saves(tmp_path, monkeypatch):
    import embodia.train.loop as loop

    # As if the rate measured at calibration had later halved: the fitted count no longer fits.
    monkeypatch.setattr(loop, "fit_steps_to_budget", lambda cfg, step, rate, elapsed: 10**6)
    cfg = tiny(tmp_path, save_every=1000, log_every=1, minutes=8.0 / 60)
    final = train(cfg, tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert BUDGET_STEPS_MIN <= saved["steps"] == cfg.steps < 10**6
    assert Policy.from_pretrained(final).n_action_steps == 4


BUDGET_STEPS_MIN = 20  # the calibration steps always run


def test_training_with_carriers_and_word_dropout_changes_the_weights(tmp_path):
    from embodia.policy.language import InstructionEncoder
    from embodia.train.batches import build_sources

    cfg = tiny(
        tmp_path,
        steps=4,
        save_every=2,
        language=LanguageAugConfig(paraphrase=0.5, paraphrase_carriers=True, word_dropout=0.2),
    )
    sources, _ = build_sources(cfg, cfg.model, InstructionEncoder(), phrasings=paraphrases)
    src = sources[0]
    for t in src.data.ds.tasks:
        assert any(a.startswith("please ") for a in src.alternatives[t])
        assert all(a in src.language.index for a in src.alternatives[t])
    final = train(cfg, tmp_path / "run", phrasings=paraphrases)
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert saved["language"]["paraphrase_carriers"] is True and saved["language"]["word_dropout"] == 0.2
    plain = train(
        tiny(tmp_path, steps=4, save_every=2, language=LanguageAugConfig(paraphrase=0.5)),
        tmp_path / "plain",
        phrasings=paraphrases,
    )
    w_new, w_plain = weights(final), weights(plain)
    assert any(not torch.equal(w_new[k], w_plain[k]) for k in w_new)


def test_training_with_paraphrases_encodes_them_and_trains(tmp_path):
    from embodia.policy.language import InstructionEncoder
    from embodia.train.batches import build_sources

    cfg = tiny(tmp_path, steps=4, save_every=2, language=LanguageAugConfig(paraphrase=0.5))
    sources, _ = build_sources(cfg, cfg.model, InstructionEncoder(), phrasings=paraphrases)
    src = sources[0]
    tasks = list(src.data.ds.tasks)
    assert tasks and set(src.alternatives) == set(tasks)
    for t in tasks:  # every phrasing the batch may swap in was encoded with the dataset's own
        assert t in src.language.index and all(a in src.language.index for a in src.alternatives[t])
    final = train(cfg, tmp_path / "run", phrasings=paraphrases)
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["language"]["paraphrase"] == 0.5
    plain = train(tiny(tmp_path, steps=4, save_every=2), tmp_path / "plain")
    w_para, w_plain = weights(final), weights(plain)
    assert any(not torch.equal(w_para[k], w_plain[k]) for k in w_para)  # the swaps reached the model


def test_training_with_sentence_mix_and_noise_changes_the_weights(tmp_path):
    cfg = tiny(
        tmp_path,
        steps=4,
        save_every=2,
        language=LanguageAugConfig(paraphrase=0.5, sentence_mix=0.5, sentence_noise=0.5),
    )
    final = train(cfg, tmp_path / "run", phrasings=paraphrases)
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert saved["language"]["sentence_mix"] == 0.5 and saved["language"]["sentence_noise"] == 0.5
    plain = train(
        tiny(tmp_path, steps=4, save_every=2, language=LanguageAugConfig(paraphrase=0.5)),
        tmp_path / "plain",
        phrasings=paraphrases,
    )
    w_new, w_plain = weights(final), weights(plain)
    assert any(not torch.equal(w_new[k], w_plain[k]) for k in w_new)


def test_language_config_is_checked():
    with pytest.raises(ValueError, match="probability"):
        TrainConfig(language=LanguageAugConfig(paraphrase=1.5))
    with pytest.raises(ValueError, match="word_dropout"):
        TrainConfig(language=LanguageAugConfig(word_dropout=1.0))
    with pytest.raises(ValueError, match="paraphrase > 0"):
        TrainConfig(language=LanguageAugConfig(paraphrase_carriers=True))  # carriers alone swap nothing
    with pytest.raises(ValueError, match="paraphrase > 0"):
        TrainConfig(language=LanguageAugConfig(sentence_mix=0.5))  # nothing to mix toward
    with pytest.raises(ValueError, match="sentence_noise"):
        TrainConfig(language=LanguageAugConfig(sentence_noise=-1.0))


def test_each_source_runs_the_transforms_its_config_switches_on_in_draw_order(tmp_path):
    from embodia.data.transforms import (
        EncodeInstructions,
        ImageAugment,
        Paraphrase,
        SentenceMix,
        SentenceNoise,
        ToModelInputs,
        WordDropout,
    )
    from embodia.policy.language import InstructionEncoder
    from embodia.train.batches import build_sources

    encoder = InstructionEncoder()
    everything = LanguageAugConfig(paraphrase=0.5, word_dropout=0.1, sentence_mix=0.3, sentence_noise=0.2)
    cfg = tiny(tmp_path, aug_shift=0.04, language=everything)
    (src,), _ = build_sources(cfg, cfg.model, encoder, phrasings=paraphrases)
    kinds = [type(s) for s in src.transforms.steps]
    assert kinds == [ImageAugment, Paraphrase, EncodeInstructions, WordDropout, SentenceMix, SentenceNoise,
                     ToModelInputs]  # fmt: skip
    assert src.transforms.steps[0].max_shift == 0.04 and src.transforms.steps[1].p == 0.5
    (plain,), _ = build_sources(tiny(tmp_path, augment=False), cfg.model, encoder)
    assert [type(s) for s in plain.transforms.steps] == [EncodeInstructions, ToModelInputs]
    # Phrasings that know none of the tasks (another robot's data): nothing to swap or mix toward.
    (none,), _ = build_sources(cfg, cfg.model, encoder, phrasings=lambda text, carriers: [])
    assert none.alternatives == {} and Paraphrase not in [type(s) for s in none.transforms.steps]
    assert SentenceMix not in [type(s) for s in none.transforms.steps]


def test_swapping_phrasings_without_a_source_of_them_is_refused(tmp_path):
    cfg = tiny(tmp_path, steps=2, language=LanguageAugConfig(paraphrase=0.5))
    with pytest.raises(ValueError, match="no source of other phrasings"):
        train(cfg, tmp_path / "run")
