"""Fake policies for the evaluation tests (the real VLA is too slow and untrained for them)."""

from __future__ import annotations

import numpy as np
import pytest


class HoldPolicy:
    """Commands the current joint state (or zeros for ee-delta embodiments): the arm holds still.

    Records the batch size of every predict_chunk call and the tasks it was asked about.
    """

    def __init__(self, chunk_size=8, n_action_steps=4, embodiment="so101", action_dim=6):
        self.chunk_size = chunk_size
        self.n_action_steps = n_action_steps
        self.embodiment = embodiment
        self.checkpoint_hash = "0" * 64
        self.action_dim = action_dim
        self.calls: list[int] = []
        self.resets = 0

    def predict_chunk(self, observations):
        self.calls.append(len(observations))
        out = np.zeros((len(observations), self.chunk_size, self.action_dim), np.float32)
        if self.embodiment == "so101":
            for b, obs in enumerate(observations):
                assert obs["observation.state"].dtype == np.float32 and isinstance(obs["task"], str)
                out[b] = obs["observation.state"][None]
        return out

    def reset(self):
        self.resets += 1


@pytest.fixture
def hold_policy():
    return HoldPolicy
