"""Measuring how chunks join: smoothness at chunk boundaries (`boundary_jerk`) and a closed-loop
episode on a Gymnasium env through a `ChunkRunner` (`run_chunked_episode`, for tests and
benchmarks/chunking.py). The runner itself lives in `embodia.policy.runner`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embodia.policy.executor import JOINS
from embodia.policy.runner import ChunkRunner

STRATEGIES = JOINS


# ---------------------------------------------------------------------------- smoothness measures
def differences(actions: np.ndarray, order: int) -> np.ndarray:
    """|Δ^order a_t| (L2 over action dims) for t = order..T-1; index t - order is tick t."""
    a = np.asarray(actions, dtype=np.float64)
    return np.linalg.norm(np.diff(a, n=order, axis=0), axis=-1)


def boundary_jerk(actions: np.ndarray, switch_ticks: list[int]) -> dict[str, float]:
    """Smoothness at chunk boundaries vs inside chunks.

    A step between a_{s-1} and a_s (s = the first tick of a new chunk) shows in the third difference at
    ticks s, s+1, s+2 and in the second difference at s, s+1. Returns the mean |Δ³a| over those ticks,
    the mean |Δ³a| over all other ticks (the policy's own roughness), the max |Δ²a| at boundaries and
    the mean |Δa| across the boundary itself."""
    a = np.asarray(actions)
    t_len = len(a)
    j3, j2, j1 = differences(a, 3), differences(a, 2), differences(a, 1)
    near3 = sorted({t for s in switch_ticks for t in (s, s + 1, s + 2) if 3 <= t < t_len})
    near2 = sorted({t for s in switch_ticks for t in (s, s + 1) if 2 <= t < t_len})
    step = [s for s in switch_ticks if 1 <= s < t_len]
    inner = sorted(set(range(3, t_len)) - set(near3))
    nan = float("nan")
    return {
        "boundary_jerk": float(np.mean(j3[[t - 3 for t in near3]])) if near3 else nan,
        "interior_jerk": float(np.mean(j3[[t - 3 for t in inner]])) if inner else nan,
        "boundary_max_accel": float(np.max(j2[[t - 2 for t in near2]])) if near2 else nan,
        "boundary_step": float(np.mean(j1[[t - 1 for t in step]])) if step else nan,
    }


@dataclass
class ChunkedEpisode:
    success: bool
    steps: int
    chunks: int
    actions: np.ndarray
    switch_ticks: list[int] = field(default_factory=list)
    stall_s: float = 0.0


def run_chunked_episode(
    runner: ChunkRunner, env, seed: int, options: dict[str, Any] | None = None, max_steps: int | None = None
) -> ChunkedEpisode:
    """One closed-loop episode on a Gymnasium env driven through `runner`; `options` go to reset (the
    tabletop takes {"task": ...} or {"family": ...})."""
    obs, _ = env.reset(seed=seed, options=options)
    runner.reset(seed)
    limit = max_steps or getattr(env, "max_episode_steps", 300)
    actions, success = [], False
    for _ in range(limit):
        action = runner.act(obs)
        actions.append(action)
        obs, _, terminated, truncated, info = env.step(action)
        success = bool(info.get("success", terminated))
        if terminated or truncated:
            break
    return ChunkedEpisode(
        success, len(actions), runner.chunks, np.asarray(actions), list(runner.switch_ticks), runner.stall_s
    )
