"""Executing action chunks while the next one is computed, in a thread: `ChunkRunner`.

Every loop that acts in real time uses it: the serving client (`embodia serve` on one machine, the robot on
another), `embodia run` / `eval` / `mcp` on a real arm, the chunking benchmark.

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

Delay is counted in control ticks: the runner always switches d ticks after the request. If the
thread is not done by then the runner waits for it: in simulation time stands still, on a real robot
the tick runs late (`stall_s` sums the waits, `fetch_ms` times every fetch). Each request's noise is seeded by (episode
seed, chunk index), also over the wire (the server's `seed`), so an episode replays exactly.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
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
    """Turns chunk predictions into one action per control tick. Call `act(obs)` every tick.

    `source` is a fetch function, a `Client` (has `act`) or a ChunkPolicy (`predict_chunk`). The chunk
    logic comes from `config` (an `ExecutionConfig`) or, as a shorthand, from `n_action_steps`,
    `delay`, `strategy`. With delay 0 (temporal ensembling included) every chunk is waited for."""

    def __init__(
        self,
        source: Any,
        chunk_size: int,
        n_action_steps: int,
        delay: int = 0,
        strategy: str = "naive",
        config: ExecutionConfig | None = None,
    ):
        if config is None:
            if strategy not in STRATEGIES:
                raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
            config = ExecutionConfig(replan_every=int(n_action_steps), join=strategy, delay=int(delay))
        self.executor = ChunkExecutor(chunk_size, n_action_steps, config)
        fetch: Fetch = (
            source
            if callable(source) and not hasattr(source, "predict_chunk") and not hasattr(source, "act")
            else fetch_from(source)
        )
        self.fetch: Fetch = self._timed(fetch)
        self.chunk_size, self.n_action_steps = int(chunk_size), self.executor.k
        self.delay, self.strategy = config.delay, config.join
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-fetch")
        self._future: Future | None = None
        self.reset()

    def _timed(self, fetch: Fetch) -> Fetch:
        def timed(request: ChunkRequest) -> np.ndarray:
            t0 = time.perf_counter()
            try:
                return fetch(request)
            finally:
                self.fetch_ms.append((time.perf_counter() - t0) * 1e3)

        return timed

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
        self.stall_s = 0.0  # time the loop waited for a chunk that was due (0 at the episode's start)
        self.stalls = 0  # ticks that waited
        self.fetch_ms: list[float] = []  # every fetch's duration (inference, or the round trip)

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
            done = self._future.done()
            chunk = self._future.result()
            self.stall_s += time.perf_counter() - t0
            self.stalls += not done
            self._future = None
            ex.receive(chunk)
        return ex.action()
