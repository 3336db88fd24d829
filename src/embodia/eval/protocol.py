"""What closed-loop evaluation needs from a policy: the `ChunkPolicy` protocol.

Evaluation never imports the VLA. Anything with these attributes can be evaluated: the trained
policy, a scripted baseline, or a fake in the tests. Keeping it duck-typed means `embodia.eval` loads
without torch and cannot drift into depending on the model's internals.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class ChunkPolicy(Protocol):
    """A policy that predicts a chunk of H future actions per call (action chunking).

    Attributes:
        chunk_size: H, the number of actions one `predict_chunk` call returns per observation.
        n_action_steps: how many of them the policy was trained to execute open-loop before
            re-planning (the default for `evaluate(replan_every=None)`); 1 <= n_action_steps <= H.
        embodiment: the embodiment the actions are for: "so101" (tabletop, absolute joint targets,
            6-D), "so101_ee" (tabletop, tool-point deltas, 4-D) or "sawyer" (Meta-World, 4-D).
        checkpoint_hash: sha256 of the weights, recorded in results.json ("" when there are none).
    """

    chunk_size: int
    n_action_steps: int
    embodiment: str
    checkpoint_hash: str

    def predict_chunk(self, observations: list[dict[str, Any]]) -> np.ndarray:
        """One chunk per observation: float32 (B, H, action_dim) in the env's raw action units.

        Each observation is exactly what the env returned: `observation.images.<camera>` uint8
        (H, W, 3), `observation.state` float32, `task` str. The B observations may come from
        different tasks and different points of their episodes.

        Optional keywords, passed only when the signature has them (embodia.policy.executor):
        `noise_seed` (one int per observation: a sampling policy draws that row's noise from a
        generator seeded with it, so an episode acts the same whatever it is batched with) and
        `pending` / `delay` (guided re-planning: real-time chunking's inpainting) and `episodes` (one
        (session, request index) pair per observation: a stateful policy keeps its state per episode,
        starting afresh at index 0).
        """
        ...

    def reset(self) -> None:
        """Forget any internal state. Called once before an evaluation's first episode."""
        ...
