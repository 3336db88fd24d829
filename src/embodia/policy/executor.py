"""Executing action chunks: the one place that turns chunk predictions into one action per control tick.

A chunking policy predicts H actions per call; the robot executes `replan_every` (k) of them, then
re-plans. Everything about that loop lives here, once, for every caller (`embodia eval`, `run`, `demo`,
the serving client's `ChunkRunner`, the MCP `do` tool, `Policy.select_action`):

    executor = ChunkExecutor(policy.chunk_size, policy.n_action_steps, ExecutionConfig(replan_every=8))
    executor.reset(episode_seed)
    while not done:
        if (request := executor.request(obs)) is not None:     # a chunk is due at this tick
            executor.receive(predict([request])[0])              # (or later, from a thread: `delay`)
        obs, ... = env.step(executor.action())

How a new chunk joins the one being executed (`ExecutionConfig.join`):

* ``naive``: switch to the new chunk at its action `delay` (the actions before it went stale while it
  was computed).
* ``blend``: cross-fade linearly from the old chunk's remaining actions to the new chunk's.
* ``guided`` (real-time chunking): the request carries the old chunk's actions that will still run
  (`pending`) and `delay`; the policy inpaints them (`rtc_weights`: 1 over the first `delay`, decaying
  to 0 over the rest), so the new chunk continues the old plan instead of switching to another sample.

`ensemble` instead re-plans every tick and executes ACT's temporal ensemble of the overlapping chunks.

`delay` (d) is for asynchronous inference: the next chunk is requested d ticks before the switch, from
the observation of that tick, and the current chunk keeps running meanwhile. d = 0 is synchronous.

Noise: each request carries `noise_seed(episode seed, chunk index)`, and a flow-matching policy draws its
chunk's starting noise from a generator seeded with it (`Policy.predict_chunk(noise_seed=...)`, the
policy server's `seed`). An episode's actions therefore depend only on its seed and its observations,
never on how many other episodes share a batch, on scheduling, or on which machine ran the episode.

This module is numpy only: evaluation imports it without loading torch.
"""

from __future__ import annotations

import inspect
import itertools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from embodia.configs import non_negative, non_negative_int, opt, positive_int

JOINS = ("naive", "blend", "guided")
_SEED_MASK = (1 << 63) - 1  # the policy server accepts seeds in 0..2**63 - 1
_SESSIONS = itertools.count(1)  # one id per executed episode, unique in this process


def noise_seed(episode_seed: int, chunk_index: int) -> int:
    """The flow sampler's noise seed for chunk `chunk_index` of the episode with `episode_seed`:
    well mixed (numpy's SeedSequence), so neighbouring episodes and chunks draw unrelated noise."""
    words = np.random.SeedSequence([int(episode_seed) & 0xFFFFFFFFFFFFFFFF, int(chunk_index)]).generate_state(
        2, np.uint32
    )
    return ((int(words[0]) << 32) | int(words[1])) & _SEED_MASK


def rtc_weights(horizon: int, pending: int, delay: int) -> np.ndarray:
    """Real-time chunking's inpainting weights over a new chunk of `horizon` actions, given `pending`
    actions of the previous chunk that still run: 1 for the first `delay` (they execute while the chunk
    is computed, so it must reproduce them), then decaying exponentially to 0 over the rest of the
    overlap, 0 after it. Shape (horizon,), float32."""
    p = min(int(pending), int(horizon))
    if not 0 <= delay <= p:
        raise ValueError(f"delay must be in 0..{p} (the number of pending actions), got {delay}")
    w = np.zeros(horizon, np.float32)
    w[:delay] = 1.0
    i = np.arange(delay, p)
    r = (p - i) / (p - delay + 1)
    w[delay:p] = r * np.expm1(r) / (np.e - 1)
    return w


