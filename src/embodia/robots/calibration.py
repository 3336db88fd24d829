"""SO-101 calibration, in LeRobot's files and LeRobot's units.

An arm calibrated with LeRobot (`lerobot-calibrate`) works with embodia as it is, and the other way
round: embodia reads and writes the same JSON file in the same place.

* **Where**: `$HF_LEROBOT_CALIBRATION`, else `$HF_LEROBOT_HOME/calibration`, else
  `$HF_HOME/lerobot/calibration` (`~/.cache/huggingface/lerobot/calibration`); a follower's file is
  `robots/so_follower/<id>.json` (LeRobot 0.4.4) or `robots/so101_follower/<id>.json` (0.2-0.3), a
  leader's `teleoperators/so_leader/<id>.json` or `teleoperators/so101_leader/<id>.json`.
* **What**: per motor `id`, `drive_mode`, `homing_offset`, `range_min`, `range_max`. The servo reports
  Present_Position = Actual_Position - Homing_Offset; calibration puts the middle pose at 2047 and
  records each joint's range of motion in those ticks (wrist_roll: the full turn, 0..4095).
* **Units** (`to_lerobot` / `from_lerobot`): LeRobot 0.4.4's formulas. Body joints in degrees, zero at
  the middle of the *recorded* range: (ticks - (min + max) / 2) * 360 / 4095. The gripper in 0..100 of
  its recorded range (100 - that with drive_mode 1). embodia's radians are these through
  `embodia.robots.so101.from_lerobot_units`, so an arm recorded by embodia and one recorded by LeRobot
  give the same numbers.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from embodia.robots.feetech.sts3215 import MAX_POSITION

MOTORS = {
    "shoulder_pan": 1,
    "shoulder_lift": 2,
    "elbow_flex": 3,
    "wrist_flex": 4,
    "wrist_roll": 5,
    "gripper": 6,
}
ROLES = {  # role -> (LeRobot's folder, its device names newest first)
    "follower": ("robots", ("so_follower", "so101_follower")),
    "leader": ("teleoperators", ("so_leader", "so101_leader")),
}
MIDDLE = MAX_POSITION // 2  # 2047: where calibration puts the middle pose
_FIELDS = ("id", "drive_mode", "homing_offset", "range_min", "range_max")


class CalibrationError(ValueError):
    """A calibration file that is missing, malformed, or does not match the arm."""


@dataclass(frozen=True)
class MotorCalibration:
    id: int
    drive_mode: int
    homing_offset: int
    range_min: int
    range_max: int

    def __post_init__(self) -> None:
        for name in _FIELDS:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise CalibrationError(f"{name} must be an integer, got {value!r}")
        if self.drive_mode not in (0, 1):
            raise CalibrationError(f"drive_mode must be 0 or 1, got {self.drive_mode}")
        if abs(self.homing_offset) > MIDDLE:
            raise CalibrationError(f"homing_offset {self.homing_offset} outside -{MIDDLE}..{MIDDLE}")
        if not 0 <= self.range_min < self.range_max <= MAX_POSITION:
            raise CalibrationError(
                f"range [{self.range_min}, {self.range_max}] must satisfy 0 <= min < max <= {MAX_POSITION}"
            )


Calibration = dict[str, MotorCalibration]


def calibration_root() -> Path:
    """LeRobot's calibration folder (its `HF_LEROBOT_CALIBRATION` rule)."""
    if os.environ.get("HF_LEROBOT_CALIBRATION"):
        return Path(os.environ["HF_LEROBOT_CALIBRATION"]).expanduser()
    if os.environ.get("HF_LEROBOT_HOME"):
        return Path(os.environ["HF_LEROBOT_HOME"]).expanduser() / "calibration"
    hf_home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "huggingface"
    return Path(hf_home).expanduser() / "lerobot" / "calibration"


def calibration_path(role: str, robot_id: str, folder: Path | None = None) -> Path:
    """The file for this arm. With `folder` (LeRobot's `calibration_dir`): `folder/<id>.json`. Else an
    existing file under either of LeRobot's device names, else where LeRobot 0.4.4 would write it."""
    if role not in ROLES:
        raise CalibrationError(f"role must be one of {sorted(ROLES)}, got {role!r}")
    if not robot_id or "/" in robot_id or "\\" in robot_id or robot_id.startswith("."):
        raise CalibrationError(f"arm id {robot_id!r} must be a plain name (it names a file)")
    if folder is not None:
        return Path(folder) / f"{robot_id}.json"
    kind, names = ROLES[role]
    base = calibration_root() / kind
    for name in names:
        if (base / name / f"{robot_id}.json").is_file():
            return base / name / f"{robot_id}.json"
    return base / names[0] / f"{robot_id}.json"


def load_calibration(path: Path) -> Calibration:
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CalibrationError(
            f"no calibration file at {path}: calibrate the arm first (embodia calibrate)"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise CalibrationError(f"{path}: not a readable calibration file: {exc}") from None
    if not isinstance(raw, dict) or set(raw) != set(MOTORS):
        got = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise CalibrationError(f"{path}: expected the motors {list(MOTORS)}, got {got}")
    out: Calibration = {}
    for name in MOTORS:
        entry = raw[name]
        if not isinstance(entry, dict) or set(entry) != set(_FIELDS):
            raise CalibrationError(f"{path}: {name} must have exactly the fields {list(_FIELDS)}")
        try:
            out[name] = MotorCalibration(**entry)
        except CalibrationError as exc:
            raise CalibrationError(f"{path}: {name}: {exc}") from None
        if out[name].id != MOTORS[name]:
            raise CalibrationError(f"{path}: {name} has id {out[name].id}; the SO-101's is {MOTORS[name]}")
    return out


def save_calibration(path: Path, calibration: Calibration) -> None:
    """Write atomically, in LeRobot's layout (motor order, 4-space indent)."""
    if set(calibration) != set(MOTORS):
        raise CalibrationError(f"a calibration needs the motors {list(MOTORS)}, got {sorted(calibration)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({n: asdict(calibration[n]) for n in MOTORS}, indent=4) + "\n")
    os.replace(tmp, path)


def to_lerobot(ticks: dict[str, int], calibration: Calibration) -> np.ndarray:
    """Present positions (ticks) -> LeRobot's units, in MOTORS order (LeRobot's `_normalize`)."""
    out = np.empty(len(MOTORS))
    for k, name in enumerate(MOTORS):
        c = calibration[name]
        value = ticks[name]
        if name == "gripper":
            norm = (
                (min(c.range_max, max(c.range_min, value)) - c.range_min) / (c.range_max - c.range_min) * 100
            )
            out[k] = 100 - norm if c.drive_mode else norm
        else:
            out[k] = (value - (c.range_min + c.range_max) / 2) * 360 / MAX_POSITION
    return out


def from_lerobot(values, calibration: Calibration) -> dict[str, int]:
    """LeRobot's units -> goal ticks (LeRobot's `_unnormalize`, rounded rather than truncated), each
    inside its calibrated range."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (len(MOTORS),) or not np.isfinite(values).all():
        raise ValueError(f"expected {len(MOTORS)} finite values {list(MOTORS)}, got {values.tolist()}")
    out = {}
    for name, value in zip(MOTORS, values, strict=True):
        c = calibration[name]
        if name == "gripper":
            value = 100 - value if c.drive_mode else value
            ticks = min(100.0, max(0.0, value)) / 100 * (c.range_max - c.range_min) + c.range_min
        else:
            ticks = value * MAX_POSITION / 360 + (c.range_min + c.range_max) / 2
        out[name] = int(min(c.range_max, max(c.range_min, round(ticks))))
    return out
