"""LeRobot's SO-101 units: both conventions are detected and converted back to embodia's radians.

The LeRobot-unit datasets here are made the way LeRobot makes them: the committed fixture's radians
become integer encoder ticks of a made-up calibration (the test's model of an arm), and the ticks go
through LeRobot's own normalisation (`MotorsBus._normalize`, lerobot/motors/motors_bus.py):
RANGE_M100_100 (ticks clamped to the calibrated range, negated with drive_mode 1), DEGREES
((ticks - mid) * 360 / 4095) and RANGE_0_100 for the gripper.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embodia.cli import main
from embodia.data import units
from embodia.data.doctor import diagnose
from embodia.data.doctor_checks import FAIL, PASS
from embodia.data.edit import copy_episodes
from embodia.data.reader import LeRobotDataset
from embodia.robots.spec import ACTION, OBS_STATE, SO101

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "so101_tabletop_tiny"
MAX_RES = 4095  # LeRobot: model_resolution_table["sts3215"] - 1
MOTORS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
GRIPPER_CLOSED = SO101.state_low[5]
TICK = 2 * np.pi / MAX_RES  # radians per tick, as embodia counts LeRobot's degrees


def calibration(drive_elbow: int = 0, wrist_flex_max: int = 3090) -> dict:
    """A made-up LeRobot calibration file (ticks): mids off 2047, wrist_roll a full turn as LeRobot
    records it, a gripper span (1410 ticks = 2.16 rad) unlike the model's joint range (1.92 rad)."""
    ranges = {"shoulder_pan": (800, 3300), "shoulder_lift": (850, 3150), "elbow_flex": (900, 3150),
              "wrist_flex": (870, wrist_flex_max), "wrist_roll": (0, 4095), "gripper": (2010, 3420)}  # fmt: skip
    return {
        m: {"id": i + 1, "drive_mode": drive_elbow if m == "elbow_flex" else 0, "homing_offset": -30 * i,
            "range_min": lo, "range_max": hi}
        for i, (m, (lo, hi)) in enumerate(ranges.items())
    }  # fmt: skip


def lerobot_values(rad: np.ndarray, cal: dict, mode: str) -> np.ndarray:
    """embodia radians -> the arm's integer ticks -> LeRobot's normalised values (mode: degrees or
    range_m100_100 for the body joints; the gripper is RANGE_0_100 in both)."""
    out = np.empty_like(rad, dtype=np.float64)
    for d, m in enumerate(MOTORS):
        c = cal[m]
        lo, hi, drive = c["range_min"], c["range_max"], c["drive_mode"]
        if m == "gripper":  # 0 = the closed limit, as embodia's model has it
            ticks = np.round(lo + (rad[:, d] - GRIPPER_CLOSED) / TICK)
            norm = (np.clip(ticks, lo, hi) - lo) / (hi - lo) * 100
            out[:, d] = 100 - norm if drive else norm
            continue
        mid = (lo + hi) / 2
        ticks = np.round(mid + (-1 if drive else 1) * rad[:, d] / TICK)  # a reversed motor counts down
        if mode == "degrees":
            out[:, d] = (ticks - mid) * 360 / MAX_RES  # LeRobot's DEGREES ignores drive_mode
        else:
            norm = (np.clip(ticks, lo, hi) - lo) / (hi - lo) * 200 - 100
            out[:, d] = -norm if drive else norm
    return out


def make_lerobot_dataset(out: Path, cal: dict, mode: str, robot_type: str) -> Path:
    ds = LeRobotDataset.open(FIXTURE)

    def transform(columns):
        return columns | {
            k: lerobot_values(columns[k], cal, mode).astype(np.float32) for k in (OBS_STATE, ACTION)
        }

    return copy_episodes([(ds, e["episode_index"]) for e in ds.episodes], out, transform, robot_type)


