"""Embodiments as data.

A robot is described once, here, and every stage reads the same description: the simulator builds its
action space from it, the dataset writer names its columns from it, the policy pads to it and the
server validates against it. Nothing downstream hard-codes a joint count or a gripper value.

Units are per dimension and explicit, because mixing radians with degrees (or a 0-1 gripper with a
0-100 one) is the classic silent bug when data moves between tools.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

ActionKind = Literal["joint_abs", "ee_delta"]

# One naming convention from environment to dataset to wire (LeRobot's keys).
OBS_STATE = "observation.state"
OBS_IMAGES = "observation.images"
ACTION = "action"
TASK = "task"


def image_key(camera: str) -> str:
    """`front` -> `observation.images.front`."""
    return f"{OBS_IMAGES}.{camera}"


@dataclass(frozen=True)
class CameraSpec:
    name: str
    height: int = 96
    width: int = 96


@dataclass(frozen=True)
class GripperSpec:
    """Open/closed values, kept separately for state and action.

    They differ on purpose: the commanded "closed" squeezes past the point where the jaws stop on an
    object, so the state never reaches the action's closed value while holding something.
    """

    state_index: int  # which dimension of the state is the gripper
    action_index: int  # which dimension of the action is the gripper
    state_open: float
    state_closed: float
    action_open: float
    action_closed: float


@dataclass(frozen=True)
class EmbodimentSpec:
    name: str
    robot_type: str  # the LeRobot `robot_type` written into datasets
    action_kind: ActionKind
    state_names: tuple[str, ...]
    state_units: tuple[str, ...]
    state_low: tuple[float, ...]
    state_high: tuple[float, ...]
    action_names: tuple[str, ...]
    action_units: tuple[str, ...]
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    # Largest change of the action allowed in one control tick (joint_abs: from the previous target;
    # ee_delta: the delta itself is already bounded by action_low/high, so this is unused there).
    max_action_change: tuple[float, ...] | None
    gripper: GripperSpec
    fps: int
    cameras: tuple[CameraSpec, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        n_s, n_a = len(self.state_names), len(self.action_names)
        for label, seq, n in [
            ("state_units", self.state_units, n_s),
            ("state_low", self.state_low, n_s),
            ("state_high", self.state_high, n_s),
            ("action_units", self.action_units, n_a),
            ("action_low", self.action_low, n_a),
            ("action_high", self.action_high, n_a),
        ]:
            if len(seq) != n:
                raise ValueError(f"{self.name}: {label} has {len(seq)} entries, expected {n}")
        if self.max_action_change is not None and len(self.max_action_change) != n_a:
            raise ValueError(f"{self.name}: max_action_change needs {n_a} entries")

    @property
    def state_dim(self) -> int:
        return len(self.state_names)

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    @property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cameras)

    def action_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.action_low, np.float64), np.asarray(self.action_high, np.float64)

    def to_dict(self) -> dict:
        """JSON-ready description (goes into dataset metadata, checkpoints and the server's metadata)."""
        return {
            "name": self.name,
            "robot_type": self.robot_type,
            "action_kind": self.action_kind,
            "fps": self.fps,
            "state": {
                "names": list(self.state_names),
                "units": list(self.state_units),
                "low": list(self.state_low),
                "high": list(self.state_high),
            },
            "action": {
                "names": list(self.action_names),
                "units": list(self.action_units),
                "low": list(self.action_low),
                "high": list(self.action_high),
            },
            "gripper": {
                "state_index": self.gripper.state_index,
                "action_index": self.gripper.action_index,
                "state_open": self.gripper.state_open,
                "state_closed": self.gripper.state_closed,
                "action_open": self.gripper.action_open,
                "action_closed": self.gripper.action_closed,
            },
            "cameras": [{"name": c.name, "height": c.height, "width": c.width} for c in self.cameras],
        }


# --------------------------------------------------------------------------------------------------
# SO-101 (TheRobotStudio SO-ARM100, `so101_new_calib`): 5 revolute joints + a jaw gripper.
# Native units are radians (the MuJoCo model's); see embodia.robots.so101 for the conversion to
# LeRobot's units (degrees; gripper 0-100).
# Joint ranges are the official model's, verbatim.
SO101_JOINT_NAMES = (
    "shoulder_pan.pos",
    "shoulder_lift.pos",
    "elbow_flex.pos",
    "wrist_flex.pos",
    "wrist_roll.pos",
    "gripper.pos",
)
SO101_LOW = (-1.91986, -1.74533, -1.69, -1.65806, -2.74385, -0.17453)
SO101_HIGH = (1.91986, 1.74533, 1.69, 1.65806, 2.84121, 1.74533)

SO101 = EmbodimentSpec(
    name="so101",
    robot_type="so101_follower",
    action_kind="joint_abs",
    state_names=SO101_JOINT_NAMES,
    state_units=("rad",) * 6,
    state_low=SO101_LOW,
    state_high=SO101_HIGH,
    action_names=SO101_JOINT_NAMES,
    action_units=("rad",) * 6,
    action_low=SO101_LOW,
    action_high=SO101_HIGH,
    # 0.25 rad per 1/30 s tick is 7.5 rad/s: above anything the experts command (so it never alters a
    # good demonstration) and below what would fling the arm on a policy glitch.
    max_action_change=(0.25, 0.25, 0.25, 0.3, 0.4, 0.5),
    # The jaw closes toward the lower limit. "Open" is 0.6 rad (4.5 cm between the pads, enough for the
    # 2.5 cm blocks without sweeping neighbours); holding a block the joint settles near 0.25 rad while
    # the command stays at the lower limit, which is why state and action values differ.
    gripper=GripperSpec(
        state_index=5,
        action_index=5,
        state_open=0.6,
        state_closed=-0.17453,
        action_open=0.6,
        action_closed=-0.17453,
    ),
    fps=30,
    cameras=(CameraSpec("front"), CameraSpec("wrist")),
)

# The same arm driven through the IK: tool-point delta in the base frame plus the gripper target.
SO101_EE = replace(
    SO101,
    name="so101_ee",
    action_kind="ee_delta",
    action_names=("delta.x", "delta.y", "delta.z", "gripper.pos"),
    action_units=("m", "m", "m", "rad"),
    action_low=(-0.02, -0.02, -0.02, SO101_LOW[5]),
    action_high=(0.02, 0.02, 0.02, SO101_HIGH[5]),
    max_action_change=None,
    gripper=replace(SO101.gripper, action_index=3),
)

# --------------------------------------------------------------------------------------------------
# Sawyer as Meta-World exposes it: the policy commands an end-effector delta (scaled by 1/100 m per
# unit inside Meta-World) and a gripper effort; the state a policy may see is the hand position and
# the normalised distance between the fingers (Meta-World's obs[0:4]).
SAWYER = EmbodimentSpec(
    name="sawyer",
    robot_type="sawyer",
    action_kind="ee_delta",
    state_names=("hand.x", "hand.y", "hand.z", "gripper.opening"),
    state_units=("m", "m", "m", "fraction"),
    state_low=(-0.525, 0.348, -0.0525, 0.0),
    state_high=(0.525, 1.025, 0.7, 1.0),
    action_names=("delta.x", "delta.y", "delta.z", "gripper.effort"),
    action_units=("cm/step", "cm/step", "cm/step", "effort"),
    action_low=(-1.0, -1.0, -1.0, -1.0),
    action_high=(1.0, 1.0, 1.0, 1.0),
    max_action_change=None,
    # Meta-World: effort -1 opens, +1 closes; the finger-distance reading is 1 open, ~0 closed.
    gripper=GripperSpec(
        state_index=3, action_index=3, state_open=1.0, state_closed=0.0, action_open=-1.0, action_closed=1.0
    ),
    fps=80,
    cameras=(CameraSpec("corner2"),),
)

EMBODIMENTS: dict[str, EmbodimentSpec] = {s.name: s for s in (SO101, SO101_EE, SAWYER)}


def get_embodiment(name: str) -> EmbodimentSpec:
    try:
        return EMBODIMENTS[name]
    except KeyError:
        raise ValueError(f"unknown embodiment {name!r}; valid embodiments: {sorted(EMBODIMENTS)}") from None
