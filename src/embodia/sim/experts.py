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

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from embodia.robots.kinematics import SO101Kinematics
from embodia.robots.so101 import GRASP_SITE, GRIPPER_SITE, PAN_AXIS_XY
from embodia.robots.spec import SO101
from embodia.sim.scene import BLOCK_HALF, BOWL_RADIUS
from embodia.sim.tasks import FAMILIES

OPEN = SO101.gripper.action_open
CLOSED = SO101.gripper.action_closed
PITCHES = (np.pi / 2, np.radians(75), np.radians(60), np.radians(45))
BOWL_OUTER = BOWL_RADIUS + 0.006
_MAX_PUSH_REACH = 0.33  # fingertips on the table, pitch >= 45 degrees
PUSH_EXTRA_STEPS = 3  # stroke segments a push may add when its block is short of the plan


@functools.cache
def _kinematics(site: str) -> SO101Kinematics:
    """One solver per site and process: building one (model + workspace sample) costs ~0.2 s, too much
    to repeat every episode."""
    return SO101Kinematics(site=site)


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
    # When carrying: the held block's centre in the grasp-site frame; `pos` is then where the block's
    # centre should go, and the wrist pose decides where the grasp site must be.
    held_offset: np.ndarray | None = None
    jaw_clearance: Callable[[float], float] | None = None  # scores wrist angles (see _align_jaws)
    align_period: float = np.pi / 2  # a cube repeats every 90 degrees; a push blade every 180


