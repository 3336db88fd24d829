"""Scripted experts for the tabletop families: IK waypoints with randomness.

An expert is a queue of *segments*. Each segment names a goal for the tool point (position, approach
pitch, gripper opening) and a duration; when a segment starts, the goal is solved with the IK from the
arm's current joints and the expert interpolates in joint space with a smooth (cosine) profile. Goals
are computed lazily, at the start of their segment, from the simulator's current state, so a block
that was nudged on the way is still grasped where it is.

Randomness (seeded per episode): approach heights, grasp point offsets, segment durations and pauses,
so that demonstrations of the same task differ the way human teleoperation does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from embodia.robots.kinematics import SO101Kinematics
from embodia.robots.so101 import GRASP_SITE, GRIPPER_SITE
from embodia.robots.spec import SO101
from embodia.sim.scene import BLOCK_HALF, BOWL_RADIUS
from embodia.sim.tasks import DIRECTIONS

OPEN = SO101.gripper.action_open
CLOSED = SO101.gripper.action_closed
PITCH_DOWN = np.pi / 2
PITCHES = (np.pi / 2, np.radians(75), np.radians(60), np.radians(45))
BOWL_OUTER = BOWL_RADIUS + 0.006
_PAN_XY = np.array([0.0388, 0.0])
_MAX_PUSH_REACH = 0.33  # fingertips on the table, pitch >= 45 degrees


def _segment_point_distance(a: np.ndarray, b: np.ndarray, p: np.ndarray) -> float:
    ab = b - a
    t = float(np.clip(np.dot(p - a, ab) / max(float(np.dot(ab, ab)), 1e-12), 0.0, 1.0))
    return float(np.linalg.norm(a + t * ab - p))


@dataclass
class Goal:
    pos: np.ndarray
    gripper: float
    ticks: int
    pitches: tuple[float, ...] = PITCHES
    align_yaw: float | None = None  # block yaw to align the jaws with (top-down grasps)
    joints: np.ndarray | None = None  # stay at these arm joints (gripper-only segments): no IK
    tip: bool = False  # pos is for the closed fingertips (pushing) instead of the grasp point


class TabletopExpert:
    def __init__(self, env, seed: int | None = None):
        self.env = env
        self.rng = np.random.default_rng([0 if seed is None else seed, 2])
        self.kin = SO101Kinematics(site=GRASP_SITE)
        # Pushing uses the closed fingertips, which is where the official tool frame sits.
        self.kin_tip = SO101Kinematics(site=GRIPPER_SITE)
        self.segments: list[Callable[[], Goal]] = self._plan()
        self._q_from: np.ndarray | None = None
        self._q_to: np.ndarray | None = None
        self._t = 0
        self._n = 0
        self._last = env.joint_positions()

    # ------------------------------------------------------------------ public
    def act(self) -> np.ndarray:
        while self._q_to is None or self._t >= self._n:
            if not self.segments:
                return self._last.copy()  # plan finished: hold
            goal = self.segments.pop(0)()
            self._start(goal)
        self._t += 1
        s = 0.5 - 0.5 * np.cos(np.pi * self._t / self._n)
        q = self._q_from + s * (self._q_to - self._q_from)
        self._last = q
        return q.copy()

    # ------------------------------------------------------------------ planning
    def _start(self, goal: Goal) -> None:
        q_now = self._last.copy()
        q = goal.joints.copy() if goal.joints is not None else self._solve(goal, q_now)
        q[5] = goal.gripper
        self._q_from, self._q_to, self._t, self._n = q_now, q, 0, max(1, goal.ticks)

    def _solve(self, goal: Goal, q_init: np.ndarray) -> np.ndarray:
        best = None
        kin = self.kin_tip if goal.tip else self.kin
        for pitch in goal.pitches:
            res = kin.ik(goal.pos, pitch=pitch, q_init=q_init, restarts=2)
            if res.error < 2e-3 and res.pitch_error < np.radians(3):
                best = res
                break
            if best is None or res.error < best.error:
                best = res
        q = best.q.copy()
        if goal.align_yaw is not None:
            q = self._align_jaws(q, goal, q_init)
        return q

    def _align_jaws(self, q: np.ndarray, goal: Goal, q_init: np.ndarray) -> np.ndarray:
        """Turn the wrist so that the jaws close across two opposite faces of the block."""
        jaw_angle = self._jaw_axis_angle(q)
        err = (goal.align_yaw - jaw_angle + np.pi / 4) % (np.pi / 2) - np.pi / 4
        # Rolling about the approach axis turns the jaw axis by the same angle (sign from the model).
        probe = q.copy()
        probe[4] += 0.1
        sign = np.sign((self._jaw_axis_angle(probe) - jaw_angle + np.pi) % (2 * np.pi) - np.pi) or 1.0
        roll = q[4] + sign * err
        lo, hi = self.kin.lower[4], self.kin.upper[4]
        if roll > hi:
            roll -= np.pi / 2 * np.ceil((roll - hi) / (np.pi / 2))
        if roll < lo:
            roll += np.pi / 2 * np.ceil((lo - roll) / (np.pi / 2))
        seed = q.copy()
        seed[4] = roll
        # The tool point sits off the roll axis, so re-solve the position with the new roll as the start.
        res = self.kin.ik(goal.pos, pitch=self._pitch_of(q), q_init=seed, restarts=0)
        out = res.q if res.error < 3e-3 else seed
        return out

    def _jaw_axis_angle(self, q: np.ndarray) -> float:
        _, rot = self.kin.fk_pose(q)
        # The jaws close along the tool frame's z axis; its horizontal direction is what must match a face.
        z = rot[:, 2]
        return float(np.arctan2(z[1], z[0]))

    def _pitch_of(self, q: np.ndarray) -> float:
        _, rot = self.kin.fk_pose(q)
        return float(np.arcsin(np.clip(-rot[2, 0], -1, 1)))

    def _ticks(self, lo: int, hi: int) -> int:
        return int(self.rng.integers(lo, hi + 1))

    def _plan(self) -> list[Callable[[], Goal]]:
        t = self.env.task
        fam = t.family
        if fam == "pick":
            return (
                self._grasp(t.color)
                + [self._lift(t.color, 0.09 + self.rng.uniform(0, 0.03), 25)]
                + [self._hold(40)]
            )
        if fam == "place":
            return self._grasp(t.color) + self._carry_and_release(
                lambda: self.env.bowl_position(), drop_z=0.055
            )
        if fam == "stack":
            return self._grasp(t.color) + self._carry_and_release(
                lambda: self.env.block_position(t.other), drop_z=None, other=t.other
            )
        if fam == "push":
            return self._push(t.color, np.asarray(DIRECTIONS[t.direction]))
        if fam == "touch":
            return self._touch(t.color)
        raise AssertionError(fam)

    # Segment builders. Each returns closures evaluated when the segment starts.
    def _grasp(self, color: str) -> list[Callable[[], Goal]]:
        env, rng = self.env, self.rng
        hover = 0.06 + rng.uniform(0, 0.03)
        off = rng.uniform(-0.003, 0.003, 2)

        def above():
            p = env.block_position(color)
            return Goal(
                np.array([p[0] + off[0], p[1] + off[1], hover]),
                OPEN,
                self._ticks(22, 32),
                align_yaw=env.block_yaw(color),
            )

        def down():
            p = env.block_position(color)
            z = p[2] + rng.uniform(-0.004, 0.002)
            return Goal(
                np.array([p[0] + off[0], p[1] + off[1], z]),
                OPEN,
                self._ticks(14, 20),
                align_yaw=env.block_yaw(color),
            )

        return [above, down, self._gripper(CLOSED, 8, 12)]

    def _gripper(self, value: float, lo: int, hi: int) -> Callable[[], Goal]:
        """Open or close in place: the arm keeps its joints, no IK."""

        def seg():
            return Goal(self.kin.fk(self._last), value, self._ticks(lo, hi), joints=self._last.copy())

        return seg

    def _lift(self, color: str, z: float, ticks: int) -> Callable[[], Goal]:
        def seg():
            p = self.kin.fk(self._last)
            return Goal(np.array([p[0], p[1], z]), CLOSED, ticks)

        return seg

    def _hold(self, ticks: int) -> Callable[[], Goal]:
        def seg():
            return Goal(self.kin.fk(self._last), self._last[5], ticks, joints=self._last.copy())

        return seg

    def _carry_and_release(
        self, where: Callable[[], np.ndarray], drop_z: float | None, other: str | None = None
    ):
        rng = self.rng
        carry_z = 0.09 + rng.uniform(0, 0.02)

        def lift():
            p = self.kin.fk(self._last)
            return Goal(np.array([p[0], p[1], carry_z]), CLOSED, self._ticks(15, 22))

        def over():
            w = where()
            return Goal(np.array([w[0], w[1], carry_z]), CLOSED, self._ticks(25, 35))

        def lower():
            w = where()
            z = drop_z if drop_z is not None else w[2] + 2 * BLOCK_HALF + 0.004
            yaw = self.env.block_yaw(other) if other else None
            return Goal(np.array([w[0], w[1], z]), CLOSED, self._ticks(15, 22), align_yaw=yaw)

        def retreat():
            p = self.kin.fk(self._last)
            return Goal(np.array([p[0], p[1], p[2] + 0.05]), OPEN, self._ticks(12, 18))

        return [lift, over, lower, self._gripper(OPEN, 8, 12), retreat, self._hold(30)]

    def _push(self, color: str, direction: np.ndarray) -> list[Callable[[], Goal]]:
        env, rng = self.env, self.rng
        back = BLOCK_HALF + 0.02 + rng.uniform(0, 0.008)
        distance = 0.15 + rng.uniform(0, 0.02)
        z_push = 0.008 + rng.uniform(0, 0.003)
        plan: dict[str, np.ndarray] = {}

        def start_above():
            p = env.block_position(color)
            plan["dir"] = self._push_direction(color, direction, back, distance)
            plan["start"] = p - back * plan["dir"]
            s = plan["start"]
            return Goal(np.array([s[0], s[1], 0.07]), CLOSED, self._ticks(22, 30), tip=True)

        def start_down():
            s = plan["start"]
            return Goal(np.array([s[0], s[1], z_push]), CLOSED, self._ticks(14, 18), tip=True)

        steps = 7

        def make_step(k: int):
            def seg():
                p = plan["start"] + plan["dir"] * distance * (k + 1) / steps
                return Goal(np.array([p[0], p[1], z_push]), CLOSED, self._ticks(8, 11), tip=True)

            return seg

        def up():
            p = self.kin_tip.fk(self._last)
            return Goal(np.array([p[0], p[1], 0.08]), CLOSED, self._ticks(12, 18), tip=True)

        return [start_above, start_down, *[make_step(k) for k in range(steps)], up, self._hold(15)]

    def _push_direction(self, color: str, named: np.ndarray, back: float, distance: float) -> np.ndarray:
        """Push along the named direction, or up to 30 degrees off it when the bowl (which does not move)
        or a neighbouring block would be in the way. Success allows 45 degrees, so any of these counts."""
        env = self.env
        p = env.block_position(color)[:2]
        bowl = env.bowl_position()[:2]
        others = [env.block_position(c)[:2] for c in env.present if c != color]
        base = float(np.arctan2(named[1], named[0]))
        best, best_score = None, -np.inf
        for off in np.radians([0, 10, -10, 20, -20, 30, -30]):
            u = np.array([np.cos(base + off), np.sin(base + off)])
            start, end = p - back * u, p + (distance - back) * u
            # Clearance of the block's path from the bowl's wall, and of the fingertip's landing spot
            # from other blocks.
            bowl_clear = _segment_point_distance(p, end, bowl) - (BOWL_OUTER + BLOCK_HALF * 1.5)
            start_clear = min((np.linalg.norm(start - q) - 2 * BLOCK_HALF for q in others), default=1.0)
            reach = np.linalg.norm(end - _PAN_XY)
            reach_clear = _MAX_PUSH_REACH - reach
            score = min(bowl_clear, start_clear, reach_clear) - 0.01 * abs(off)
            if score > best_score:
                best, best_score = u, score
        return np.array([best[0], best[1], 0.0])

    def _touch(self, color: str) -> list[Callable[[], Goal]]:
        env, rng = self.env, self.rng
        off = rng.uniform(-0.004, 0.004, 2)

        def above():
            p = env.block_position(color)
            return Goal(
                np.array([p[0] + off[0], p[1] + off[1], 0.07 + rng.uniform(0, 0.02)]),
                CLOSED,
                self._ticks(22, 30),
            )

        def down():
            p = env.block_position(color)
            return Goal(
                np.array([p[0] + off[0], p[1] + off[1], p[2] + BLOCK_HALF + 0.008]),
                CLOSED,
                self._ticks(14, 20),
            )

        return [above, down, self._hold(40)]