@dataclass(frozen=True)
class ExecutionConfig:
    """How a chunking policy's chunks are executed (one episode's action stream)."""

    replan_every: int | None = opt(
        None,
        "actions executed per chunk before re-planning (default: the policy's; 1 with --ensemble)",
        parse=positive_int,
    )
    join: Literal["naive", "blend", "guided"] = opt(
        "naive",
        "how a new chunk joins the executed one: naive switches, blend cross-fades, guided inpaints the "
        "old chunk's remaining actions into the new one (real-time chunking); guided needs replan-every "
        "below the chunk size",
        choices=JOINS,
    )
    ensemble: float | None = opt(
        None,
        "re-plan every step and execute ACT's temporal ensemble of the overlapping chunks, weights "
        "exp(-COEFF * age) from the oldest (ACT uses 0.01)",
        parse=non_negative,
        metavar="COEFF",
    )
    delay: int = opt(
        0,
        "request the next chunk this many ticks before the switch, from that tick's observation, as a "
        "robot does while inference runs (its first DELAY actions are then stale and skipped)",
        parse=non_negative_int,
    )

    def __post_init__(self) -> None:
        if self.replan_every is not None and self.replan_every < 1:
            raise ValueError(f"replan_every must be >= 1, got {self.replan_every}")
        if self.join not in JOINS:
            raise ValueError(f"join must be one of {JOINS}, got {self.join!r}")
        if self.delay < 0:
            raise ValueError(f"delay must be in 0..replan_every ticks, got {self.delay}")
        if self.ensemble is not None:
            if not self.ensemble >= 0:
                raise ValueError(f"the ensembling coefficient must be >= 0, got {self.ensemble}")
            if self.join != "naive" or self.delay:
                raise ValueError("temporal ensembling re-plans every step: it takes no join or delay")

    def actions_per_chunk(self, chunk_size: int, n_action_steps: int) -> int:
        """k, checked against the policy's chunk size."""
        h = int(chunk_size)
        default = 1 if self.ensemble is not None else n_action_steps
        k = int(default if self.replan_every is None else self.replan_every)
        if not 1 <= k <= h:
            raise ValueError(
                f"replan_every (actions executed per chunk) must be in 1..chunk_size ({h}), got {k}"
            )
        if self.ensemble is not None and k != 1:
            raise ValueError(f"temporal ensembling re-plans every step: use replan_every 1, got {k}")
        if self.join == "guided" and k >= h:
            raise ValueError(
                "guided re-planning needs actions left in the chunk to guide by: execute fewer than the "
                f"chunk's {h} actions per chunk (replan_every), got {k}"
            )
        if not self.delay <= k or self.delay + k > h:
            # The request must come from the chunk being executed (d <= k), and the new chunk must still
            # hold k actions after the d that go stale during inference (d + k <= H).
            raise ValueError(
                f"delay must be in 0..min(replan_every, chunk_size - replan_every) = 0..{min(k, h - k)}, "
                f"got {self.delay}"
                + (f"; execute at most {h - self.delay} actions per chunk" if 0 < self.delay < h else "")
            )
        return k


@dataclass
class ChunkRequest:
    """What to ask the policy for: a chunk for `observation` (a snapshot: the env may reuse its
    buffers), inpainting `pending` (P, action_dim) with `delay` when guided, noise from `noise_seed`.
    `session` (the episode's id in this process) and `index` (the request's number in it, 0 first) let
    a stateful policy keep its queues per episode."""

    observation: dict[str, Any]
    noise_seed: int
    pending: np.ndarray | None = None
    delay: int = 0
    session: int = 0
    index: int = 0


class TemporalEnsemble:
    """ACT's temporal ensembling: for step t, the weighted mean of what every chunk still covering t
    predicted for it, weight exp(-coeff * i) with i = 0 the oldest chunk. coeff = 0 weights all chunks
    equally; larger values favour the older ones (ACT's default is 0.01)."""

    def __init__(self, coeff: float):
        if not coeff >= 0:
            raise ValueError(f"the ensembling coefficient must be >= 0, got {coeff}")
        self.coeff = float(coeff)
        self._chunks: deque[tuple[np.ndarray, int]] = deque()  # (chunk, index of the current step in it)

    def add(self, chunk: np.ndarray) -> np.ndarray:
        """Take the chunk predicted at this step; return the action to execute now."""
        advanced = ((c, i + 1) for c, i in self._chunks)
        self._chunks = deque((c, i) for c, i in advanced if i < len(c))
        self._chunks.append((np.asarray(chunk, np.float64), 0))
        weights = np.exp(-self.coeff * np.arange(len(self._chunks)))
        actions = np.stack([c[i] for c, i in self._chunks])
        return (weights @ actions / weights.sum()).astype(np.float32)