class TabletopExpert:
    def __init__(self, env, seed: int | None = None):
        self.env = env
        self.rng = np.random.default_rng([0 if seed is None else seed, 2])
        self.kin = _kinematics(GRASP_SITE)
        # Pushing uses the closed fingertips, which is where the official tool frame sits.
        self.kin_tip = _kinematics(GRIPPER_SITE)
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
        if goal.held_offset is None:
            return self._solve_site(goal, q_init)
        # Two passes: the block's offset rotates with the wrist, so solve, look at the resulting wrist
        # orientation, and solve again for the site position that puts the block where it belongs.
        _, rot = self.kin.fk_pose(q_init)
        first = replace(goal, pos=goal.pos - rot @ goal.held_offset)
        q = self._solve_site(first, q_init)
        _, rot = self.kin.fk_pose(q)
        res = self.kin.ik(
            goal.pos - rot @ goal.held_offset, pitch=self._pitch_of(q), q_init=q, restarts=0, lock_roll=True
        )
        return res.q if res.error < 3e-3 else q

    def _solve_site(self, goal: Goal, q_init: np.ndarray) -> np.ndarray:
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
            q = self._align_jaws(q, goal, q_init, kin)
        return q

    def _align_jaws(self, q: np.ndarray, goal: Goal, q_init: np.ndarray, kin: SO101Kinematics) -> np.ndarray:
        """Turn the wrist so that the jaws close across two opposite faces of the block.

        A cube offers four such wrist angles (90 degrees apart). The moving jaw swings ~4 cm out to its
        side, so among the angles the joint range allows we take the one whose jaws keep the most
        clearance from neighbouring objects (`goal.jaw_clearance`), then the smallest wrist turn."""
        jaw_angle = self._jaw_axis_angle(q)
        period = goal.align_period
        err = (goal.align_yaw - jaw_angle + period / 2) % period - period / 2
        # Rolling about the approach axis turns the jaw axis by the same angle (sign from the model).
        probe = q.copy()
        probe[4] += 0.1
        sign = np.sign((self._jaw_axis_angle(probe) - jaw_angle + np.pi) % (2 * np.pi) - np.pi) or 1.0
        lo, hi = self.kin.lower[4], self.kin.upper[4]
        # On a tilted approach the jaws must close across the tilt plane, or the lower jaw lands on top
        # of the block before the other one reaches it.
        tilted = self._pitch_of(q) < np.radians(86)
        radial = float(np.arctan2(goal.pos[1] - PAN_AXIS_XY[1], goal.pos[0] - PAN_AXIS_XY[0]))
        scored = []
        for k in (0, 1, -1, 2, -2):
            roll = q[4] + sign * (err + k * period)
            if not lo <= roll <= hi:
                continue
            cand = q.copy()
            cand[4] = roll
            angle = self._jaw_axis_angle(cand)
            score = -0.001 * abs(roll - q_init[4])
            if tilted and goal.align_period < np.pi:
                score -= 0.05 * abs(np.cos(angle - radial))
            if goal.jaw_clearance is not None:
                score += min(goal.jaw_clearance(angle), 0.02)
            scored.append((score, roll))
        # The tool point sits off the roll axis, so each wrist angle needs the position solved again with
        # that roll held; take the best-scoring angle the arm can actually reach.
        for _, roll in sorted(scored, reverse=True):
            seed = q.copy()
            seed[4] = roll
            res = kin.ik(goal.pos, pitch=self._pitch_of(q), q_init=seed, restarts=0, lock_roll=True)
            if res.error < 3e-3:
                return res.q
        return q

    def _jaw_clearance(self, color: str) -> Callable[[float], float]:
        """Clearance (m) of the open jaws around `color` from other blocks and the bowl's wall, for a
        given world angle of the closing axis (pointing from the fixed towards the moving jaw)."""
        env = self.env
        centre = env.block_position(color)[:2]
        others = [env.block_position(c)[:2] for c in env.present if c != color]
        bowl = env.bowl_position()[:2]

        def clearance(angle: float) -> float:
            u = np.array([np.cos(angle), np.sin(angle)])
            jaws = [centre + 0.04 * u, centre - 0.02 * u]  # moving jaw swings wide; fixed jaw stays close
            d = [np.linalg.norm(j - o) - 1.5 * BLOCK_HALF for j in jaws for o in others]
            d += [abs(np.linalg.norm(j - bowl) - BOWL_RADIUS) - 0.008 for j in jaws]
            return float(min(d, default=1.0))

        return clearance

    def _feasible_pitch(self, positions: list[np.ndarray]) -> tuple[float, ...]:
        """The steepest approach pitch that reaches every position (so a descent does not tilt midway)."""
        for pitch in PITCHES:
            if all(self.kin.ik(p, pitch=pitch, restarts=1).error < 2e-3 for p in positions):
                return (pitch,)
        return PITCHES

    def _jaw_axis_angle(self, q: np.ndarray) -> float:
        _, rot = self.kin.fk_pose(q)
        # The jaws close along the tool frame's z axis; its horizontal direction is what must match a face.
        z = rot[:, 2]
        return float(np.arctan2(z[1], z[0]))

    def _pitch_of(self, q: np.ndarray) -> float:
        _, rot = self.kin.fk_pose(q)
        return float(np.arcsin(np.clip(-rot[2, 0], -1, 1)))

    def ticks(self, lo: int, hi: int) -> int:
        return int(self.rng.integers(lo, hi + 1))

    def _plan(self) -> list[Callable[[], Goal]]:
        t = self.env.task
        fam = FAMILIES[t.family]
        if fam.expert is None:
            raise ValueError(
                f"task family {t.family!r} has no scripted expert: demonstrate it by hand (`embodia record "
                "--robot so101 --follower sim --leader PORT`) or give its TaskFamily an expert"
            )
        return list(fam.expert(self, t))

    # Segment builders: the vocabulary of a family's expert (`TaskFamily.expert(kit, task)` gets this
    # object as `kit`). Each returns closures evaluated when the segment starts, from the scene as it is.
    def grasp(self, color: str) -> list[Callable[[], Goal]]:
        env, rng = self.env, self.rng
        hover = 0.05 + rng.uniform(0, 0.025)
        off = rng.uniform(-0.003, 0.003, 2)
        plan: dict[str, tuple[float, ...]] = {}

        def target(z: float) -> np.ndarray:
            p = env.block_position(color)
            return np.array([p[0] + off[0], p[1] + off[1], z])

        def above():
            bottom = target(env.block_position(color)[2] + rng.uniform(-0.004, 0.002))
            plan["bottom"] = bottom
            plan["pitch"] = self._feasible_pitch([bottom, target(hover)])
            return Goal(
                target(hover),
                OPEN,
                self.ticks(22, 32),
                plan["pitch"],
                env.block_yaw(color),
                jaw_clearance=self._jaw_clearance(color),
            )

        def down():
            return Goal(
                plan["bottom"],
                OPEN,
                self.ticks(14, 20),
                plan["pitch"],
                env.block_yaw(color),
                jaw_clearance=self._jaw_clearance(color),
            )

        return [above, down, self.gripper(CLOSED, 8, 12)]

    OPEN, CLOSED = OPEN, CLOSED  # the gripper's action values, for experts written against the kit

    def move(self, target, gripper: float | None = None, ticks: tuple[int, int] = (15, 25),
             pitches: tuple[float, ...] = PITCHES, tip: bool = False) -> Callable[[], Goal]:  # fmt: skip
        """Move the grasp point (`tip`: the closed fingertips) to `target`, an xyz in metres or a function
        returning one, evaluated when the segment starts; `gripper` None keeps its opening. The approach
        pitch is the first of `pitches` (radians below horizontal) the IK reaches."""

        def seg():
            pos = np.asarray(target() if callable(target) else target, dtype=np.float64)
            grip = self._last[5] if gripper is None else gripper
            return Goal(pos, grip, self.ticks(*ticks), tuple(pitches), tip=tip)

        return seg

    def gripper(self, value: float, lo: int, hi: int) -> Callable[[], Goal]:
        """Open or close in place: the arm keeps its joints, no IK."""

        def seg():
            return Goal(self.kin.fk(self._last), value, self.ticks(lo, hi), joints=self._last.copy())

        return seg

    def lift(self, z: float, ticks: int) -> Callable[[], Goal]:
        def seg():
            p = self.kin.fk(self._last)
            return Goal(np.array([p[0], p[1], z]), CLOSED, ticks)

        return seg

    def hold(self, ticks: int) -> Callable[[], Goal]:
        def seg():
            return Goal(self.kin.fk(self._last), self._last[5], ticks, joints=self._last.copy())

        return seg

    def carry_and_release(
        self, color: str, where: Callable[[], np.ndarray], drop_z: float | None, other: str | None = None
    ):
        rng = self.rng
        carry_z = 0.09 + rng.uniform(0, 0.02)
        held: dict[str, np.ndarray] = {}

        def lift():
            p = self.kin.fk(self._last)
            return Goal(np.array([p[0], p[1], carry_z]), CLOSED, self.ticks(15, 22))

        def over():
            # Where the block sits in the hand, measured once it is lifted (it slides against the fixed
            # jaw while the gripper closes, so it is not at the grasp point).
            pos, rot = self.kin.fk_pose(self.env.joint_positions())
            held["offset"] = rot.T @ (self.env.block_position(color) - pos)
            w = where()
            return Goal(
                np.array([w[0], w[1], carry_z]), CLOSED, self.ticks(25, 35), held_offset=held["offset"]
            )

        def lower():
            w = where()
            z = drop_z if drop_z is not None else w[2] + 2 * BLOCK_HALF + 0.004
            yaw = self.env.block_yaw(other) if other else None
            return Goal(
                np.array([w[0], w[1], z]),
                CLOSED,
                self.ticks(15, 22),
                align_yaw=yaw,
                held_offset=held["offset"],
            )

        def sidestep():
            # The released block may still lean on the fixed jaw; back that jaw off its face (the tool
            # frame's z axis points from the fixed to the moving jaw) before going up, or the fingers
            # drag the block along.
            p, rot = self.kin.fk_pose(self._last)
            away = -rot[:, 2] * np.array([1.0, 1.0, 0.0])
            away /= max(float(np.linalg.norm(away)), 1e-9)
            return Goal(p + 0.007 * away, OPEN, self.ticks(5, 8), (self._pitch_of(self._last),))

        def retreat():
            p = self.kin.fk(self._last)
            return Goal(np.array([p[0], p[1], p[2] + 0.05]), OPEN, self.ticks(12, 18))

        return [lift, over, lower, self.gripper(OPEN, 12, 16), sidestep, retreat, self.hold(30)]

    def push(self, color: str, direction: np.ndarray) -> list[Callable[[], Goal]]:
        env, rng = self.env, self.rng
        back = BLOCK_HALF + 0.02 + rng.uniform(0, 0.008)
        distance = 0.15 + rng.uniform(0, 0.02)
        z_push = 0.008 + rng.uniform(0, 0.003)
        plan: dict[str, np.ndarray] = {}

        def blade() -> dict:
            # The closed fingers are ~3 cm wide along the jaw axis: turned across the push direction
            # they make a flat pusher wider than the block, which keeps it from spinning off a point.
            d = plan["dir"]
            return {"align_yaw": float(np.arctan2(d[1], d[0]) + np.pi / 2), "align_period": np.pi}

        def start_above():
            p = env.block_position(color)
            plan["dir"] = self._push_direction(color, direction, back, distance)
            plan["start"], plan["block"] = p - back * plan["dir"], p
            s = plan["start"]
            return Goal(np.array([s[0], s[1], 0.07]), CLOSED, self.ticks(22, 30), tip=True, **blade())

        def start_down():
            s = plan["start"]
            return Goal(np.array([s[0], s[1], z_push]), CLOSED, self.ticks(14, 18), tip=True, **blade())

        steps = 7

        def make_step(k: int):
            def seg():
                d = plan["dir"]
                # Follow the block sideways (a block pushed off-centre drifts and turns), so a pusher that
                # is off the line is shown how to get back behind the block's centre.
                side = np.array([-d[1], d[0], 0.0])
                drift = float(np.clip(side @ (env.block_position(color) - plan["block"]), -0.015, 0.015))
                p = plan["start"] + d * distance * (k + 1) / steps + drift * side
                if k >= steps:
                    # Past the planned stroke: push on only while the block is short of where the plan
                    # would have left it and the fingertips can still reach.
                    travel = float(d @ (env.block_position(color) - plan["block"]))
                    reach = float(np.linalg.norm(p[:2] - PAN_AXIS_XY))
                    if travel >= distance - back or reach > _MAX_PUSH_REACH:
                        return Goal(p, CLOSED, 1, joints=self._last.copy())
                return Goal(np.array([p[0], p[1], z_push]), CLOSED, self.ticks(8, 11), tip=True, **blade())

            return seg

        def up():
            p = self.kin_tip.fk(self._last)
            return Goal(np.array([p[0], p[1], 0.08]), CLOSED, self.ticks(12, 18), tip=True)

        # The segments after the planned stroke only act when the block fell short of it (an executed
        # stroke that lagged the plan: recovery data); in a clean push they are single held ticks.
        stroke = [make_step(k) for k in range(steps + PUSH_EXTRA_STEPS)]
        return [start_above, start_down, *stroke, up, self.hold(15)]

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
            reach = np.linalg.norm(end - PAN_AXIS_XY)
            reach_clear = _MAX_PUSH_REACH - reach
            score = min(bowl_clear, start_clear, reach_clear) - 0.01 * abs(off)
            if score > best_score:
                best, best_score = u, score
        return np.array([best[0], best[1], 0.0])

    def touch(self, color: str) -> list[Callable[[], Goal]]:
        env, rng = self.env, self.rng
        off = rng.uniform(-0.004, 0.004, 2)

        def above():
            p = env.block_position(color)
            return Goal(
                np.array([p[0] + off[0], p[1] + off[1], 0.07 + rng.uniform(0, 0.02)]),
                CLOSED,
                self.ticks(22, 30),
            )

        def down():
            p = env.block_position(color)
            return Goal(
                np.array([p[0] + off[0], p[1] + off[1], p[2] + BLOCK_HALF + 0.008]),
                CLOSED,
                self.ticks(14, 20),
            )

        return [above, down, self.hold(40)]
