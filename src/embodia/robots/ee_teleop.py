"""Drive the SO-101 by its end effector: velocity commands (keys, a gamepad's sticks, a script) become
joint goals through differential IK, one control tick at a time.

    leader = EndEffectorLeader(EETeleopConfig(), fps=30)
    leader.sync(q_now)                                   # start where the arm is
    leader.command(move=(1, 0, 0), gripper="close")      # forward at full speed, close the jaws
    action = leader.get_action()                         # this tick's joint goal (radians, 6)

It is a teleoperation leader like the SO-101 leader arm (`get_action() -> radians`), so the same loops
(`embodia.data.teleop.teleoperate`, recording) run it. Frame: the robot's base frame, x forward (away
from the base), y to the robot's left, z up; the point moved is the grasp point between the jaws. Pitch
is the approach axis's angle below the horizontal; roll turns the wrist.

A command holds until the next one or until `timeout_s` passes without one: a page that lost its
connection, or a key whose release never arrived, stops the arm instead of driving it on. A target the
IK cannot reach within `tolerance` is refused: the arm stays at the last reachable pose and `status()`
says so (`reachable` False, `refused` counts ticks), so the person sees why the arm stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from embodia.configs import opt, positive_float
from embodia.robots.so101 import GRASP_SITE, HOME_QPOS
from embodia.robots.spec import SO101

GRIPPER = {"open": SO101.gripper.action_open, "close": SO101.gripper.action_closed}


@dataclass(frozen=True)
class EETeleopConfig:
    speed: float = opt(0.10, "the grasp point's speed at a full command, m/s", parse=positive_float)
    pitch_speed: float = opt(1.0, "tilt speed at a full command, rad/s", parse=positive_float)
    roll_speed: float = opt(2.0, "wrist-roll speed at a full command, rad/s", parse=positive_float)
    timeout_s: float = opt(0.5, "a command older than this counts as stop (resend to keep moving)",
                           parse=positive_float)  # fmt: skip
    tolerance: float = opt(0.004, "a target the IK misses by more is refused, metres", parse=positive_float)
    # Key presses are steps from 0 to full speed; the applied velocity ramps to the command over this long,
    # so the recorded joint goals accelerate smoothly (the data doctor flags steps as jumps).
    ramp_s: float = opt(0.1, "seconds from standstill to a full command (and back)", parse=positive_float)
    # The box the grasp point is kept in (base frame, metres): above the table, in front of the base.
    low: tuple[float, float, float] = opt((0.05, -0.32, 0.005), cli=False)
    high: tuple[float, float, float] = opt((0.45, 0.32, 0.35), cli=False)
    pitch_range: tuple[float, float] = opt((-0.5, 1.57), cli=False)

    def __post_init__(self) -> None:
        for name in ("speed", "pitch_speed", "roll_speed", "timeout_s", "tolerance", "ramp_s"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        if not all(lo < hi for lo, hi in zip(self.low, self.high, strict=True)):
            raise ValueError(f"the workspace box needs low < high on every axis, got {self.low}, {self.high}")


def _unit_vector(value, n: int, name: str) -> np.ndarray:
    v = np.asarray(value, np.float64).reshape(-1)
    if v.shape != (n,) or not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be {n} finite numbers, got {value!r}")
    return np.clip(v, -1.0, 1.0)


class EndEffectorLeader:
    """End-effector velocity commands -> joint goals, through the grasp point's differential IK."""

    def __init__(self, cfg: EETeleopConfig | None = None, fps: float = SO101.fps,
                 clock: Callable[[], float] = time.monotonic, kinematics=None):  # fmt: skip
        from embodia.robots.kinematics import SO101Kinematics  # mink: loaded when a leader is made

        self.cfg = cfg or EETeleopConfig()
        self.dt = 1.0 / fps
        self.clock = clock
        self.kin = kinematics or SO101Kinematics(site=GRASP_SITE)
        self.q = HOME_QPOS.copy()  # until sync() gives the arm's joints
        self.target = np.zeros(3)
        self.pitch = 0.0
        self._move = np.zeros(3)  # commanded (-1..1 of the speeds)
        self._turn = np.zeros(2)  # pitch, roll
        self._v = np.zeros(5)  # applied: x, y, z, pitch, roll, ramping towards the command
        self._stamp = -np.inf
        self.reachable = True
        self.refused = 0  # ticks whose target was refused (unreachable), since the last sync
        self.ticks = 0

    def sync(self, q) -> None:
        """Start from the arm's joints `q` (6): the target becomes where the grasp point is."""
        q = np.asarray(q, np.float64)
        if q.shape != (6,) or not np.all(np.isfinite(q)):
            raise ValueError(f"q must be the 6 joint positions (radians), got {q!r}")
        self.q = q.copy()
        from embodia.robots.kinematics import approach_pitch

        pos, rot = self.kin.fk_pose(q)
        self.target = pos
        self.pitch = float(np.clip(approach_pitch(rot), *self.cfg.pitch_range))
        self._move[:] = 0.0
        self._turn[:] = 0.0
        self._v[:] = 0.0
        self.reachable, self.refused = True, 0

    def command(self, move: Sequence[float] = (0.0, 0.0, 0.0), pitch: float = 0.0, roll: float = 0.0,
                gripper: str | float | None = None) -> None:  # fmt: skip
        """Set the velocity command (each axis -1..1 of the configured speed; out-of-range values are
        clipped, non-finite ones refused). `gripper`: "open", "close", a goal in radians, or None to keep."""
        move_v = _unit_vector(move, 3, "move")
        turn = _unit_vector([pitch, roll], 2, "pitch and roll")
        goal = self._gripper_goal(gripper)
        self._move, self._turn = move_v, turn
        if goal is not None:
            self.q[5] = goal
        self._stamp = self.clock()

    def stop(self) -> None:
        self._move[:] = 0.0
        self._turn[:] = 0.0

    def get_action(self) -> np.ndarray:
        """One tick: move the target by the command, solve IK from the last goal; an unreachable target
        is refused (the last reachable goal is sent again)."""
        self.ticks += 1
        if self.clock() - self._stamp > self.cfg.timeout_s:
            self.stop()
        c = self.cfg
        step = self.dt / c.ramp_s
        self._v += np.clip(np.concatenate([self._move, self._turn]) - self._v, -step, step)
        if not self._v.any():
            return self.q.copy()
        move, (dpitch, droll) = self._v[:3], self._v[3:]
        target = np.clip(self.target + move * c.speed * self.dt, c.low, c.high)
        pitch = float(np.clip(self.pitch + dpitch * c.pitch_speed * self.dt, *c.pitch_range))
        q_seed = self.q.copy()
        lo, hi = self.kin.lower[4], self.kin.upper[4]
        q_seed[4] = float(np.clip(q_seed[4] + droll * c.roll_speed * self.dt, lo, hi))
        res = self.kin.track(target, pitch, q_seed)
        ok = res.error <= c.tolerance and res.pitch_error <= np.radians(3.0)
        if ok:
            self.q[:5] = res.q[:5]
            self.target, self.pitch = target, pitch
        else:
            self.refused += 1
            self._v[:] = 0.0  # pushing on from a refused target starts again from standstill
        self.reachable = bool(ok)
        return self.q.copy()

    def status(self) -> dict:
        return {
            "target_m": [round(float(v), 4) for v in self.target],
            "pitch_rad": round(self.pitch, 4),
            "roll_rad": round(float(self.q[4]), 4),
            "gripper_rad": round(float(self.q[5]), 4),
            "gripper": "open" if self.q[5] >= (GRIPPER["open"] + GRIPPER["close"]) / 2 else "closed",
            "reachable": self.reachable,
            "refused_ticks": self.refused,
            "moving": bool(self._v.any()),
        }

    def _gripper_goal(self, gripper) -> float | None:
        if gripper is None:
            return None
        if isinstance(gripper, str):
            if gripper not in GRIPPER:
                raise ValueError(f"gripper must be 'open', 'close' or a goal in radians, got {gripper!r}")
            return float(GRIPPER[gripper])
        g = float(gripper)
        lo, hi = sorted(GRIPPER.values())
        if not np.isfinite(g):
            raise ValueError(f"gripper goal must be finite, got {gripper!r}")
        return float(np.clip(g, lo, hi))
