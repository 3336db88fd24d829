"""LeRobot's SO-101 units: which convention a dataset was recorded in, and conversion to embodia's.

embodia keeps the MuJoCo model's radians for every joint (`embodia.robots.so101`). LeRobot's SO-100 /
SO-101 driver reports each motor's encoder ticks (0..4095 per turn on the STS3215) normalised with the
arm's calibration file, `{motor: {id, drive_mode, homing_offset, range_min, range_max}}`, and has used
two conventions for the five body joints:

- `lerobot_range_m100_100` (LeRobot 0.2-0.3, `so101_follower` / `so100_follower` with the default
  `use_degrees=False`): v = (ticks - min) / (max - min) * 200 - 100, negated with drive_mode 1, the
  ticks clamped to the calibrated range first (so values pile up at exactly +-100);
- `lerobot_degrees` (LeRobot 0.4.4, `so_follower`, default `use_degrees=True`; earlier with
  `use_degrees=True`): v = (ticks - mid) * 360 / 4095, mid = (min + max) / 2, not clamped.

In both, the gripper is 0..100 of *its calibrated range* (`RANGE_0_100`, 100 - v with drive_mode 1),
not of the model's joint range. Values read from the encoders therefore lie on a lattice: in degrees,
multiples of 360 / 4095 / 2; that, values beyond +-100 (impossible in -100..100) and values at exactly
+-100 (the clamp) tell the two conventions apart; the robot type only breaks ties.

Conversion (`convert`), with embodia's zero at the middle of each body joint's calibrated range (as
`to_lerobot_units` has it) and the gripper's 0 at the model's closed limit:

- degrees: body radians = v * pi / 180, exact without a calibration; the gripper needs the calibrated
  range for its span (without `--calibration` it is scaled to the model's range, like
  `from_lerobot_units`, and the output records that it is approximate);
- -100..100: the calibration is required (a value is a fraction of each motor's own range): ticks =
  min + (v + 100) / 200 * (max - min), radians = (ticks - mid) * 2 pi / 4095.

`robot_type` alone cannot tell the units: embodia writes `so101_follower` too (LeRobot 0.2-0.3's name).
`so_follower` (LeRobot >= 0.4) is written for SO-100 and SO-101 alike; both have the same motors and
the same normalisation, so the units convert the same way, but embodia's kinematics are the SO-101's.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embodia.data.doctor_checks import FAIL, WARN, Outcome
from embodia.data.format import DatasetError
from embodia.data.reader import LeRobotDataset
from embodia.robots.so101 import ALL_JOINTS, from_lerobot_units
from embodia.robots.spec import ACTION, OBS_STATE, SO101

EMBODIA = "embodia_radians"
DEGREES = "lerobot_degrees"
RANGE = "lerobot_range_m100_100"
UNKNOWN = "unknown"
CONVENTIONS = (EMBODIA, DEGREES, RANGE)
# `--from` spellings -> convention
FROM_CHOICES = {"auto": None, "degrees": DEGREES, "range_m100_100": RANGE}

# LeRobot robot_type -> (embodia embodiment, what the name says)
ROBOT_TYPES: dict[str, tuple[str, str]] = {
    "so101_follower": ("so101", "SO-101 (LeRobot 0.2-0.3's name, and embodia's own)"),
    "so100_follower": ("so101", "SO-100 (LeRobot 0.2-0.3): same motors and units; kinematics assumed SO-101"),
    "so_follower": ("so101", "SO-100 or SO-101 (LeRobot >= 0.4 writes this for both); assumed SO-101"),
    "so101": ("so101", "SO-101"),
    "so100": ("so101", "SO-100: same motors and units; kinematics assumed SO-101"),
}
MOTORS = ALL_JOINTS  # shoulder_pan .. wrist_roll, gripper: LeRobot's motor names, in its order
TICKS_PER_TURN = 4095  # LeRobot's max_res for the STS3215 (resolution 4096 - 1), used in both directions
RAD_PER_TICK = 2 * math.pi / TICKS_PER_TURN
LATTICE = 360 / TICKS_PER_TURN / 2  # degrees values are (ticks - mid) * 360/4095, mid a half-integer
CALIBRATION_HINT = (
    "LeRobot's calibration file of the arm that recorded the dataset, e.g. "
    "~/.cache/huggingface/lerobot/calibration/robots/so101_follower/<id>.json"
)
COMMAND = "embodia dataset convert-units"


class UnitsError(ValueError):
    """A dataset or calibration that cannot be converted, with the reason."""


@dataclass
class Convention:
    name: str  # one of CONVENTIONS, or UNKNOWN
    confidence: str  # "high" | "medium" | "low"
    evidence: list[str] = field(default_factory=list)
    embodiment: str | None = None  # "so101" for the SO family, None when not a known embodiment

    @property
    def lerobot(self) -> bool:
        return self.name in (DEGREES, RANGE)

    def describe(self) -> str:
        return f"{self.name} ({self.confidence} confidence: {'; '.join(self.evidence)})"


# ------------------------------------------------------------------------------------------- detection
def known_embodiment(robot_type: str | None, features: dict) -> tuple[str | None, str]:
    """('so101', why) when the dataset is an SO-100/SO-101 arm with 6-entry state and action."""
    dims = [int(np.prod(features.get(k, {}).get("shape", [0]))) for k in (OBS_STATE, ACTION)]
    if dims != [6, 6]:
        return None, f"state/action dims {dims}, not the SO arm's 6"
    if robot_type in ROBOT_TYPES:
        return ROBOT_TYPES[robot_type][0], f"robot_type {robot_type!r}: {ROBOT_TYPES[robot_type][1]}"
    names = [str(n) for n in (features[ACTION].get("names") or [])]
    if names == list(SO101.action_names):
        return "so101", f"action names {names[:2]}... are the SO arm's motors"
    return None, f"robot_type {robot_type!r} is not in the SO-101 alias table"


def detect_from(robot_type: str | None, features: dict, info: dict, columns: list[np.ndarray]) -> Convention:
    """The convention of (N, 6) state/action arrays of a dataset with this robot_type and features."""
    emb, why = known_embodiment(robot_type, features)
    if emb is None:
        return Convention(UNKNOWN, "high", [why])
    if isinstance(info.get("embodia_units"), dict):
        return Convention(EMBODIA, "high", [why, "converted by embodia (meta/info.json embodia_units)"], emb)
    x = np.concatenate([c for c in columns if c is not None and len(c)] or [np.zeros((0, 6))])
    x = x[np.all(np.isfinite(x), axis=1)].astype(np.float64)
    if not len(x):
        return Convention(UNKNOWN, "low", [why, "no finite state/action values"], emb)
    lo, hi = np.quantile(x, 0.01, axis=0), np.quantile(x, 0.99, axis=0)
    body, grip = x[:, :5], x[:, 5]
    if np.all(np.abs(np.r_[lo[:5], hi[:5]]) <= 3.3) and lo[5] >= -0.5 and hi[5] <= 2.2:
        return Convention(
            EMBODIA, "high", [why, f"body joints within +-{np.abs(body).max():.2f}: radians"], emb
        )
    ev = [why]
    peak = float(np.abs(body).max())
    at_bound = float(np.mean(np.abs(np.abs(body) - 100) < 1e-3))
    lattice = _lattice_fraction(body)
    ev.append(f"body joints up to +-{peak:.1f}, gripper {grip.min():.1f}..{grip.max():.1f}")
    if peak > 200 or grip.min() < -5 or grip.max() > 105:
        return Convention(UNKNOWN, "low", [*ev, "fits neither radians nor LeRobot's units"], emb)
    if peak > 100.5 or (lattice is not None and lattice >= 0.9):
        if peak > 100.5:
            ev.append("beyond +-100: impossible in the -100..100 convention")
        if lattice is not None:
            ev.append(f"{lattice:.0%} of distinct body values on the 360/4095/2-degree encoder lattice")
        return Convention(DEGREES, "high", ev, emb)
    on_range = _range_lattice_fraction(body)
    if at_bound > 0 or (on_range is not None and on_range >= 0.6):
        if at_bound > 0:
            ev.append(
                f"{at_bound:.1%} of body values at exactly +-100 (LeRobot's clamp to the calibrated range)"
            )
        if on_range is not None:
            ev.append(f"{on_range:.0%} of body joints' values on a -100..100 lattice of whole encoder ticks")
        strong = at_bound >= 0.005 or (on_range is not None and on_range >= 0.6)
        return Convention(RANGE, "high" if strong else "medium", ev, emb)
    if robot_type == "so_follower":
        return Convention(DEGREES, "medium", [*ev, "LeRobot >= 0.4 records degrees by default"], emb)
    if robot_type in ("so101_follower", "so100_follower"):
        ev.append("LeRobot 0.2-0.3's default for this robot_type is -100..100 (degrees if use_degrees=True)")
        return Convention(RANGE, "medium", ev, emb)
    return Convention(RANGE, "low", [*ev, "within +-100, no other sign: -100..100 or degrees"], emb)


def _lattice_fraction(body: np.ndarray) -> float | None:
    """Share of the distinct body values that sit on the degree convention's lattice (None: too few)."""
    values = np.concatenate([np.unique(body[:, d]) for d in range(body.shape[1])])
    values = values[values != 0]
    if len(values) < 20:
        return None
    r = values / LATTICE
    return float(np.mean(np.abs(r - np.round(r)) < 0.02))


