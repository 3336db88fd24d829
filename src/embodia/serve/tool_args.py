"""What the agent tools share, whichever robot they drive (the simulated tabletop's `RobotTools`, a real
arm's `ArmTools`): the limits and checks on an agent's arguments, the error an agent reads, the output
it gets, and the task catalogue as it is described to it."""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embodia.robots.spec import SO101
from embodia.sim.tasks import COLORS, DIRECTIONS, FAMILIES

MAX_DO_STEPS = 1500  # 50 s at 30 Hz: longer than any family's step limit (300)
DEFAULT_FREE_STEPS = 300  # step cap for an instruction that matches no catalogue task
MAX_INSTRUCTION_CHARS = 300
JOINT_SPEED = 0.06  # rad per 1/30 s tick (1.8 rad/s) for move_to: brisk, but no flinging of blocks
SETTLE_TICKS = 45  # after the interpolation, ticks allowed for the servos to converge
WORKSPACE_LIMIT = 1.0  # |coordinate| in metres; the arm reaches ~0.4 m, so larger means "centimetres?"
ARM_NAMES = tuple(n.removesuffix(".pos") for n in SO101.state_names[:5])
GRIP = SO101.gripper


class RobotError(ValueError):
    """A tool call that cannot be carried out; the message tells the agent why and what to do."""


@dataclass
class ToolOutput:
    data: dict[str, Any]
    images: list[bytes] = field(default_factory=list)  # PNG files


def png(image: np.ndarray) -> bytes:
    from PIL import Image  # a matplotlib dependency, so always installed with embodia

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def rounded(v, nd: int = 4) -> list[float]:
    return [round(float(x), nd) for x in np.asarray(v).ravel()]


def instruction_text(instruction) -> str:
    if not isinstance(instruction, str):
        raise RobotError(f"the instruction must be a string, got {type(instruction).__name__}")
    text = " ".join(instruction.split())
    if not text:
        raise RobotError(
            f'the instruction is empty; e.g. "put the red block in the bowl". {catalogue_hint()}'
        )
    if len(text) > MAX_INSTRUCTION_CHARS:
        raise RobotError(
            f"the instruction has {len(text)} characters (at most {MAX_INSTRUCTION_CHARS}); give one short "
            "instruction per call"
        )
    return text


def step_limit(max_steps, default: int) -> int:
    if max_steps is None:
        return default
    if isinstance(max_steps, bool) or not isinstance(max_steps, int | float) or max_steps != int(max_steps):
        raise RobotError(f"max_steps must be a whole number of 1/30 s control steps, got {max_steps!r}")
    if not 1 <= max_steps <= MAX_DO_STEPS:
        raise RobotError(f"max_steps must be in 1..{MAX_DO_STEPS} (30 steps = 1 s), got {max_steps}")
    return int(max_steps)


def check_xyz(x, y, z) -> np.ndarray:
    try:
        target = np.array([x, y, z], dtype=np.float64)
    except (TypeError, ValueError):
        raise RobotError(f"x, y, z must be numbers (metres), got {x!r}, {y!r}, {z!r}") from None
    if not np.all(np.isfinite(target)):
        raise RobotError(f"x, y, z must be finite numbers (metres), got {target.tolist()}")
    if np.any(np.abs(target) > WORKSPACE_LIMIT):
        raise RobotError(
            f"target {target.tolist()} is far outside the arm's reach (about 0.4 m): coordinates are "
            f"metres, not centimetres (e.g. 0.2 for 20 cm), in the robot base frame"
        )
    if target[2] < 0.0:
        raise RobotError(f"z = {target[2]} m is below the table top (z = 0); use z >= 0")
    return target


def check_pitch(pitch_deg) -> float | None:
    """An approach angle in degrees (90 = straight down) as radians; None stays None."""
    if pitch_deg is None:
        return None
    if (
        not isinstance(pitch_deg, int | float)
        or not math.isfinite(pitch_deg)
        or not -90.0 <= pitch_deg <= 90.0
    ):
        raise RobotError(
            f"pitch_deg must be between -90 and 90 (90 = pointing straight down), got {pitch_deg}"
        )
    return math.radians(pitch_deg)


