"""LeRobot policies (LeRobot's own code, its own environment) through embodia's evaluation, demo, run
and doctor commands, and a policy trained by `lerobot-train` on an embodia dataset."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from embodia.cli import main
from embodia.policy.lerobot_policy import LeRobotPolicy

TINY_DATASET = Path(__file__).parents[1] / "fixtures" / "so101_tabletop_tiny"


@pytest.mark.parametrize("kind", ["act", "diffusion", "act_ensemble", "smolvla", "xvla"])
def test_eval_runs_each_policy_closed_loop(kind, lerobot_policies, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["eval", str(lerobot_policies[kind]), "--suite", "pick", "--episodes", "2", "--max-steps", "10",
            "--num-envs", "2", "--videos", "1"]  # fmt: skip
    assert main(argv) == 0
    (run,) = (tmp_path / "embodia_runs" / "eval").iterdir()
    results = json.loads((run / "results.json").read_text())
    eps = results["episodes"]
    assert len(eps) == 2 and all(e["steps"] == 10 for e in eps)
    settings = results
    assert settings["policy_class"].endswith("LeRobotPolicy") and len(settings["checkpoint_hash"]) == 64
    # Stateful policies act one step per request (LeRobot's select_action); chunking ones replan.
    stateful = kind in ("diffusion", "act_ensemble")
    assert all(e["chunks"] == (10 if stateful else 1) for e in eps), eps


def test_eval_is_the_same_with_one_env_or_two(lerobot_policies, tmp_path):
    """Per-episode sessions and seeds: Diffusion's episodes do not depend on what they run beside."""
    from embodia.eval.run import evaluate

    with LeRobotPolicy(lerobot_policies["diffusion"]) as policy:
        runs = [
            evaluate(
                policy,
                "pick,push",
                episodes=1,
                max_steps=8,
                num_envs=n,
                videos_per_task=0,
                out_dir=tmp_path / str(n),
                show_progress=False,
            )  # fmt: skip
            for n in (1, 2)
        ]
    finals = [[json.loads(r.results_path.read_text())["episodes"] for r in runs]]
    assert finals[0][0] == finals[0][1]


def test_run_and_demo_take_a_lerobot_checkpoint(lerobot_policies, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    folder = str(lerobot_policies["act"])
    assert main(["run", "could you lift the blue block", "--checkpoint", folder, "--max-steps", "8"]) in (
        0,
        3,
    )
    assert main(["demo", "--checkpoint", folder, "--episodes", "2", "--max-steps", "8"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "lift the blue block" in out and "/2 succeeded" in out


def test_doctor_train_replays_a_lerobot_policy(lerobot_policies, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["doctor", "train", str(TINY_DATASET), "--checkpoint", str(lerobot_policies["act"]), "--no-overfit",
            "--out", str(tmp_path / "doc")]  # fmt: skip
    main(argv)
    doc = json.loads((tmp_path / "doc" / "doctor.json").read_text())
    replay = doc["open_loop"]
    assert replay["chunks"] > 0 and len(replay["mae_per_step"]) == 10 and replay["mae"] > 0
    # The degrees policy's statistics, converted, still bracket radian data: no units finding.
    assert not [f for f in doc["findings"] if f["check"] in ("units", "camera_keys", "dimensions")]


def test_lerobot_train_on_an_embodia_dataset_then_embodia_eval(lerobot_python, tmp_path, monkeypatch):
    """`lerobot-train` reads embodia's v3 dataset as it is (the CPU flags the docs give), and embodia
    evaluates what it wrote."""
    train = lerobot_python.parent / "lerobot-train"
    cmd = [str(train), "--policy.type=act", "--policy.device=cpu", "--policy.push_to_hub=false",
           "--policy.pretrained_backbone_weights=null", f"--dataset.root={TINY_DATASET}",
           "--dataset.repo_id=local/so101_tabletop_tiny", "--dataset.video_backend=pyav", "--steps=3",
           "--batch_size=2", "--num_workers=0", "--save_freq=3", "--wandb.enable=false",
           f"--output_dir={tmp_path / 'act'}", "--policy.dim_model=64", "--policy.n_encoder_layers=1",
           "--policy.dim_feedforward=128", "--policy.chunk_size=10", "--policy.n_action_steps=10"]  # fmt: skip
    done = subprocess.run(
        cmd, capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    checkpoint = tmp_path / "act" / "checkpoints" / "000003"
    monkeypatch.chdir(tmp_path)
    assert main(["eval", str(checkpoint), "--suite", "touch", "--episodes", "1", "--max-steps", "6",
                 "--image-size", "64"]) == 0  # fmt: skip