def _range_lattice_fraction(body: np.ndarray) -> float | None:
    """Share of the body joints whose distinct values are (ticks - min) * 200 / span - 100 for a whole
    span of ticks (estimated from the smallest step between values); None: too few values."""
    fits = []
    for d in range(body.shape[1]):
        u = np.unique(body[:, d]) + 100
        steps = np.diff(u)
        steps = steps[steps > 1e-4]
        if len(u) < 20 or not len(steps):
            continue
        guess = round(200 / steps.min())
        best = 0.0
        for span in range(max(1, guess - 2), min(TICKS_PER_TURN, guess + 2) + 1):
            r = u * span / 200
            best = max(best, float(np.mean(np.abs(r - np.round(r)) < 0.02)))
        fits.append(best >= 0.9)
    return float(np.mean(fits)) if fits else None


def detect_convention(ds: LeRobotDataset | str | Path) -> Convention:
    """Detect the units of a dataset's state and action (reads their columns)."""
    if not isinstance(ds, LeRobotDataset):
        ds = LeRobotDataset.open(ds)
    emb, why = known_embodiment(ds.robot_type, ds.features)
    if emb is None:
        return Convention(UNKNOWN, "high", [why])
    columns = []
    for ep in ds.episodes:
        data = ds.episode_data(ep["episode_index"])
        columns += [data[k].reshape(len(data[k]), -1) for k in (OBS_STATE, ACTION)]
    return detect_from(ds.robot_type, ds.features, ds.info, columns)