def catalogue_families() -> list[dict[str, Any]]:
    """Each task family with example instructions, held-out paraphrases, its success check and step limit."""
    families = []
    colors = list(COLORS)
    for i, fam in enumerate(FAMILIES.values()):
        slots = {"color": colors[i % 4], "other": colors[(i + 1) % 4], "direction": "left"}
        families.append(
            {
                "family": fam.name,
                "examples": [t.format(**slots) for t in fam.train_templates],
                "paraphrases": [t.format(**slots) for t in fam.heldout_templates],
                "success": fam.success,
                "step_limit": fam.max_steps,
            }
        )
    return families


def catalogue_hint() -> str:
    slots = {"color": "red", "other": "blue", "direction": "left"}
    examples = "; ".join(repr(f.train_templates[0].format(**slots)) for f in FAMILIES.values())
    return (
        f"Known skills (list_skills() has more): {examples}. Colors: {', '.join(COLORS)}; "
        f"directions: {', '.join(DIRECTIONS)}."
    )


def arm_state(q) -> dict[str, Any]:
    """Joints (rad) and the gripper (position, opening 0 closed .. 1 open, in words) of a joint vector."""
    q = np.asarray(q, np.float64)
    span = GRIP.state_open - GRIP.state_closed
    opening = float(np.clip((q[GRIP.state_index] - GRIP.state_closed) / span, 0.0, 1.0))
    return {
        "joints_rad": {n: round(float(v), 4) for n, v in zip(ARM_NAMES, q[:5], strict=True)},
        "gripper": {
            "position_rad": round(float(q[GRIP.state_index]), 4),
            "opening": round(opening, 3),
            "state": "open" if opening > 0.85 else "closed" if opening < 0.15 else "partly open",
        },
    }


@functools.cache
def grasp_kinematics():
    """The SO-101's kinematics at the grasp point (between the jaws: what move_to aims and
    tool_position reports), built once per process."""
    from embodia.robots.kinematics import SO101Kinematics
    from embodia.robots.so101 import GRASP_SITE

    return SO101Kinematics(site=GRASP_SITE)


def drive(start: np.ndarray, goal: np.ndarray, step: Callable[[np.ndarray], None],
          measured: Callable[[], np.ndarray], settle_joint: int | None = None) -> int:  # fmt: skip
    """Command `start` -> `goal` at JOINT_SPEED per tick (`step(action)` is one tick), then hold `goal`
    until the servos converge, at most SETTLE_TICKS. With `settle_joint`, until that joint stops moving
    (a gripper closing on an object never reaches its goal). Returns the ticks used."""
    n = max(1, math.ceil(float(np.max(np.abs(goal - start))) / JOINT_SPEED))
    for i in range(1, n + 1):
        step(start + (goal - start) * (i / n))
    ticks, prev = n, measured()
    for _ in range(SETTLE_TICKS):
        step(goal)
        ticks += 1
        q = measured()
        moving, prev = np.abs(q - prev), q
        if settle_joint is not None:
            if moving[settle_joint] < 2e-3:
                break
        elif np.max(np.abs(q[:5] - goal[:5])) < 5e-3 and np.max(moving[:5]) < 1e-3:
            break
    return ticks


def ik_goal(target: np.ndarray, pitch: float | None, q_now: np.ndarray, command: np.ndarray) -> np.ndarray:
    """The joint goal that puts the grasp point at `target` (the gripper kept as commanded); an unreachable
    target is a RobotError naming the nearest reachable point."""
    from embodia.robots.kinematics import UnreachableError

    try:
        q = grasp_kinematics().move_to(*target, pitch=pitch, q_init=q_now)
    except UnreachableError as exc:
        raise RobotError(str(exc)) from None
    goal = np.asarray(command, np.float64).copy()
    goal[:5] = q[:5]
    return goal


def moved(target: np.ndarray, reached: np.ndarray, ticks: int, how: str = "") -> ToolOutput:
    """move_to's answer: where the grasp point got (`how`: how that was measured), within 2 cm or not."""
    err = float(np.linalg.norm(reached - target))
    ok = err <= 0.02
    where = f"{rounded(reached, 3)} m{how}"
    summary = (f"moved to {where}, {err * 100:.1f} cm from the target" if ok else
               f"stopped at {where}, {err * 100:.1f} cm short of the target (blocked by the table or an object?)")  # fmt: skip
    return ToolOutput({"target_m": rounded(target), "reached_m": rounded(reached), "error_m": round(err, 4),
                       "reached": ok, "ticks": ticks, "summary": summary})  # fmt: skip


def check_seed(seed) -> int | None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31):
        raise RobotError(f"seed must be an integer in 0..{2**31 - 1}, got {seed!r}")
    return seed
