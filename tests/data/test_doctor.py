"""The data doctor: clean datasets pass, and every defect planted by benchmarks/plant_defects.py (one
per check, close to its threshold) is found by its check, in the right episode and frames."""

import hashlib
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from embodia.cli import main
from embodia.data.doctor import diagnose, infer_embodiment, write_fixed
from embodia.data.doctor_checks import FAIL, PASS, SKIP, WARN
from embodia.data.reader import LeRobotDataset

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "so101_tabletop_tiny"
METAWORLD = ROOT.parent / "shared" / "fixtures" / "lerobot_v3_metaworld3"
_spec = importlib.util.spec_from_file_location("plant_defects", ROOT / "benchmarks" / "plant_defects.py")
planter = sys.modules.setdefault("plant_defects", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(planter)

# Defects whose check reads the videos; the others are diagnosed without decoding, to keep this fast.
VIDEO_DEFECTS = {"missing_video_frame", "dark_camera", "frozen_camera", "blurred_camera"}


@pytest.fixture(scope="session")
def clean(tmp_path_factory) -> Path:
    """12 scripted tabletop episodes at 64 px: enough for the fences, medians and the 10x task ratio."""
    from embodia.data.record import RecordConfig, record

    root = tmp_path_factory.mktemp("doctor") / "clean"
    record(RecordConfig(tasks="tabletop", episodes=12, num_envs=1, image_size=64, seed=0), root)
    return root


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def _flagged(diag) -> dict[str, str]:
    return {r.name: r.summary for r in diag.results if r.severity in (WARN, FAIL)}


def test_clean_recording_and_its_copy_pass(clean, tmp_path):
    diag = diagnose(clean)
    assert diag.video_scanned and diag.action_kind == "joint_abs"
    assert _flagged(diag) == {}
    assert diag.counts[SKIP] == 0  # 12 episodes: every check applies
    copy = planter.plant(clean, tmp_path / "copy", None)  # the planting path without a defect
    assert _flagged(diagnose(copy.root)) == {}


def test_committed_tabletop_fixture_passes():
    diag = diagnose(FIXTURE)
    assert _flagged(diag) == {}
    assert diag.result("episodes.length_outliers").severity == SKIP  # 5 episodes are too few


def test_lerobot_written_metaworld_dataset_passes():
    if not METAWORLD.is_dir():
        pytest.skip(f"shared fixture absent: {METAWORLD} (the LeRobot-written Meta-World dataset)")
    diag = diagnose(METAWORLD)
    assert diag.action_kind == "ee_delta" and "sawyer" in diag.kind_source
    assert _flagged(diag) == {}
    assert diag.result("actions.calibration_offset").severity == SKIP  # joint_abs only
    assert (
        "observation.state" in diag.result("actions.jumps").summary
    )  # ee_delta: the pose must be continuous


@pytest.mark.parametrize("defect", list(planter.DEFECTS))
def test_planted_defect_is_found_in_its_episode_and_frames(defect, clean, tmp_path):
    planted = planter.plant(clean, tmp_path / defect, defect)
    diag = diagnose(planted.root, video=defect in VIDEO_DEFECTS)
    result = diag.result(planted.check)
    assert result.severity in (WARN, FAIL), f"{defect}: {result.summary}"
    found = planter.detected(diag, planted)
    assert found["episode_ok"], f"{defect}: evidence names other episodes: {result.summary}"
    assert found["frames_ok"], f"{defect}: planted at frames {planted.frames}, evidence {result.summary}"
    if planted.episode is not None and planted.check not in ("tasks.imbalance", "episodes.near_duplicates"):
        assert all(f.episode == planted.episode for f in result.findings), result.summary


def test_cli_exit_status_outputs_and_fix(clean, tmp_path, capsys):
    assert main(["doctor", "data", str(clean), "--no-video", "--out", str(tmp_path / "ok")]) == 0
    report = json.loads((tmp_path / "ok" / "doctor.json").read_text())
    assert report["severity"] == PASS and report["fail_episodes"] == []
    assert (tmp_path / "ok" / "manifest.json").is_file()

    # Two defects in the committed fixture: an idle start (WARN, trimmed by --fix) and a NaN (FAIL, dropped).
    idle = planter.plant(FIXTURE, tmp_path / "idle", "idle_start", episode=3)
    both = planter.plant(idle.root, tmp_path / "both", "nan_action", episode=1)
    before = _hashes(both.root)
    out = tmp_path / "report"
    assert main(["doctor", "data", str(both.root), "--out", str(out), "--fix", str(tmp_path / "fixed")]) == 1
    text = capsys.readouterr().out
    assert "FAIL" in text and "actions.finite" in text and "4 episodes kept, 1 dropped, 1 trimmed" in text
    assert _hashes(both.root) == before  # the input is never modified

    report = json.loads((out / "doctor.json").read_text())
    assert report["fail_episodes"] == [1] and report["idle_trims"]["3"][0] >= 18
    finite = next(c for c in report["checks"] if c["name"] == "actions.finite")
    assert finite["findings"][0]["episode"] == 1 and finite["findings"][0]["seconds"]
    html = (out / "report.html").read_text()
    assert "actions.idle_ends" in html and "<img" in html and "episode 1" in html

    fixed = diagnose(tmp_path / "fixed")
    assert fixed.episodes == 4 and _flagged(fixed) == {}
    src, dst = LeRobotDataset.open(both.root), LeRobotDataset.open(tmp_path / "fixed")
    cut = report["idle_trims"]["3"][0]
    assert dst.episode(2)["length"] == src.episode(3)["length"] - cut  # episode 1 dropped: 3 is now 2
    assert np.array_equal(dst.episode_data(2)["action"], src.episode_data(3)["action"][cut:])


def test_unreadable_dataset_is_a_fail_and_bad_options_are_errors(tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(FIXTURE, broken)
    (broken / "data/chunk-000/file-000.parquet").unlink()
    assert main(["doctor", "data", str(broken), "--out", str(tmp_path / "r")]) == 1
    assert "cannot open the dataset" in " ".join(capsys.readouterr().out.split())  # rich wraps lines
    assert main(["doctor", "data", str(FIXTURE), "--fix", str(FIXTURE), "--out", str(tmp_path / "r2")]) == 2
    with pytest.raises(ValueError, match="unknown check"):
        diagnose(FIXTURE, checks=["actions.nope"])
    diag = diagnose(FIXTURE, video=False)
    with pytest.raises(ValueError, match="already exists"):
        write_fixed(diag, FIXTURE)


def test_action_kind_comes_from_the_embodiment_or_the_names():
    ds = LeRobotDataset.open(FIXTURE)
    assert (
        infer_embodiment(ds)[:2] == ("joint_abs", infer_embodiment(ds)[1])
        and infer_embodiment(ds)[1].name == "so101"
    )
    ds.robot_type = "my_arm"
    ds.features = {
        **ds.features,
        "action": {**ds.features["action"], "names": ["dx", "dy", "dz", "grip", "a", "b"]},
    }
    assert infer_embodiment(ds)[0] == "ee_delta"
    assert infer_embodiment(ds, "joint_abs")[0] == "joint_abs"
    with pytest.raises(ValueError, match="action kind"):
        infer_embodiment(ds, "torque")