def columns(root: Path) -> np.ndarray:
    ds = LeRobotDataset.open(root)
    return np.concatenate(
        [
            np.concatenate([ds.episode_data(e["episode_index"])[k] for k in (OBS_STATE, ACTION)])
            for e in ds.episodes
        ]
    ).astype(np.float64)


@pytest.fixture(scope="module")
def lerobot_sets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lerobot_units")
    cal_path = root / "so101_follower_arm.json"
    cal_path.write_text(json.dumps(calibration(drive_elbow=1)))
    sets = {
        "cal": cal_path,
        "range": make_lerobot_dataset(root / "range", calibration(drive_elbow=1), "range", "so101_follower"),
        "degrees": make_lerobot_dataset(root / "degrees", calibration(), "degrees", "so_follower"),
        # wrist_flex's calibrated range ends inside the motion: LeRobot clamps it to +100
        "saturated": make_lerobot_dataset(root / "saturated", calibration(wrist_flex_max=2700), "range", "so101_follower"),
    }  # fmt: skip
    return sets


def test_both_conventions_and_radians_are_detected(lerobot_sets):
    deg = units.detect_convention(lerobot_sets["degrees"])
    assert (deg.name, deg.confidence, deg.embodiment) == (units.DEGREES, "high", "so101")
    assert any("lattice" in e for e in deg.evidence)  # within +-100 here: the ticks' lattice decides
    rng = units.detect_convention(lerobot_sets["range"])
    assert (rng.name, rng.confidence, rng.embodiment) == (units.RANGE, "high", "so101")
    assert any("lattice of whole encoder ticks" in e for e in rng.evidence)  # none at +-100 here
    sat = units.detect_convention(lerobot_sets["saturated"])
    assert (sat.name, sat.confidence) == (units.RANGE, "high")
    assert any("exactly +-100" in e for e in sat.evidence)
    assert units.detect_convention(FIXTURE).name == units.EMBODIA


def test_robot_type_alias_table():
    feats = {OBS_STATE: {"shape": [6]}, ACTION: {"shape": [6], "names": None}}
    for rt in ("so101_follower", "so100_follower", "so_follower"):
        assert units.known_embodiment(rt, feats)[0] == "so101"
    assert units.known_embodiment("koch_follower", feats)[0] is None
    named = {OBS_STATE: {"shape": [6]}, ACTION: {"shape": [6], "names": list(SO101.action_names)}}
    assert units.known_embodiment("my_arm", named)[0] == "so101"  # LeRobot's motor names
    assert (
        units.known_embodiment("so101_follower", {OBS_STATE: {"shape": [4]}, ACTION: {"shape": [4]}})[0]
        is None
    )


def test_range_convention_converts_back_with_the_calibration(lerobot_sets, tmp_path):
    res = units.convert(lerobot_sets["range"], tmp_path / "out", calibration=lerobot_sets["cal"])
    assert res.used == units.RANGE and res.gripper == "calibration"
    err = np.abs(columns(res.out) - columns(FIXTURE)).max(0)
    assert np.all(err <= 0.5 * TICK + 1e-5), err  # the ticks' rounding, no more (elbow's motor reversed)
    out = LeRobotDataset.open(res.out)
    assert out.robot_type == SO101.robot_type and out.num_frames == LeRobotDataset.open(FIXTURE).num_frames
    assert out.info["embodia_units"]["convention"] == units.RANGE
    assert out.info["embodia_units"]["converted_from"] == str(LeRobotDataset.open(lerobot_sets["range"]).root)
    source = LeRobotDataset.open(FIXTURE).stats
    for key in (OBS_STATE, ACTION):  # stats recomputed in radians
        for stat in ("min", "max", "mean"):
            assert np.allclose(out.stats[key][stat], source[key][stat], atol=1e-3), (key, stat)
    assert out.camera_keys == LeRobotDataset.open(FIXTURE).camera_keys
    assert out.episode_frames(0, out.camera_keys[0]).shape[0] == out.episodes[0]["length"]
    assert units.detect_convention(res.out).name == units.EMBODIA


