"""The simulated SO-101: the `Robot` interface on a MuJoCo model.

The tabletop environment talks to the arm only through this object (observe, command, advance), which
is the seam where a real SO-101 on its servo bus plugs in later.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

from embodia.robots.kinematics import SO101Kinematics
from embodia.robots.safety import SafetyLayer
from embodia.robots.so101 import ALL_JOINTS, GRASP_SITE
from embodia.robots.spec import OBS_STATE, SO101, SO101_EE, EmbodimentSpec, image_key
from embodia.sim.render import make_renderer


class SimSO101:
    """Joint-position-controlled SO-101 inside a MuJoCo scene that contains the arm's bodies."""

    def __init__(
        self,
        model: mujoco.MjModel,
        data: mujoco.MjData,
        *,
        cameras: tuple[str, ...],
        height: int,
        width: int,
        substeps: int,
        action_mode: str = "joint_abs",
    ):
        self.model, self.data = model, data
        self.cameras, self.height, self.width = cameras, height, width
        self.substeps = substeps
        self.action_mode = action_mode
        self.spec: EmbodimentSpec = SO101 if action_mode == "joint_abs" else SO101_EE
        self.safety = SafetyLayer(self.spec)
        self._kin = SO101Kinematics(site=GRASP_SITE) if action_mode == "ee_delta" else None
        self._qadr = np.array([model.jnt_qposadr[model.joint(j).id] for j in ALL_JOINTS])
        self._tool_site = model.site(GRASP_SITE).id
        self._renderer: mujoco.Renderer | None = None

    # ------------------------------------------------------------------ Robot interface
    def connect(self) -> None:
        if self.cameras:
            self._ensure_renderer()

    def disconnect(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def get_observation(self) -> dict[str, Any]:
        obs: dict[str, Any] = {image_key(c): self.render(c) for c in self.cameras}
        obs[OBS_STATE] = self.joint_positions().astype(np.float32)
        return obs

    def send_action(self, action) -> np.ndarray:
        safe = self.safety(action)
        if self.action_mode == "ee_delta":
            safe = self._ee_to_joint(safe)
        self.data.ctrl[:] = safe
        return safe

    def advance(self) -> None:
        for _ in range(self.substeps):
            mujoco.mj_step(self.model, self.data)

    # ------------------------------------------------------------------ simulator-only helpers
    def place(self, qpos: np.ndarray) -> None:
        """Teleport the arm (episode start) and hold it there; the safety layer restarts from it."""
        self.data.qpos[self._qadr] = qpos
        self.data.ctrl[:] = qpos

    def start_episode(self) -> None:
        self.safety.reset(self.joint_positions() if self.action_mode == "joint_abs" else None)

    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self._qadr].copy()

    def tool_position(self) -> np.ndarray:
        return self.data.site_xpos[self._tool_site].copy()

    def jaw_yaw(self) -> float:
        """Horizontal direction of the axis the jaws close along (the tool frame's z axis), radians."""
        z = self.data.site_xmat[self._tool_site].reshape(3, 3)[:, 2]
        return float(np.arctan2(z[1], z[0]))

    def render(self, camera: str) -> np.ndarray:
        renderer = self._ensure_renderer()
        renderer.update_scene(self.data, camera=camera)
        return renderer.render()

    def _ensure_renderer(self) -> mujoco.Renderer:
        if self._renderer is None:
            # Closed at exit before EGL goes even if the env never is (see embodia.sim.render).
            self._renderer = make_renderer(self.model, self.height, self.width)
        return self._renderer

    def _ee_to_joint(self, action: np.ndarray) -> np.ndarray:
        q = self.joint_positions()
        res = self._kin.ik(self.tool_position() + action[:3], q_init=q, restarts=0)
        joint = res.q.copy()
        joint[5] = action[3]
        return np.clip(joint, SO101.action_low, SO101.action_high)
