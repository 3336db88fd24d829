"""Recovery data: perturb what the robot executes while the dataset keeps the expert's clean action.

Clean demonstrations only show states on the expert's path, so a learned policy that drifts a little
meets states it has never seen, and its errors compound. DART (Laskey et al. 2017) records the expert's
label while executing a perturbed action: the arm drifts off the path and the labels say how to get back.

Two perturbations, usable together; each is called per env and tick as `p(env, action) -> executed`:

- `ActionNoise`: bursts of smooth random drift on every arm joint, over the whole episode.
- `ApproachError`: one structured error per episode, where a learned policy actually fails. In 50 pick
  episodes of the base shipped on 2026-11-26, 17 of the 22 failures were a jaw landing on the block's top
  face; the failed first grasp attempts were a median 1.8 cm from the block's centre with the jaws turned
  29 degrees from its faces (successful ones 0.6 cm; the expert 0.2 cm and under 1 degree). The executed
  arm hovers beside the block with the wrist turned and converges onto the expert's path as the tool
  descends, so the labels show how to correct the approach on the way down.
"""

from __future__ import annotations

import numpy as np

from embodia.robots.kinematics import SO101Kinematics, approach_pitch
from embodia.robots.so101 import GRASP_SITE
from embodia.robots.spec import EmbodimentSpec

# ActionNoise: the perturbation comes in bursts. Per-tick independent noise on a position target is
# mostly filtered out by the joint controllers, so within a burst it drifts (correlation time ~0.3 s);
# between bursts it decays within ~0.3 s and the arm returns to the expert's path. Constant noise would be
# on at the moment the jaws close.
NOISE_TIME_S, RETURN_TIME_S, BURST_ON_S, BURST_OFF_S = 0.3, 0.1, 0.5, 1.5


class ActionNoise:
    """A bursty Ornstein-Uhlenbeck perturbation per env on every dim but the gripper: stationary std
    `std` if a burst lasted forever; the 0.5 s bursts reach about half of it. Seeded by the episode's
    seed, so a recording is reproducible."""

    def __init__(self, std: float, action_dim: int, gripper_index: int, fps: float):
        self.std = std
        self.rho = float(np.exp(-1.0 / (NOISE_TIME_S * fps)))
        self.rho_off = float(np.exp(-1.0 / (RETURN_TIME_S * fps)))
        self.p_on, self.p_off = 1.0 / (BURST_OFF_S * fps), 1.0 / (BURST_ON_S * fps)
        self.mask = np.ones(action_dim)
        self.mask[gripper_index] = 0.0
        self._state: dict[int, tuple[np.random.Generator, np.ndarray, bool]] = {}

    def reset(self, env: int, seed: int, options: dict | None = None) -> None:
        self._state[env] = (np.random.default_rng([seed, 7]), np.zeros(len(self.mask)), False)

    def __call__(self, env: int, action: np.ndarray) -> np.ndarray:
        rng, z, on = self._state[env]
        on = (rng.random() >= self.p_off) if on else (rng.random() < self.p_on)
        kick = np.sqrt(1 - self.rho**2) * self.std * rng.normal(size=len(z)) * self.mask
        z = self.rho * z + kick if on else self.rho_off * z
        self._state[env] = (rng, z, on)
        return np.asarray(action, np.float64) + z


# ApproachError: the error is whole while the tool is above FULL_ABOVE_M (table frame; the expert hovers
# at 6-9 cm) and gone below GONE_BELOW_M (a grasped cube's centre is at 1.25 cm), so it shrinks over the
# lower half of the descent. It fades in over the first RAMP_S so the arm does not jump at the start.
FULL_ABOVE_M, GONE_BELOW_M, RAMP_S = 0.05, 0.02, 0.5
GRASP_FAMILIES = ("pick", "place", "stack")
_ARM = ("shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos", "wrist_flex.pos")
_JAC_STEP = 1e-4  # radians, for the finite-difference Jacobian


class ApproachError:
    """Per episode: a horizontal error of the approach, in a random direction with a length uniform in
    [0, `lateral_m`] metres, and a wrist-roll error uniform in [-`roll_deg`, `roll_deg`] degrees. The
    tool keeps its height and approach pitch (one Newton step on the pan, shoulder, elbow and wrist
    flex). Only in episodes of the grasping families (reset options `{"family": ...}`), and there only
    until the expert first closes the jaw. SO-101 joint actions only."""

    def __init__(self, spec: EmbodimentSpec, lateral_m: float, roll_deg: float):
        if spec.name != "so101":
            raise ValueError(f"approach errors perturb SO-101 joint actions; this recording is {spec.name}")
        self.lateral_m, self.roll = lateral_m, np.radians(roll_deg)
        names = list(spec.action_names)
        self.arm = [names.index(n) for n in _ARM]
        self.wrist_roll = names.index("wrist_roll.pos")
        self.gripper = spec.gripper.action_index
        self.half_open = 0.5 * (spec.gripper.action_open + spec.gripper.action_closed)
        self.ramp_ticks = max(1, int(RAMP_S * spec.fps))
        self.kin = SO101Kinematics(site=GRASP_SITE)
        self._state: dict[int, dict] = {}

    def reset(self, env: int, seed: int, options: dict | None = None) -> None:
        rng = np.random.default_rng([seed, 11])
        angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(0, self.lateral_m)
        offset = length * np.array([np.cos(angle), np.sin(angle)])
        roll = rng.uniform(-self.roll, self.roll)
        # Pushes and touches close the jaw while moving off: no grasp approach to perturb.
        grasp = (options or {}).get("family") in GRASP_FAMILIES
        self._state[env] = {"offset": offset, "roll": roll, "tick": 0, "closed": not grasp}

    def __call__(self, env: int, action: np.ndarray) -> np.ndarray:
        action = np.asarray(action, np.float64)
        st = self._state[env]
        st["tick"] += 1
        st["closed"] = st["closed"] or action[self.gripper] < self.half_open
        if st["closed"]:
            return action
        goal = self._pose(action)
        # The share of the episode's error this tick carries: whole high up, none near the block.
        height = float(np.clip((goal[2] - GONE_BELOW_M) / (FULL_ABOVE_M - GONE_BELOW_M), 0.0, 1.0))
        w = height * min(1.0, st["tick"] / self.ramp_ticks)
        if w == 0.0:
            return action
        out = action.copy()
        out[self.wrist_roll] += w * st["roll"]
        goal[:2] += w * st["offset"]
        # Turning the wrist moves the tool too (it is off the roll axis); the step below corrects that.
        now = self._pose(out)
        jac = np.empty((4, len(self.arm)))
        for k, j in enumerate(self.arm):
            probe = out.copy()
            probe[j] += _JAC_STEP
            jac[:, k] = (self._pose(probe) - now) / _JAC_STEP
        out[self.arm] += np.linalg.lstsq(jac, goal - now, rcond=None)[0]
        return out

    def _pose(self, q: np.ndarray) -> np.ndarray:
        """(x, y, z, approach pitch) of the tool."""
        pos, rot = self.kin.fk_pose(q)
        return np.array([pos[0], pos[1], pos[2], approach_pitch(rot)])


class Perturbations:
    """Several perturbations applied one after the other (each sees the previous one's output)."""

    def __init__(self, *parts):
        self.parts = [p for p in parts if p is not None]

    def __bool__(self) -> bool:
        return bool(self.parts)

    def reset(self, env: int, seed: int, options: dict | None = None) -> None:
        for p in self.parts:
            p.reset(env, seed, options)

    def __call__(self, env: int, action: np.ndarray) -> np.ndarray:
        for p in self.parts:
            action = p(env, action)
        return action