def test_degree_convention_converts_with_or_without_the_calibration(lerobot_sets, tmp_path):
    cal = tmp_path / "cal.json"
    cal.write_text(json.dumps(calibration()))
    exact = units.convert(lerobot_sets["degrees"], tmp_path / "exact", calibration=cal)
    err = np.abs(columns(exact.out) - columns(FIXTURE)).max(0)
    assert np.all(err <= 0.5 * TICK + 1e-5), err
    approx = units.convert(lerobot_sets["degrees"], tmp_path / "approx")
    assert approx.used == units.DEGREES and approx.gripper.startswith("model range")
    err = np.abs(columns(approx.out) - columns(FIXTURE)).max(0)
    assert np.all(err[:5] <= 0.5 * TICK + 1e-5), err  # body joints: exact without a calibration
    assert 0.02 < err[5] < 0.2  # the gripper's span is the model's, not the arm's: approximate
    assert any("gripper" in n for n in approx.notes)


def test_range_convention_without_calibration_is_a_clear_error(lerobot_sets, tmp_path):
    with pytest.raises(units.UnitsError, match="needs? the arm's calibration|--calibration FILE"):
        units.convert(lerobot_sets["range"], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(units.UnitsError, match="already in embodia's radians"):
        units.convert(FIXTURE, tmp_path / "out2")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.pop("wrist_roll"), r"no calibration for motors \['wrist_roll'\]"),
        (lambda c: c["elbow_flex"].update(range_min="900"), "elbow_flex.range_min must be a number"),
        (lambda c: c["gripper"].update(range_min=3420), "gripper: range_min 3420 >= range_max 3420"),
        (lambda c: c["shoulder_pan"].update(range_max=5000), "outside the encoder's 0..4095"),
        (lambda c: c["shoulder_pan"].update(drive_mode=2), "drive_mode must be 0 or 1"),
    ],
)
def test_calibration_file_is_validated(tmp_path, edit, message):
    cal = calibration()
    edit(cal)
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(cal))
    with pytest.raises(units.UnitsError, match=message):
        units.load_calibration(path)
    with pytest.raises(units.UnitsError, match="no such calibration file"):
        units.load_calibration(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(units.UnitsError, match="not valid JSON"):
        units.load_calibration(tmp_path / "bad.json")


def test_data_doctor_fails_lerobot_units_and_passes_radians(lerobot_sets):
    sat = diagnose(lerobot_sets["saturated"], video=False)
    r = sat.result("units")
    assert r.severity == FAIL and units.RANGE in r.summary and "embodia dataset convert-units" in r.summary
    clip = sat.result("actions.clipping")
    assert clip.severity != "SKIP" and "LeRobot -100..100" in clip.summary  # judged against +-100
    for name in ("degrees", "range"):
        assert diagnose(lerobot_sets[name], video=False).result("units").severity == FAIL, name
    assert diagnose(FIXTURE, video=False).result("units").severity == PASS


def test_cli_convert_units(lerobot_sets, tmp_path, capsys):
    base = ["dataset", "convert-units", str(lerobot_sets["range"])]
    assert main([*base, "--out", str(tmp_path / "a")]) == 2
    said = " ".join(capsys.readouterr().out.split())
    assert "-100..100 convention" in said and "--calibration FILE" in said
    assert not (tmp_path / "a").exists()
    assert main([*base, "--out", str(tmp_path / "b"), "--calibration", str(lerobot_sets["cal"])]) == 0
    assert "converted from lerobot_range_m100_100" in " ".join(capsys.readouterr().out.split())
    assert diagnose(tmp_path / "b", video=False).result("units").severity == PASS
    forced = [*base, "--out", str(tmp_path / "c"), "--from", "degrees"]  # the user's word wins
    assert main(forced) == 0
    assert LeRobotDataset.open(tmp_path / "c").info["embodia_units"]["convention"] == units.DEGREES