def check_units(scan) -> Outcome:
    """The data doctor's `units` check: an SO-101 dataset must be in embodia's radians. Reads the
    convention `doctor.diagnose` detected (`scan.units`)."""
    conv: Convention | None = scan.units
    if conv is None or conv.embodiment is None:
        why = conv.evidence[0] if conv is not None and conv.evidence else "not detected"
        return Outcome(skipped=f"not an embodiment with known LeRobot units ({why})")
    out = Outcome()
    if conv.name == EMBODIA:
        out.note = f"embodia radians ({conv.evidence[-1]})"
        return out
    if conv.name == UNKNOWN:
        out.add(WARN, f"units not recognised: {'; '.join(conv.evidence)}")
        return out
    need = "--calibration CAL.json" if conv.name == RANGE else "[--calibration CAL.json]"
    sev = WARN if conv.confidence == "low" else FAIL
    out.add(sev, f"in LeRobot's units, convention {conv.name} ({conv.confidence} confidence: "
                 f"{'; '.join(conv.evidence)}), not embodia's radians: a policy would read degrees or "
                 f"percentages as radians. Convert: {COMMAND} DATASET --out OUT {need}")  # fmt: skip
    return out


# ----------------------------------------------------------------------------------------- calibration
@dataclass(frozen=True)
class MotorCalibration:
    range_min: float
    range_max: float
    drive_mode: int = 0

    @property
    def mid(self) -> float:
        return (self.range_min + self.range_max) / 2


