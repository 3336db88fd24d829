"""The training doctor names each planted training bug, and stays quiet on a clean configuration."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from embodia.data.format import features_for
from embodia.data.reader import LeRobotDataset
from embodia.data.writer import DatasetWriter
from embodia.policy.policy import Policy
from embodia.robots.spec import ACTION, OBS_STATE, SO101
from embodia.train.config import preset
from embodia.train.doctor import open_loop_replay, overfit_probe, preflight

FIXTURE = Path(__file__).parents[1] / "fixtures" / "so101_tabletop_tiny"


def checks(findings):
    return {f.check for f in findings}


def cfg_for(root, **kw):
    return preset("tiny", datasets=[str(root)], **kw)


def test_clean_configuration_has_no_findings(tiny_policy_dir):
    assert preflight(cfg_for(FIXTURE, steps=200)) == []
    assert preflight(cfg_for(FIXTURE, steps=200), checkpoint=Policy.from_pretrained(tiny_policy_dir)) == []


def test_lr_that_reaches_zero_at_a_quarter_of_the_run():
    findings = preflight(cfg_for(FIXTURE, steps=400, decay_steps=100, min_lr_ratio=0.0))
    assert checks(findings) == {"lr_schedule"}
    assert findings[0].severity == "FAIL" and findings[0].evidence["first_near_zero_step"] <= 100


def test_wrong_normalisation_stats(tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(FIXTURE, root)
    stats = json.loads((root / "meta/stats.json").read_text())
    stats[ACTION]["q99"] = [3 * v for v in stats[ACTION]["q99"]]  # stats of some other data
    (root / "meta/stats.json").write_text(json.dumps(stats))
    findings = preflight(cfg_for(root))
    assert "norm_stats" in checks(findings)
    assert any("disagrees with the data" in f.message for f in findings)


def test_swapped_camera_keys(tmp_path, tiny_policy_dir):
    root = tmp_path / "ds"
    shutil.copytree(FIXTURE, root)
    info = json.loads((root / "meta/info.json").read_text())
    feats = info["features"]
    order = ["observation.images.wrist", "observation.images.front"]
    info["features"] = {**{k: feats[k] for k in order}, **{k: v for k, v in feats.items() if k not in order}}
    (root / "meta/info.json").write_text(json.dumps(info))
    findings = preflight(cfg_for(root), checkpoint=Policy.from_pretrained(tiny_policy_dir))
    (f,) = [f for f in findings if f.check == "camera_keys"]
    assert f.severity == "FAIL" and "different order" in f.message
    assert f.evidence["rename"] == {
        "observation.images.wrist": "observation.images.front",
        "observation.images.front": "observation.images.wrist",
    }


def test_action_dimension_mismatch(tiny_policy_dir):
    policy = Policy.from_pretrained(tiny_policy_dir)
    policy.embodiments["so101"].action_dim = 5  # a checkpoint of a 5-action arm
    findings = preflight(cfg_for(FIXTURE), checkpoint=policy)
    assert "dimensions" in checks(findings)


def _rewrite_with_idle_start(src: Path, dst: Path, seconds: float) -> None:
    ds = LeRobotDataset.open(src)
    h, w, _ = ds.features["observation.images.front"]["shape"]
    writer = DatasetWriter.create(dst, features_for(SO101, h, w), fps=ds.fps, robot_type=ds.robot_type)
    pad = int(round(seconds * ds.fps))
    for ep in ds.episodes:
        i = ep["episode_index"]
        data = ds.episode_data(i)
        frames = {c: ds.episode_frames(i, c) for c in ds.camera_keys}
        task = ds.tasks[int(data["task_index"][0])]
        for t in [0] * pad + list(range(ep["length"])):
            writer.add_frame({OBS_STATE: data[OBS_STATE][t], ACTION: data[ACTION][t], "task": task}
                             | {c: frames[c][t] for c in ds.camera_keys})  # fmt: skip
        writer.save_episode()


def test_idle_start_data(tmp_path):
    root = tmp_path / "idle"
    _rewrite_with_idle_start(FIXTURE, root, seconds=0.6)
    (f,) = [f for f in preflight(cfg_for(root)) if f.check == "idle_start"]
    assert len(f.evidence["episodes"]) == 5 and all(e["seconds"] >= 0.6 for e in f.evidence["episodes"])


def test_overfit_probe_passes_on_clean_data(tmp_path):
    findings, evidence = overfit_probe(FIXTURE, workdir=tmp_path)
    assert findings == [], evidence
    assert evidence["ratio"] >= 10


def test_open_loop_replay_reports_errors_per_joint_and_step(tiny_policy_dir):
    report = open_loop_replay(Policy.from_pretrained(tiny_policy_dir), FIXTURE, episodes=[4], every=20)
    assert report["chunks"] >= 3 and len(report["mae_per_joint"]) == 6 and len(report["mae_per_step"]) == 8
    assert np.isfinite(report["mae"])


@pytest.mark.parametrize("steps", [50, 5000])
def test_schedule_check_scales_with_steps(steps):
    assert preflight(cfg_for(FIXTURE, steps=steps)) == []


def test_run_doctor_writes_json_and_report(tmp_path, tiny_policy_dir):
    from embodia.train.doctor import run_doctor

    cfg = cfg_for(FIXTURE, decay_steps=5, min_lr_ratio=0.0)  # one planted bug
    doc = run_doctor(cfg, tmp_path / "doc", checkpoint=Policy.from_pretrained(tiny_policy_dir), overfit=False)
    assert [f["check"] for f in doc["findings"]] == ["lr_schedule"]
    saved = json.loads((tmp_path / "doc/doctor.json").read_text())
    assert saved["summary"] == "1 FAIL, 0 WARN" and saved["open_loop"]["chunks"] > 0
    html = (tmp_path / "doc/report.html").read_text()
    assert "lr_schedule" in html and "<img" in html  # the open-loop plots are inline


def test_cli_doctor_train_exit_status(tmp_path, monkeypatch, tiny_policy_dir):
    from embodia.cli import main

    monkeypatch.chdir(tmp_path)
    clean = [
        "doctor",
        "train",
        str(FIXTURE),
        "--preset",
        "tiny",
        "--no-overfit",
        "--checkpoint",
        str(tiny_policy_dir),
    ]
    assert main([*clean, "--out", str(tmp_path / "ok")]) == 0
    assert main([*clean, "--steps", "7", "--out", str(tmp_path / "bad")]) == 0  # short runs are fine
    bad_lr = ["doctor", "train", str(FIXTURE), "--preset", "tiny", "--no-overfit", "--lr", "-1"]
    with pytest.raises(SystemExit) as exc:  # argparse: a clear error for an invalid value, exit status 2
        main(bad_lr)
    assert exc.value.code == 2
    assert (tmp_path / "ok" / "report.html").exists()


def test_diagnose_names_the_findings_behind_a_closed_loop_gap():
    from embodia.train.doctor import Finding, diagnose

    idle = Finding("idle_start", "WARN", "3 of 20 episodes start with > 0.5 s of no motion")
    replay = {"mae": 0.05, "mae_per_step": [0.02, 0.03, 0.09]}
    notes = diagnose([idle], replay, success=0.1)
    assert "open-loop error is low" in notes[0]
    assert any("idle_start" in n for n in notes) and any("fewer actions per chunk" in n for n in notes)
    assert diagnose([idle], replay, success=0.9) == []  # no gap, nothing to explain
    assert diagnose([], {"mae": 0.05, "mae_per_step": [0.05, 0.05]}, success=0.0)[-1].startswith(
        "- no data or config finding"
    )
