"""Executing action chunks while the next one is computed: naive switching, blending, real-time chunking.

A chunking policy returns H actions per call and the robot runs `n_action_steps` (n) of them before
switching to a new chunk. Synchronously, the arm would stand still during every inference; instead the
`ChunkRunner` asks for the next chunk `delay` (d) control ticks before the switch, in a thread, and
keeps executing the current chunk meanwhile. The new chunk was planned from an observation d ticks old,
so its first d actions are already in the past: execution continues from its action d.

Timeline of one chunk (H = 8, n = 4, d = 2; `x` = executed):

    chunk A   x x x x . . . .        request at A[2] (obs at that tick), A[2], A[3] run meanwhile
    chunk B       . . x x x x . .    B[0] is for the request tick; B[2] runs right after A[3]

How the runner joins B to A at the switch (the `strategy`):

* ``naive``: jump straight to B[d]. B was planned independently (fresh noise, new observation), so the
  commanded position can step at the boundary: jerk.
* ``blend``: cross-fade linearly over the overlap: action i after the switch is
  (1 - w_i) A[n + i] + w_i B[d + i] with w_i rising from 0 to 1 over the remaining steps of A.
* ``rtc`` (real-time chunking, guided by the server): the request carries A's actions that will still
  run from the request tick (``pending`` = A[n-d:]) and ``delay`` = d; the policy inpaints them, so
  B[:d] reproduces what actually ran and B continues it smoothly (see Policy.predict_chunk).

Delay is *simulated* in control ticks: the runner always switches d ticks after the request. If the
thread is not done by then the runner waits for it (in simulation time stands still; `stall_s` says
how long the world would have waited on a real robot).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

STRATEGIES = ("naive", "blend", "rtc")

# fetch(observation, pending (P, d) or None, delay) -> (H, action_dim) actions
Fetch = Callable[[dict[str, Any], np.ndarray | None, int], np.ndarray]


def fetch_from(source: Any) -> Fetch:
    """A fetch function for a `Client` (has `act`), or any ChunkPolicy (`predict_chunk`)."""
    if hasattr(source, "act"):
        return lambda obs, pending, delay: source.act(obs, pending=pending, delay=delay)

    def via_policy(obs, pending, delay):
        if pending is None:
            return np.asarray(source.predict_chunk([obs]))[0]
        return np.asarray(source.predict_chunk([obs], pending=pending[None], delay=delay))[0]

    return via_policy


def _snapshot(obs: dict[str, Any]) -> dict[str, Any]:
    # The env may reuse its buffers on the next step while the thread still reads this observation.
    return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in obs.items()}


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
        h, n, d = int(chunk_size), int(n_action_steps), int(delay)
        if not 1 <= n <= h:
            raise ValueError(f"n_action_steps must be in 1..chunk_size ({h}), got {n}")
        if not 0 <= d <= n or d + n > h:
            # The request must come from the chunk being executed (d <= n), and the new chunk must
            # still hold n actions after the d that go stale during inference (d + n <= H).
            fix = (
                f"; execute at most {h - d} actions per chunk (n_action_steps) to leave room for it"
                if 0 < d < h
                else ""
            )
            raise ValueError(
                f"delay must be in 0..min(n_action_steps, chunk_size - n_action_steps) = 0..{min(n, h - n)}, "
                f"got {d}{fix}"
            )
        self.fetch: Fetch = (
            source if callable(source) and not hasattr(source, "predict_chunk") else fetch_from(source)
        )
        self.chunk_size, self.n_action_steps, self.delay, self.strategy = h, n, d, strategy
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-fetch")
        self.reset()

    def reset(self) -> None:
        """Forget the current chunk (a new episode starts)."""
        future = getattr(self, "_future", None)
        if future is not None:
            future.cancel()
            # Let an in-flight request finish before anything reuses the source; its result (or
            # error) is discarded with the episode.
            with contextlib.suppress(Exception):
                future.result()
        self._chunk: np.ndarray | None = None
        self._start = self._pos = 0
        self._future: Future | None = None
        self.ticks = 0
        self.chunks = 0  # chunks that actions were taken from
        self.switch_ticks: list[int] = []  # ticks whose action came first from a new chunk
        self.stall_s = 0.0

    def close(self) -> None:
        self.reset()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> ChunkRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _get(self, obs: dict[str, Any], pending: np.ndarray | None, delay: int) -> np.ndarray:
        chunk = np.asarray(self.fetch(obs, pending, delay), dtype=np.float32)
        if chunk.ndim != 2 or chunk.shape[0] < self.chunk_size:
            raise ValueError(f"expected a chunk of shape ({self.chunk_size}, action_dim), got {chunk.shape}")
        return chunk

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """The action for this tick; `obs` is the observation taken at this tick."""
        n, d = self.n_action_steps, self.delay
        if self._chunk is None:  # episode start: nothing runs yet, so wait for the first chunk
            self._chunk, self._start, self._pos = self._get(obs, None, 0), 0, 0
            self.chunks += 1
        done = self._pos - self._start  # actions already executed from the current chunk
        if self._future is None and done == n - d:
            pending = self._chunk[self._pos :].copy() if self.strategy == "rtc" else None
            self._future = self._pool.submit(
                self._get, _snapshot(obs), pending, d if pending is not None else 0
            )
        if done == n:
            t0 = time.perf_counter()
            new = self._future.result()
            self.stall_s += time.perf_counter() - t0
            self._future = None
            if self.strategy == "blend":
                new = self._blend(self._chunk[self._pos :], new)
            self._chunk, self._start, self._pos = new, d, d
            self.chunks += 1
            self.switch_ticks.append(self.ticks)
        action = self._chunk[self._pos]
        self._pos += 1
        self.ticks += 1
        return action

    def _blend(self, old_rest: np.ndarray, new: np.ndarray) -> np.ndarray:
        """Linear cross-fade from the old chunk's remaining actions to the new chunk's, from action d."""
        d = self.delay
        w = min(len(old_rest), len(new) - d)
        out = new.copy()
        if w > 0:
            alpha = (np.arange(1, w + 1, dtype=np.float32) / (w + 1))[:, None]
            out[d : d + w] = (1 - alpha) * old_rest[:w] + alpha * new[d : d + w]
        return out


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
    runner.reset()
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
