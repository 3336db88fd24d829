"""SO-101 forward and inverse kinematics, so that "move to x, y, z on my desk" just works.

Coordinates are metres in the robot's base frame: x forward (away from the base), y to the robot's
left, z up, origin at the base's bottom centre. The tool point is the official model's `gripperframe`
(on the fixed jaw's fingertip) unless another site is named, e.g. `grasp`, the point between the pads.

IK is differential (mink on the MuJoCo model) with the joint limits as hard constraints. The SO-101 has
5 arm joints, so a full 6-D pose is not reachable in general; we solve for position, optionally with a
*pitch* of the approach axis (0 = fingers horizontal, pi/2 = pointing straight down), and leave the roll
about that axis free (wrist_roll stays where it is unless asked).

An unreachable target raises `UnreachableError` naming the nearest point the arm can reach.
"""

from __future__ import annotations

from dataclasses import dataclass

import mink
import mujoco
import numpy as np

from embodia.robots.so101 import ARM_JOINTS, GRIPPER_SITE, HOME_QPOS, PAN_AXIS_XY, arm_only_mjcf


class UnreachableError(ValueError):
    def __init__(self, target, nearest, q_nearest, pitch=None):
        self.target = np.asarray(target, float)
        self.nearest = np.asarray(nearest, float)
        self.q_nearest = np.asarray(q_nearest, float)
        dist = float(np.linalg.norm(self.target - self.nearest))
        what = "position" if pitch is None else f"position with pitch {np.degrees(pitch):.0f} deg"
        super().__init__(
            f"target {np.round(self.target, 4).tolist()} m is not reachable ({what}); the nearest "
            f"reachable point is {np.round(self.nearest, 4).tolist()} m, {dist * 100:.1f} cm away. "
            "Coordinates are metres in the robot base frame (x forward, y left, z up)."
        )


@dataclass
class IKResult:
    q: np.ndarray  # 6 joint positions (arm + gripper, gripper unchanged)
    position: np.ndarray  # reached tool position
    error: float  # metres between target and reached position
    pitch_error: float  # radians (0 when no pitch was requested)


def approach_pitch(rot: np.ndarray) -> float:
    """Pitch of the approach axis (the tool frame's x axis) below the horizontal, radians."""
    return float(np.arcsin(np.clip(-rot[2, 0], -1.0, 1.0)))