class ChunkExecutor:
    """One episode's action stream from a chunking policy. Each tick: `request(obs)` (a `ChunkRequest`
    when a chunk is due, else None), `receive(chunk)` for every request once its chunk is there, then
    `action()`. Counters: `ticks`, `chunks` (requests made), `switch_ticks` (ticks that took their
    action first from a new chunk)."""

    def __init__(self, chunk_size: int, n_action_steps: int, config: ExecutionConfig | None = None):
        self.config = config or ExecutionConfig()
        self.chunk_size = int(chunk_size)
        self.k = self.config.actions_per_chunk(chunk_size, n_action_steps)
        self.reset(0)

    def reset(self, episode_seed: int) -> None:
        """Forget the current chunk: a new episode starts, its noise seeded by `episode_seed`."""
        self.episode_seed = int(episode_seed)
        self.session = next(_SESSIONS)
        self._chunk: np.ndarray | None = None
        self._next: np.ndarray | None = None
        self._start = self._pos = 0
        self._outstanding = False
        self._ensemble = TemporalEnsemble(self.config.ensemble) if self.config.ensemble is not None else None
        self._ensembled: np.ndarray | None = None  # the ensemble's action for this tick
        self.ticks = 0
        self.chunks = 0
        self.switch_ticks: list[int] = []

    # ------------------------------------------------------------------ the tick protocol
    @property
    def switch_due(self) -> bool:
        """Whether this tick's action comes from a chunk not received yet (wait for it)."""
        if self._ensemble is not None:
            return self._ensembled is None
        return self._chunk is None or self._pos - self._start == self.k

    def request(self, obs: dict[str, Any]) -> ChunkRequest | None:
        """The chunk to ask for at this tick, from `obs` (taken at this tick), or None."""
        if self._outstanding:
            return None
        if self._ensemble is not None:
            due, pending, delay = self._ensembled is None, None, 0
        elif self._chunk is None:
            due, pending, delay = True, None, 0
        else:
            due = self._next is None and self._pos - self._start == self.k - self.config.delay
            guided = self.config.join == "guided"
            pending = self._chunk[self._pos :].copy() if guided else None
            delay = self.config.delay if guided else 0
        if not due:
            return None
        self._outstanding = True
        seed = noise_seed(self.episode_seed, self.chunks)
        self.chunks += 1
        return ChunkRequest(_snapshot(obs), seed, pending, delay, self.session, self.chunks - 1)

    def receive(self, chunk: np.ndarray) -> None:
        """The chunk for the outstanding request."""
        if not self._outstanding:
            raise RuntimeError("received a chunk that was not requested")
        chunk = np.asarray(chunk, dtype=np.float32)
        if chunk.ndim != 2 or chunk.shape[0] < self.chunk_size:
            raise ValueError(f"expected a chunk of shape ({self.chunk_size}, action_dim), got {chunk.shape}")
        if not np.all(np.isfinite(chunk)):
            raise ValueError("the policy returned NaN or inf actions; none was executed")
        self._outstanding = False
        if self._ensemble is not None:
            self._ensembled = self._ensemble.add(chunk)
        elif self._chunk is None:
            self._chunk, self._start, self._pos = chunk, 0, 0
        else:
            self._next = chunk

    def action(self) -> np.ndarray:
        """This tick's action (a new chunk must have been received if one is due)."""
        if self._ensemble is not None:
            if self._ensembled is None:
                raise RuntimeError("no chunk was received for this tick (request, then receive)")
            action, self._ensembled = self._ensembled, None
            self.ticks += 1
            return action
        if self._chunk is None:
            raise RuntimeError("no chunk was received yet (request, then receive)")
        if self._pos - self._start == self.k:
            if self._next is None:
                raise RuntimeError("the next chunk is due at this tick but was not received")
            new, self._next = self._next, None
            d = self.config.delay
            if self.config.join == "blend":
                new = _blend(self._chunk[self._pos :], new, d)
            self._chunk, self._start, self._pos = new, d, d
            self.switch_ticks.append(self.ticks)
        action = self._chunk[self._pos]
        self._pos += 1
        self.ticks += 1
        return action


