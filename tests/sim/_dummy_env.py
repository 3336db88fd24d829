"""A tiny deterministic dict-observation env for the VectorRunner tests.

It lives in its own module, not inside the test file, because spawn workers rebuild the env by
importing its class by module path, and a test module is not meant to be re-imported in a child.
"""

from __future__ import annotations

import os
import string
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

STATE_DIM = 3


class DummyEnv(gym.Env):
    """State is a random start vector plus the sum of the actions. The image encodes the state.

    Reset options drive test behaviour: ``task`` (str), ``step_sleep`` (seconds each step takes),
    ``fail_at_step`` (raise inside step number k), ``episode_length``.
    """

    metadata = {"render_modes": []}

    def __init__(self, image_size: int = 4, close_marker: str | None = None, fail_on_init: bool = False):
        if fail_on_init:
            raise RuntimeError("DummyEnv refused to build")
        self._close_marker = close_marker
        # The default Text charset is alphanumeric only, so task strings with spaces need printable.
        self.observation_space = spaces.Dict(
            {
                "observation.images.front": spaces.Box(0, 255, (image_size, image_size, 3), np.uint8),
                "observation.state": spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32),
                "task": spaces.Text(max_length=256, charset=string.printable),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (STATE_DIM,), np.float32)
        self._image_size = image_size
        self._state = np.zeros(STATE_DIM, np.float32)
        self._task = ""
        self._t = 0
        self._episode_length = 5
        self._step_sleep = 0.0
        self._fail_at_step: int | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        self._task = str(options.get("task", "default task"))
        self._step_sleep = float(options.get("step_sleep", 0.0))
        self._fail_at_step = options.get("fail_at_step")
        self._episode_length = int(options.get("episode_length", 5))
        self._state = self.np_random.uniform(-1.0, 1.0, STATE_DIM).astype(np.float32)
        self._t = 0
        return self._obs(), {"seed": seed, "options": options}

    def step(self, action):
        if self._step_sleep:
            time.sleep(self._step_sleep)
        if self._fail_at_step is not None and self._t == self._fail_at_step:
            raise RuntimeError(f"boom at step {self._t}")
        self._state = (self._state + np.asarray(action, np.float32)).astype(np.float32)
        self._t += 1
        terminated = self._t >= self._episode_length
        return self._obs(), float(self._state.sum()), terminated, False, {"t": self._t}

    def close(self):
        if self._close_marker is not None:
            Path(self._close_marker).write_text("closed")

    # Methods the tests reach through VectorRunner.call. The state stays inside the worker, like
    # a scripted expert's privileged simulator state.
    def expert_action(self, gain: float = 1.0) -> np.ndarray:
        return (-gain * self._state).astype(np.float32)

    def getpid(self) -> int:
        return os.getpid()

    def fail(self, kind: str) -> None:
        if kind == "value":
            raise ValueError("bad value for dummy")
        raise KeyError(kind)

    def _obs(self) -> dict[str, Any]:
        level = int(abs(float(self._state.sum())) * 40) % 256
        image = np.full((self._image_size, self._image_size, 3), level, np.uint8)
        return {
            "observation.images.front": image,
            "observation.state": self._state.copy(),
            "task": self._task,
        }