class SO101Kinematics:
    """FK/IK on the arm-only MuJoCo model (no scene, so it is cheap to create)."""

    def __init__(
        self, site: str = GRIPPER_SITE, pos_tolerance: float = 1e-3, pitch_tolerance: float = np.radians(2.0)
    ):
        self.model = mujoco.MjModel.from_xml_string(arm_only_mjcf())
        self.data = mujoco.MjData(self.model)
        self.pos_tolerance = pos_tolerance
        self.pitch_tolerance = pitch_tolerance
        self.lower = self.model.jnt_range[:, 0].copy()
        self.upper = self.model.jnt_range[:, 1].copy()
        self.site = site
        self._site = self.model.site(site).id
        self._configuration = mink.Configuration(self.model)
        self._limits = [mink.ConfigurationLimit(self.model)]
        self._cloud_q: np.ndarray | None = None
        self._cloud_p: np.ndarray | None = None

    # ------------------------------------------------------------------ forward
    def fk(self, q) -> np.ndarray:
        """Tool position (3,) for joint positions q (5 arm joints, or 6 with the gripper)."""
        return self.fk_pose(q)[0]

    def fk_pose(self, q) -> tuple[np.ndarray, np.ndarray]:
        q = self._full_q(q)
        self.data.qpos[:] = q
        mujoco.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self._site].copy(), self.data.site_xmat[self._site].reshape(3, 3).copy()

    # ------------------------------------------------------------------ inverse
    def ik(
        self, target, pitch: float | None = None, q_init=None, restarts: int = 4, lock_roll: bool = False
    ) -> IKResult:
        """Best-effort IK: returns the closest solution found (check `.error`) and never raises.

        Several starts (the given one, the home pose, then configurations whose tool points lie near the
        target) guard against the local minima that differential IK falls into near joint limits.
        `lock_roll` keeps wrist_roll at its value in `q_init` (used to hold a chosen jaw orientation).
        """
        target = np.asarray(target, np.float64)
        if target.shape != (3,) or not np.all(np.isfinite(target)):
            raise ValueError(f"target must be 3 finite numbers (x, y, z in metres), got {target!r}")
        starts = [self._full_q(q_init)] if q_init is not None else []
        gripper = starts[0][5] if starts else HOME_QPOS[5]
        starts.append(HOME_QPOS.copy())
        starts.extend(self._nearest_samples(target, restarts))
        best: IKResult | None = None
        for q0 in starts:
            q0 = q0.copy()
            q0[5] = gripper
            if lock_roll and q_init is not None:
                q0[4] = starts[0][4]
            res = self._solve(target, pitch, q0, frozen=(4, 5) if lock_roll else (5,))
            if best is None or self._score(res) < self._score(best):
                best = res
            if self._ok(best, pitch):
                break
        assert best is not None
        return best

    def move_to(self, x: float, y: float, z: float, pitch: float | None = None, q_init=None) -> np.ndarray:
        """Joint positions (6,) that put the tool at (x, y, z) [and the approach axis at `pitch`].

        Raises UnreachableError (a ValueError) naming the nearest reachable point.
        """
        res = self.ik(np.array([x, y, z], float), pitch=pitch, q_init=q_init)
        if self._ok(res, pitch):
            return res.q
        near = res if pitch is None else self.ik(np.array([x, y, z], float), None, q_init=res.q)
        raise UnreachableError([x, y, z], near.position, near.q, pitch)

    def track(self, target, pitch: float | None, q_prev, iters: int = 40) -> IKResult:
        """Differential IK for servoing (teleoperation): one solve warm-started at the previous solution,
        no restarts, so it costs milliseconds and never jumps to another branch of the arm. Wrist roll
        and gripper keep their values in `q_prev` (the caller commands them directly); check `.error`."""
        target = np.asarray(target, np.float64)
        if target.shape != (3,) or not np.all(np.isfinite(target)):
            raise ValueError(f"target must be 3 finite numbers (x, y, z in metres), got {target!r}")
        return self._solve(target, pitch, self._full_q(q_prev).copy(), iters=iters, frozen=(4, 5))

    # ------------------------------------------------------------------ internals
    def _nearest_samples(self, target: np.ndarray, k: int) -> list[np.ndarray]:
        """Configurations from a fixed random sample of the workspace whose tool points lie closest to
        `target`. Starting there puts the descent in the right basin, including for unreachable targets
        where the nearest point sits on the workspace boundary."""
        if self._cloud_q is None:
            rng = np.random.default_rng(0)
            qs = rng.uniform(self.lower, self.upper, size=(6000, 6))
            qs[:, 5] = HOME_QPOS[5]
            self._cloud_p = np.array([self.fk(q) for q in qs])
            self._cloud_q = qs
        d = np.linalg.norm(self._cloud_p - target, axis=1)
        return [self._cloud_q[i].copy() for i in np.argsort(d)[:k]]

    def _full_q(self, q) -> np.ndarray:
        q = np.asarray(q, np.float64)
        if q.shape == (5,):
            q = np.append(q, HOME_QPOS[5])
        if q.shape != (6,):
            raise ValueError(
                f"SO-101 joint vector must have 5 or 6 entries {list(ARM_JOINTS)} [+ gripper], got {q.shape}"
            )
        return q

    def _ok(self, res: IKResult, pitch: float | None) -> bool:
        return res.error <= self.pos_tolerance and (pitch is None or res.pitch_error <= self.pitch_tolerance)

    @staticmethod
    def _score(res: IKResult) -> float:
        return res.error + 0.05 * res.pitch_error  # 1 rad of pitch weighs like 5 cm

    def _target_rotation(self, target: np.ndarray, pitch: float) -> np.ndarray:
        # The arm's vertical plane contains the shoulder-pan axis, which fixes the approach's yaw.
        d = target[:2] - PAN_AXIS_XY
        yaw = float(np.arctan2(d[1], d[0]))
        cp, sp, cy, sy = np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
        x_axis = np.array([cp * cy, cp * sy, -sp])  # approach direction
        y_axis = np.array([-sy, cy, 0.0])  # horizontal, perpendicular to the arm's plane
        z_axis = np.cross(x_axis, y_axis)
        return np.column_stack([x_axis, y_axis, z_axis])

    def _solve(
        self,
        target: np.ndarray,
        pitch: float | None,
        q0: np.ndarray,
        iters: int = 150,
        frozen: tuple[int, ...] = (5,),
    ) -> IKResult:
        cfg = self._configuration
        cfg.update(q0)
        if pitch is None:
            task = mink.FrameTask(self.site, "site", position_cost=1.0, orientation_cost=0.0, lm_damping=1e-3)
            rot = np.eye(3)
        else:
            # Orientation error is expressed in the tool frame: component 0 is roll about the approach
            # axis, which a 5-DoF arm cannot always match at the same time, so it costs nothing.
            task = mink.FrameTask(
                self.site, "site", position_cost=1.0, orientation_cost=[0.0, 0.3, 0.3], lm_damping=1e-3
            )
            rot = self._target_rotation(target, pitch)
        so3 = mink.SO3.from_matrix(rot)
        posture = mink.PostureTask(self.model, cost=1e-3)
        posture.set_target(q0)
        dt, max_step = 0.1, 0.02
        best_q, best_err, stall = q0.copy(), np.inf, 0
        for _ in range(iters):
            pos = cfg.get_transform_frame_to_world(self.site, "site").translation()
            delta = target - pos
            dist = float(np.linalg.norm(delta))
            # Chase an intermediate target at most 2 cm away: one linearised step towards a far target
            # (near the stretched-out singularity) would otherwise throw the arm somewhere arbitrary.
            step_target = target if dist <= max_step else pos + delta * (max_step / dist)
            task.set_target(mink.SE3.from_rotation_and_translation(so3, step_target))
            pitch_err = 0.0 if pitch is None else abs(self._pitch_of(cfg) - pitch)
            err = dist + 0.05 * pitch_err
            if err < best_err - 1e-6:
                best_q, best_err, stall = cfg.q.copy(), err, 0
            else:
                stall += 1
            if (dist < 0.2 * self.pos_tolerance and pitch_err < 0.2 * self.pitch_tolerance) or stall >= 15:
                break
            vel = mink.solve_ik(cfg, [task, posture], dt, "daqp", damping=1e-4, limits=self._limits)
            vel[list(frozen)] = 0.0  # the gripper (and a locked wrist roll) are not part of this IK
            cfg.integrate_inplace(vel, dt)
        cfg.update(best_q)
        q = np.clip(cfg.q.copy(), self.lower, self.upper)
        q[5] = q0[5]
        pos, rot_reached = self.fk_pose(q)
        pitch_err = 0.0 if pitch is None else abs(approach_pitch(rot_reached) - pitch)
        return IKResult(q=q, position=pos, error=float(np.linalg.norm(pos - target)), pitch_error=pitch_err)

    def _pitch_of(self, cfg: mink.Configuration) -> float:
        rot = cfg.get_transform_frame_to_world(self.site, "site").rotation().as_matrix()
        return approach_pitch(rot)