def load_calibration(path: str | Path) -> dict[str, MotorCalibration]:
    """Read and check a LeRobot calibration file: every SO motor, numeric ranges, min < max."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UnitsError(f"{path}: no such calibration file ({CALIBRATION_HINT})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UnitsError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UnitsError(f"{path}: expected a JSON object {{motor: {{range_min, range_max, ...}}}}")
    missing = [m for m in MOTORS if m not in data]
    if missing:
        raise UnitsError(
            f"{path}: no calibration for motors {missing}; expected {list(MOTORS)} ({CALIBRATION_HINT})"
        )
    out = {}
    for m in MOTORS:
        entry = data[m]
        if not isinstance(entry, dict):
            raise UnitsError(f"{path}: {m!r} must be an object with range_min and range_max")
        vals = {}
        for key in ("range_min", "range_max"):
            v = entry.get(key)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise UnitsError(f"{path}: {m}.{key} must be a number of encoder ticks, got {v!r}")
            vals[key] = float(v)
        if vals["range_min"] >= vals["range_max"]:
            raise UnitsError(
                f"{path}: {m}: range_min {vals['range_min']:g} >= range_max {vals['range_max']:g}"
            )
        if vals["range_min"] < 0 or vals["range_max"] > TICKS_PER_TURN:
            raise UnitsError(f"{path}: {m}: range {vals['range_min']:g}..{vals['range_max']:g} is outside the "
                             f"encoder's 0..{TICKS_PER_TURN}")  # fmt: skip
        drive = entry.get("drive_mode", 0)
        if drive not in (0, 1) or isinstance(drive, bool):
            raise UnitsError(f"{path}: {m}.drive_mode must be 0 or 1, got {drive!r}")
        out[m] = MotorCalibration(vals["range_min"], vals["range_max"], int(drive))
    return out


# ------------------------------------------------------------------------------------------ conversion
def to_radians(x, convention: str, calibration: dict[str, MotorCalibration] | None = None) -> np.ndarray:
    """LeRobot values (..., 6) in `convention` -> embodia radians (float64)."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] != 6:
        raise UnitsError(f"SO-101 vectors have 6 entries {list(MOTORS)}, got shape {x.shape}")
    if convention == DEGREES and calibration is None:
        return from_lerobot_units(x)  # gripper scaled to the model's range: approximate
    if calibration is None:
        raise UnitsError(f"the {convention} convention needs the arm's calibration ({CALIBRATION_HINT})")
    # drive_mode does not enter: LeRobot's normalised value already follows the joint's direction
    # (it negates the ticks' -100..100 value, or takes 100 - v for the gripper, on reversed motors; its
    # DEGREES mode ignores drive_mode, which LeRobot's SO calibration always writes as 0).
    out = np.empty_like(x)
    for d, m in enumerate(MOTORS[:5]):
        c = calibration[m]
        if convention == DEGREES:
            out[..., d] = np.deg2rad(x[..., d])
        elif convention == RANGE:  # ticks - mid = v / 100 * (max - min) / 2, either way round
            out[..., d] = x[..., d] / 100 * (c.range_max - c.range_min) / 2 * RAD_PER_TICK
        else:
            raise UnitsError(f"cannot convert from {convention!r}; conventions: {DEGREES}, {RANGE}")
    g = calibration["gripper"]
    out[..., 5] = SO101.state_low[5] + x[..., 5] / 100 * (g.range_max - g.range_min) * RAD_PER_TICK
    return out


