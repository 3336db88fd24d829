"""Executing action chunks while the next one is computed, in a thread: `ChunkRunner`.

The chunk logic itself (re-plan interval, delay, naive / blend / guided joins) is the one
`ChunkExecutor` (embodia.policy.executor); this runner adds the thread. A chunking policy returns H
actions per call and the robot runs `n_action_steps` (n) of them before switching to a new chunk.
Synchronously, the arm would stand still during every inference; instead the runner asks for the next
chunk `delay` (d) control ticks before the switch, in a thread, and keeps executing the current chunk
meanwhile. The new chunk was planned from an observation d ticks old, so its first d actions are
already in the past: execution continues from its action d.

Timeline of one chunk (H = 8, n = 4, d = 2; `x` = executed):

    chunk A   x x x x . . . .        request at A[2] (obs at that tick), A[2], A[3] run meanwhile
    chunk B       . . x x x x . .    B[0] is for the request tick; B[2] runs right after A[3]

How B joins A at the switch (the `strategy`, `ExecutionConfig.join`): ``naive`` jumps to B[d] (B was
planned independently, so the commanded position can step: jerk); ``blend`` cross-fades linearly over
the overlap; ``guided`` (real-time chunking) sends A's actions that still run from the request tick
(``pending``) and ``delay`` = d, and the policy inpaints them, so B[:d] reproduces what actually ran and
B continues it smoothly (see Policy.predict_chunk).

Delay is *simulated* in control ticks: the runner always switches d ticks after the request. If the
thread is not done by then the runner waits for it (in simulation time stands still; `stall_s` says
how long the world would have waited on a real robot). Each request's noise is seeded by (episode
seed, chunk index), also over the wire (the server's `seed`), so an episode replays exactly.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embodia.policy.executor import JOINS, ChunkExecutor, ChunkRequest, ExecutionConfig, predict

STRATEGIES = JOINS

# fetch(request) -> (H, action_dim) actions
Fetch = Callable[[ChunkRequest], np.ndarray]


def fetch_from(source: Any) -> Fetch:
    """A fetch function for a `Client` (has `act`), or any ChunkPolicy (`predict_chunk`)."""
    if hasattr(source, "act"):
        return lambda r: source.act(r.observation, pending=r.pending, delay=r.delay, seed=r.noise_seed)
    return lambda r: predict(source, [r])[0]


class ChunkRunner:
    """Turns chunk predictions into one action per control tick. Call `act(obs)` every tick."""

    def __init__(
        self,
        source: Any,
        chunk_size: int,
        n_action_steps: int,
        delay: int = 0,
        strategy: str = "naive",
    ):
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        config = ExecutionConfig(replan_every=int(n_action_steps), join=strategy, delay=int(delay))
        self.executor = ChunkExecutor(chunk_size, n_action_steps, config)
        self.fetch: Fetch = (
            source
            if callable(source) and not hasattr(source, "predict_chunk") and not hasattr(source, "act")
            else fetch_from(source)
        )
        self.chunk_size, self.n_action_steps = int(chunk_size), int(n_action_steps)
        self.delay, self.strategy = int(delay), strategy
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-fetch")
        self._future: Future | None = None
        self.reset()

    def reset(self, seed: int = 0) -> None:
        """Forget the current chunk: a new episode starts (its noise seeded by `seed`)."""
        future = self._future
        if future is not None:
            future.cancel()
            # Let an in-flight request finish before anything reuses the source; its result (or
            # error) is discarded with the episode.
            with contextlib.suppress(Exception):
                future.result()
        self._future = None
        self.executor.reset(seed)
        self.stall_s = 0.0

    @property
    def ticks(self) -> int:
        return self.executor.ticks

    @property
    def chunks(self) -> int:
        """Chunks requested in this episode."""
        return self.executor.chunks

    @property
    def switch_ticks(self) -> list[int]:
        return self.executor.switch_ticks

    def close(self) -> None:
        self.reset()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> ChunkRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """The action for this tick; `obs` is the observation taken at this tick."""
        ex = self.executor
        while (request := ex.request(obs)) is not None:
            if ex.switch_due and self._future is None and ex.ticks == 0:
                ex.receive(self.fetch(request))  # episode start: nothing runs yet, so wait for it
            else:
                self._future = self._pool.submit(self.fetch, request)
        if ex.switch_due and self._future is not None:
            t0 = time.perf_counter()
            chunk = self._future.result()
            self.stall_s += time.perf_counter() - t0
            self._future = None
            ex.receive(chunk)
        return ex.action()


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