def _blend(old_rest: np.ndarray, new: np.ndarray, d: int) -> np.ndarray:
    """Linear cross-fade from the old chunk's remaining actions to the new chunk's, from action d."""
    w = min(len(old_rest), len(new) - d)
    out = new.copy()
    if w > 0:
        alpha = (np.arange(1, w + 1, dtype=np.float32) / (w + 1))[:, None]
        out[d : d + w] = (1 - alpha) * old_rest[:w] + alpha * new[d : d + w]
    return out


def _snapshot(obs: dict[str, Any]) -> dict[str, Any]:
    return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in obs.items()}


# ---------------------------------------------------------------------- asking a policy
def predict(policy: Any, requests: Sequence[ChunkRequest], action_dim: int | None = None) -> list[np.ndarray]:
    """Answer requests with as few `policy.predict_chunk` calls as possible (one per kind: free, or
    guided with the same pending length and delay), each row's noise seeded by its request. A policy
    whose `predict_chunk` takes no `noise_seed` (a scripted baseline) is called without it. The output
    is checked against the contract before anything moves: (B, H, action_dim), finite."""
    out: list[np.ndarray | None] = [None] * len(requests)
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(requests):
        key = (None, 0) if r.pending is None else (len(r.pending), r.delay)
        groups.setdefault(key, []).append(i)
    params = inspect.signature(policy.predict_chunk).parameters
    for (plen, delay), rows in groups.items():
        kwargs: dict[str, Any] = {}
        if "noise_seed" in params:
            kwargs["noise_seed"] = [requests[i].noise_seed for i in rows]
        if "episodes" in params:
            kwargs["episodes"] = [(requests[i].session, requests[i].index) for i in rows]
        if plen is not None:
            kwargs |= {"pending": np.stack([requests[i].pending for i in rows]), "delay": delay}
        raw = policy.predict_chunk([requests[i].observation for i in rows], **kwargs)
        chunks = np.asarray(raw.detach().cpu() if hasattr(raw, "detach") else raw, dtype=np.float32)
        b = len(rows)
        if (
            chunks.ndim != 3
            or chunks.shape[0] != b
            or (action_dim is not None and chunks.shape[2] != action_dim)
        ):
            raise ValueError(
                f"predict_chunk must return (B={b}, H, action_dim={action_dim}) actions for {b} "
                f"observations, got shape {chunks.shape}"
            )
        for row, i in enumerate(rows):
            out[i] = chunks[row]
    return out  # type: ignore[return-value]


def check_guidable(policy: Any) -> None:
    """Guided re-planning needs a policy whose `predict_chunk` takes the pending actions."""
    if "pending" not in inspect.signature(policy.predict_chunk).parameters:
        raise TypeError(
            f"{type(policy).__name__}.predict_chunk takes no `pending` actions, so it cannot be guided "
            "(see Policy.predict_chunk for the real-time-chunking arguments)"
        )


def executor_for(policy: Any, config: ExecutionConfig | None = None) -> ChunkExecutor:
    """A `ChunkExecutor` for `policy` (a ChunkPolicy), checked: guided execution needs `pending`."""
    config = config or ExecutionConfig()
    if config.join == "guided":
        check_guidable(policy)
    return ChunkExecutor(policy.chunk_size, policy.n_action_steps, config)


def step_policy(policy: Any, executor: ChunkExecutor, obs: dict[str, Any]) -> np.ndarray:
    """One synchronous tick for one episode: fetch whatever chunk is due, then return the action."""
    while (request := executor.request(obs)) is not None:
        executor.receive(predict(policy, [request])[0])
    return executor.action()
