"""The simulated SO-101 behind the emulated servo bus: goals move a MuJoCo arm, readings come from it.

    with BusEmulator(arm=SimulatedArm(mount={2: 1800})) as bus:   # shoulder_lift assembled off-centre

Each servo's shaft is one joint of the arm's MuJoCo model (`embodia.robots.so101`): the joint's angle is
(shaft ticks - mount) x 2 pi / 4096, where `mount` is the shaft position at the model's zero (how the horn
was fitted when the arm was built; 2048 unless given). The model's joint ranges are the hard stops: a hand
cannot turn a joint past them, and neither can the servo. With torque on, a servo drives its joint to its
goal through the model's position actuator (its gains, gravity compensated); with torque off the joint is
limp and stays where a hand leaves it.
"""

from __future__ import annotations

import math

import numpy as np

from embodia.robots.feetech.sts3215 import RESOLUTION
from embodia.robots.so101 import ALL_JOINTS, arm_only_mjcf

TICKS_PER_RAD = RESOLUTION / (2 * math.pi)
MAX_SIM_STEP = 0.5  # seconds of physics at most per update (an idle bus catches up, then settles)


class SimulatedArm:
    def __init__(self, mount: dict[int, float] | None = None, ids: tuple[int, ...] = (1, 2, 3, 4, 5, 6)):
        import mujoco

        self._mj = mujoco
        self.model = mujoco.MjModel.from_xml_string(arm_only_mjcf())
        self.data = mujoco.MjData(self.model)
        self.joint_of = dict(zip(ids, ALL_JOINTS, strict=True))
        self.mount = {i: float((mount or {}).get(i, RESOLUTION / 2)) for i in ids}
        self._qpos = {i: self.model.joint(j).qposadr[0] for i, j in self.joint_of.items()}
        self._dof = {i: self.model.joint(j).dofadr[0] for i, j in self.joint_of.items()}
        self._act = {i: self.model.actuator(j).id for i, j in self.joint_of.items()}
        self._range = {i: tuple(self.model.joint(j).range) for i, j in self.joint_of.items()}
        self._gain = self.model.actuator_gainprm[:, 0].copy()
        self._bias = self.model.actuator_biasprm[:, 1:3].copy()
        mujoco.mj_forward(self.model, self.data)

    # -- units --------------------------------------------------------------------------------------

    def radians(self, servo_id: int, ticks: float) -> float:
        return (ticks - self.mount[servo_id]) / TICKS_PER_RAD

    def ticks(self, servo_id: int) -> float:
        return self.mount[servo_id] + self.data.qpos[self._qpos[servo_id]] * TICKS_PER_RAD

    def angle(self, servo_id: int) -> float:
        return float(self.data.qpos[self._qpos[servo_id]])

    def stops(self, servo_id: int) -> tuple[float, float]:
        """The joint's hard stops, in shaft ticks."""
        lo, hi = self._range[servo_id]
        return self.mount[servo_id] + lo * TICKS_PER_RAD, self.mount[servo_id] + hi * TICKS_PER_RAD

    # -- what happens to it -------------------------------------------------------------------------

    def place(self, servo_id: int, ticks: float) -> float:
        """A hand turns the joint to `ticks` (stopped by its hard stops); returns where it ended up."""
        lo, hi = self._range[servo_id]
        self.data.qpos[self._qpos[servo_id]] = float(np.clip(self.radians(servo_id, ticks), lo, hi))
        self.data.qvel[self._dof[servo_id]] = 0.0
        self._mj.mj_forward(self.model, self.data)
        return self.ticks(servo_id)

    def step(self, dt: float, servos) -> None:
        """Run `dt` seconds of physics with each servo's torque and target (`Servo.torque`, `.target`)."""
        for i, s in servos.items():
            a = self._act[i]
            on = s.torque and s.plugged
            self.model.actuator_gainprm[a, 0] = self._gain[a] if on else 0.0
            self.model.actuator_biasprm[a, 1:3] = self._bias[a] if on else 0.0
            if on:
                lo, hi = self._range[i]
                self.data.ctrl[a] = float(np.clip(self.radians(i, s.target), lo, hi))
        n = int(min(dt, MAX_SIM_STEP) / self.model.opt.timestep)
        for _ in range(n):
            self._mj.mj_step(self.model, self.data)
