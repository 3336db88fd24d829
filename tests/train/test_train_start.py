"""How `embodia train` starts and resumes: a preflight FAIL stops it (unless overridden), a failed start
leaves no run folder, and a resumed run logs every step once in metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from embodia.cli import main
from embodia.data.edit import copy_episodes
from embodia.data.reader import LeRobotDataset
from embodia.robots.so101 import to_lerobot_units
from embodia.robots.spec import ACTION, OBS_STATE
from embodia.train.config import preset
from embodia.train.loop import latest_checkpoint, train

FIXTURE = Path(__file__).parents[1] / "fixtures" / "so101_tabletop_tiny"


def _in_lerobot_degrees(out: Path) -> Path:
    """The fixture as LeRobot >= 0.4 would record it: degrees, gripper 0..100, robot_type so_follower."""
    ds = LeRobotDataset.open(FIXTURE)

    def transform(columns):
        return columns | {k: to_lerobot_units(columns[k]).astype(np.float32) for k in (OBS_STATE, ACTION)}

    return copy_episodes([(ds, e["episode_index"]) for e in ds.episodes], out, transform, "so_follower")


def _runs(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "embodia_runs" / "train").glob("*"))


def test_a_preflight_fail_stops_training_before_any_run_folder(tmp_path, monkeypatch, capsys):
    data = _in_lerobot_degrees(tmp_path / "degrees")
    monkeypatch.chdir(tmp_path)
    argv = ["train", str(data), "--preset", "tiny", "--steps", "2", "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 1
    said = " ".join(capsys.readouterr().out.split())
    assert "preflight FAIL units" in said and "lerobot_degrees" in said
    assert "embodia dataset convert-units" in said and "--allow-preflight-fail" in said
    assert not (tmp_path / "embodia_runs").exists()
    assert main([*argv, "--allow-preflight-fail", "--out", str(tmp_path / "run")]) == 0
    assert "training despite 1 preflight FAIL" in " ".join(capsys.readouterr().out.split())
    assert (tmp_path / "run" / "final" / "model.safetensors").exists()
    assert main([*argv, "--no-preflight", "--out", str(tmp_path / "run2")]) == 0  # no checks, no stop


def test_a_failed_start_leaves_no_run_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for extra in ([], ["--no-preflight"]):
        assert main(["train", str(tmp_path / "absent"), "--preset", "tiny", *extra]) == 2
        assert "dataset root not found" in " ".join(capsys.readouterr().out.split())
        assert not (tmp_path / "embodia_runs").exists()
    # Data that opens (metadata fine) but cannot be read fails inside training: the folder goes too.
    broken = tmp_path / "broken"
    copy_episodes([(LeRobotDataset.open(FIXTURE), 0)], broken)
    next((broken / "data").rglob("*.parquet")).write_bytes(b"not a parquet file")
    argv = ["train", str(broken), "--preset", "tiny", "--no-preflight", "--cache-dir", str(tmp_path / "c")]
    try:
        code = main(argv)
    except Exception:  # noqa: BLE001 - whichever error the reader raises, the folder must be gone
        code = None
    assert code != 0
    assert _runs(tmp_path) == []


def test_metrics_have_each_step_once_after_resume(tmp_path):
    cfg = preset("tiny", datasets=[str(FIXTURE)], cache_dir=str(tmp_path / "cache"), steps=8, save_every=4,
                 log_every=1, stop_after=6)  # fmt: skip
    run = tmp_path / "run"
    train(cfg, run)  # "dies" after step 6, its last checkpoint at step 4
    assert latest_checkpoint(run).name == "step-0000004"
    log = run / "metrics.jsonl"
    assert [json.loads(x)["step"] for x in log.read_text().splitlines()] == [1, 2, 3, 4, 5, 6]
    with open(log, "a") as f:
        f.write('{"step": 7, "lo')  # a line torn by kill -9
    train(preset("tiny"), run, resume=True)
    steps = [json.loads(x)["step"] for x in log.read_text().splitlines()]
    assert steps == list(range(1, 9))  # strictly increasing, each step once, none lost
