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
  descends, so the labels show how to correct the approach on the way down. The same error moves a
  push's start beside the block and turns its blade; optionally a second one moves the carry of a held
  block to where it is set down (stack: 8 of 36 failures of that base dropped or never carried it),
  and a third one moves a push's stroke off the expert's line (push: 10 of 17 failures of the next base
  "pushed short", the block sliding a median 5.1 cm, 37 degrees off). The push expert follows the block
  sideways and pushes on while it is short of the plan, so those labels say how to get back behind it.
"""

from __future__ import annotations

import numpy as np

from embodia.robots.kinematics import SO101Kinematics, approach_pitch
from embodia.robots.so101 import GRASP_SITE, GRIPPER_SITE
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
# at 5-9 cm) and gone below GONE_BELOW_M (a grasped cube's centre is at 1.25 cm), so it shrinks over the
# lower half of the descent. It fades in over RAMP_S so the arm does not jump.
FULL_ABOVE_M, GONE_BELOW_M, RAMP_S = 0.05, 0.02, 0.5
# The carry error (stack and place) is whole at the carry height (the expert carries at 9-11 cm) and gone
# below CARRY_GONE_M, above both release heights (a stacked block is let go with the tool at ~4.2 cm, a
# placed one at 5.5 cm), so the executed arm is back on the expert's path before it sets the block down.
CARRY_FULL_M, CARRY_GONE_M = 0.08, 0.06
# The stroke error (push) is whole while the fingertips are on the table (a push runs at 0.8-1.1 cm) and
# gone by STROKE_GONE_M on the way up, so the lift after the push does not jump.
STROKE_FULL_M, STROKE_GONE_M = 0.02, 0.04
GRASP_FAMILIES = ("pick", "place", "stack")
CARRY_FAMILIES = ("place", "stack")
_ARM = ("shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos", "wrist_flex.pos")
_JAC_STEP = 1e-4  # radians, for the finite-difference Jacobian


class ApproachError:
    """Per episode, a horizontal error in a random direction with a length uniform in [0, `lateral_m`]
    metres and a wrist-roll error uniform in [-`roll_deg`, `roll_deg`] degrees, in up to two phases:

    - the approach: in grasping episodes until the expert first closes the jaw; in pushes (the pusher's
      start beside the block, and the blade's turn) until the fingertip first comes down to the table.
    - with `carry_m` > 0, the carry of stack and place episodes: a second, independent error of up to
      `carry_m` metres from when the held block is lifted until the tool comes down to set it down.
    - with `stroke_m` > 0, a push's stroke: a third error of up to `stroke_m` metres (no roll) while
      the fingertips are on the table, fading in over RAMP_S and out as they lift off.

    The tool keeps its height and pitch (one Newton step on the pan, shoulder, elbow and wrist flex).
    The family comes from the reset options (`{"family": ...}`); touches are left alone. SO-101 joint
    actions only."""

    def __init__(
        self,
        spec: EmbodimentSpec,
        lateral_m: float,
        roll_deg: float,
        carry_m: float = 0.0,
        stroke_m: float = 0.0,
    ):
        if spec.name != "so101":
            raise ValueError(f"approach errors perturb SO-101 joint actions; this recording is {spec.name}")
        self.lateral_m, self.carry_m, self.stroke_m = lateral_m, carry_m, stroke_m
        self.roll = np.radians(roll_deg)
        names = list(spec.action_names)
        self.arm = [names.index(n) for n in _ARM]
        self.wrist_roll = names.index("wrist_roll.pos")
        self.gripper = spec.gripper.action_index
        self.half_open = 0.5 * (spec.gripper.action_open + spec.gripper.action_closed)
        self.ramp_ticks = max(1, int(RAMP_S * spec.fps))
        self.kin = SO101Kinematics(site=GRASP_SITE)
        self.kin_tip = SO101Kinematics(site=GRIPPER_SITE)  # pushes: the fingertips lead
        self._state: dict[int, dict] = {}

    def _sample(self, rng: np.random.Generator, length_m: float) -> tuple[np.ndarray, float]:
        angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(0, length_m)
        return length * np.array([np.cos(angle), np.sin(angle)]), float(rng.uniform(-self.roll, self.roll))

    def reset(self, env: int, seed: int, options: dict | None = None) -> None:
        rng = np.random.default_rng([seed, 11])
        family = (options or {}).get("family")
        offset, roll = self._sample(rng, self.lateral_m)  # drawn first: the same as before carry errors
        carry, carry_roll = self._sample(rng, self.carry_m)
        stroke, _ = self._sample(rng, self.stroke_m)  # drawn last: earlier draws stay as they were
        if self.lateral_m == 0:  # a carry error alone: the approach stays the expert's, wrist included
            roll = 0.0
        phase = "approach" if family in (*GRASP_FAMILIES, "push") else "done"
        self._state[env] = {
            "family": family, "phase": phase, "offset": offset, "roll": roll, "ramp": 0,
            "carry": carry, "carry_roll": carry_roll, "stroke": stroke,
        }  # fmt: skip

    def __call__(self, env: int, action: np.ndarray) -> np.ndarray:
        action = np.asarray(action, np.float64)
        st = self._state[env]
        closing = action[self.gripper] < self.half_open
        push = st["family"] == "push"
        if st["phase"] == "approach" and closing and not push:
            carry = self.carry_m > 0 and st["family"] in CARRY_FAMILIES
            st["phase"], st["ramp"] = ("carry" if carry else "done"), 0
        elif st["phase"] == "carry" and not closing:  # the jaw opens: the block is set down
            st["phase"] = "done"
        if st["phase"] == "done":
            return action
        kin = self.kin_tip if push else self.kin
        goal = _tool_pose(kin, action)
        if st["phase"] == "approach" and push and goal[2] <= GONE_BELOW_M and st["ramp"] > 0:
            # The fingertips came down: the approach error is gone; the stroke's own error, if any, starts.
            st["phase"], st["ramp"] = ("stroke" if self.stroke_m > 0 else "done"), 0
        elif st["phase"] == "stroke" and goal[2] > STROKE_GONE_M:  # lifting off after the push
            st["phase"] = "done"
        if st["phase"] == "done":
            return action
        if st["phase"] == "approach":
            height = (goal[2] - GONE_BELOW_M) / (FULL_ABOVE_M - GONE_BELOW_M)
            offset, roll = st["offset"], st["roll"]
        elif st["phase"] == "carry":
            height = (goal[2] - CARRY_GONE_M) / (CARRY_FULL_M - CARRY_GONE_M)
            offset, roll = st["carry"], st["carry_roll"]
        else:  # the stroke: whole on the table, fading on the way up
            height = (STROKE_GONE_M - goal[2]) / (STROKE_GONE_M - STROKE_FULL_M)
            offset, roll = st["stroke"], 0.0
        height = float(np.clip(height, 0.0, 1.0))
        if height > 0.0:
            st["ramp"] += 1
        w = height * min(1.0, st["ramp"] / self.ramp_ticks)
        if w == 0.0:
            return action
        out = action.copy()
        out[self.wrist_roll] += w * roll
        goal[:2] += w * offset
        # Turning the wrist moves the tool too (it is off the roll axis); the step below corrects that.
        now = _tool_pose(kin, out)
        jac = np.empty((4, len(self.arm)))
        for k, j in enumerate(self.arm):
            probe = out.copy()
            probe[j] += _JAC_STEP
            jac[:, k] = (_tool_pose(kin, probe) - now) / _JAC_STEP
        out[self.arm] += np.linalg.lstsq(jac, goal - now, rcond=None)[0]
        return out


def _tool_pose(kin: SO101Kinematics, q: np.ndarray) -> np.ndarray:
    """(x, y, z, approach pitch) of the kinematics' site."""
    pos, rot = kin.fk_pose(q)
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
