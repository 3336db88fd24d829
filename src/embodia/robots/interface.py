"""The contract between a robot and everything above it.

A simulated arm and a real SO-101 on its Feetech servo bus look the same from here up: the
environment, recording, the policy server and the agent tools read observations with embodia's keys
and send actions of the embodiment's shape, and every action passes the safety layer on its way to the
motors. The shape of this interface follows LeRobot's `Robot` (connect / get_observation /
send_action / disconnect), so a LeRobot driver can sit behind it with a thin adapter: convert radians
to LeRobot's units on the way out (`embodia.robots.so101.to_lerobot_units`) and back on the way in.

What a real arm adds is time: `send_action` returns at once and the arm moves during the control
period, so an environment built on a real robot sleeps to the next tick where the simulator steps
physics. That is the only difference the environment has to know about (see `advance`).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from embodia.robots.spec import EmbodimentSpec


@runtime_checkable
class Robot(Protocol):
    spec: EmbodimentSpec

    def connect(self) -> None:
        """Open the connection (serial bus, cameras) or build the simulator."""

    def disconnect(self) -> None:
        """Release the hardware (torque off, cameras closed) or the renderer."""

    def get_observation(self) -> dict[str, Any]:
        """`observation.state` (float32, the spec's state names and units) and one uint8 (H, W, 3)
        image per camera under `observation.images.<camera>`."""

    def send_action(self, action: np.ndarray) -> np.ndarray:
        """Pass `action` through the safety layer, command it, and return what was actually sent."""

    def advance(self) -> None:
        """Let one control period (1 / spec.fps seconds) pass: step the physics, or wait on a real arm."""