@dataclass
class ConvertResult:
    out: Path
    convention: Convention
    used: str  # the convention converted from
    calibration: str | None
    gripper: str  # "calibration" or "model range (approximate)"
    episodes: int
    frames: int
    notes: list[str] = field(default_factory=list)


def convert(
    src: str | Path, out: str | Path, convention: str = "auto", calibration: str | Path | None = None
) -> ConvertResult:
    """Write a copy of the SO-101 dataset `src` at `out` with state and action in embodia's radians
    (stats recomputed, videos stream-copied, robot_type embodia's, meta/info.json `embodia_units`
    recording the source and the convention). `convention`: auto, degrees or range_m100_100."""
    from embodia.data.edit import copy_episodes

    if convention not in FROM_CHOICES:
        raise UnitsError(f"--from must be one of {sorted(FROM_CHOICES)}, got {convention!r}")
    if Path(out).resolve() == Path(src).resolve():
        raise UnitsError("the output must be a new folder; the input dataset is never modified")
    ds = LeRobotDataset.open(src)
    found = detect_convention(ds)
    if found.embodiment is None:
        raise UnitsError(f"{ds.root}: not an SO-100/SO-101 dataset ({found.evidence[0]}); known robot "
                         f"types: {sorted(ROBOT_TYPES)}")  # fmt: skip
    _check_names(ds)
    used = FROM_CHOICES[convention] or found.name
    if used == EMBODIA:
        raise UnitsError(f"{ds.root}: already in embodia's radians ({found.describe()}); nothing to convert")
    if used == UNKNOWN:
        raise UnitsError(f"{ds.root}: units not recognised ({found.describe()}); give --from degrees or "
                         "--from range_m100_100")  # fmt: skip
    if used == RANGE and calibration is None:
        raise UnitsError(
            f"{ds.root} is in LeRobot's -100..100 convention ({found.describe()}): each value is a fraction "
            "of that motor's calibrated range, so radians need the arm's calibration. Pass "
            f"--calibration FILE ({CALIBRATION_HINT})"
        )
    cal = load_calibration(calibration) if calibration is not None else None
    notes = []
    if FROM_CHOICES[convention] and found.lerobot and found.name != used:
        notes.append(f"--from {convention} overrides the detected {found.describe()}")
    gripper = "calibration" if cal else "model range (approximate)"
    if cal is None:
        notes.append("gripper 0..100 scaled to the model's joint range, not the arm's calibrated range "
                     "(pass --calibration for the exact span)")  # fmt: skip

    def transform(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return columns | {k: to_radians(columns[k], used, cal).astype(columns[k].dtype)
                          for k in (OBS_STATE, ACTION)}  # fmt: skip

    record: dict[str, Any] = {"units": "rad", "converted_from": str(ds.root), "source_robot_type": ds.robot_type,
                              "convention": used, "detected": found.name, "calibration": str(calibration) if
                              calibration else None, "gripper": gripper}  # fmt: skip
    path = copy_episodes([(ds, e["episode_index"]) for e in ds.episodes], out, transform=transform,
                         robot_type=SO101.robot_type, info_extra={"embodia_units": record})  # fmt: skip
    return ConvertResult(Path(path), found, used, record["calibration"], gripper, ds.num_episodes,
                         ds.num_frames, notes)  # fmt: skip


def _check_names(ds: LeRobotDataset) -> None:
    for key in (OBS_STATE, ACTION):
        names = ds.features[key].get("names")
        if isinstance(names, dict):  # LeRobot v2.0's {"motors": [...]}
            names = next(iter(names.values()), None)
        if names and [str(n) for n in names] != list(SO101.state_names):
            raise DatasetError(f"{ds.root}: {key} names {names} are not the SO arm's "
                               f"{list(SO101.state_names)} in that order")  # fmt: skip
