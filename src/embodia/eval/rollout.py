"""Closed-loop rollouts of a chunking policy in N parallel envs.

The loop, per control tick:

1. every env whose action queue is empty needs a new chunk; their observations go to ONE
   `policy.predict_chunk` call (a batch of up to N), and the first `k` actions of each chunk fill
   that env's queue (`k = replan_every`, by default the policy's `n_action_steps`);
2. every running env executes the next action of its queue (one `VectorRunner.step`, in parallel);
3. an env whose episode ended (terminated = success, or truncated at the env's step limit) is reset
   to the next planned episode, all such envs in one `reset` call.

Envs that started together stay in phase and keep sharing predict calls; an env that starts a new
episode mid-way re-plans on its own ticks. That trades some batching for never leaving an env idle.

Seeds: episode j of every task uses seed ``EVAL_SEED_BASE + seed + j``. Recording seeds start at 0
(`embodia record --seed`), so evaluation scenes never repeat a training scene unless someone records
ten million episodes; and two checkpoints evaluated with the same `seed` see identical scenes and
instructions, so their difference is the policy's alone.
"""

from __future__ import annotations

import inspect
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embodia.eval.protocol import ChunkPolicy
from embodia.eval.suites import EvalTask, Suite
from embodia.report.video import write_mp4
from embodia.robots.spec import TASK
from embodia.sim.vector import VectorRunner

EVAL_SEED_BASE = 10_000_000


@dataclass(frozen=True)
class EpisodeSpec:
    index: int  # position in the plan (results come back in completion order; this restores it)
    task: EvalTask
    seed: int
    record_video: bool


@dataclass
class EpisodeResult:
    index: int
    task: str
    group: str
    instruction: str
    seed: int
    success: bool
    steps: int
    chunks: int  # predict_chunk calls that served this episode
    video: Path | None = None
    # Where the episode got to, for envs that say (the tabletop: embodia.sim.progress): the milestones
    # reached in order, and for a failure one label ("missed grasp", "wrong block", ...).
    stages: tuple[str, ...] = ()
    failure: str | None = None
    # How far off it was, by kind ({"grasp": {"offset_cm", ...}, "push": {...}}: embodia.sim.progress).
    measures: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self, relative_to: Path | None = None) -> dict[str, Any]:
        video = None
        if self.video is not None:
            video = self.video.relative_to(relative_to).as_posix() if relative_to else str(self.video)
        return {
            "index": self.index,
            "task": self.task,
            "group": self.group,
            "instruction": self.instruction,
            "seed": self.seed,
            "success": self.success,
            "steps": self.steps,
            "chunks": self.chunks,
            "video": video,
            "stages": list(self.stages),
            "failure": self.failure,
            "measures": self.measures,
        }


@dataclass
class _Live:
    """An episode in progress on one env."""

    spec: EpisodeSpec
    obs: dict[str, Any]
    instruction: str
    queue: deque = field(default_factory=deque)
    rest: np.ndarray | None = None  # the last chunk's actions after the k executed ones (guided re-planning)
    ensemble: TemporalEnsemble | None = None
    steps: int = 0
    chunks: int = 0
    frames: list[np.ndarray] | None = None


class TemporalEnsemble:
    """ACT's temporal ensembling: re-plan every step and execute, for step t, the weighted mean of what
    every chunk still covering t predicted for it, weight exp(-coeff * i) with i = 0 the oldest chunk.

    Re-planning every step makes the policy react to what it sees near the object, and averaging the
    overlapping chunks keeps it from switching between samples of a multimodal action distribution
    (which executing a fresh chunk every few steps does). coeff = 0 weights all chunks equally; larger
    values favour the older ones (ACT's default is 0.01).
    """

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


def plan_episodes(suite: Suite, episodes: int, seed: int = 0, videos_per_task: int = 1) -> list[EpisodeSpec]:
    """All episodes of a suite, task by task; the first `videos_per_task` of each task are filmed."""
    if episodes <= 0:
        raise ValueError(f"episodes per task must be positive, got {episodes}")
    if videos_per_task < 0:
        raise ValueError(f"videos_per_task must be >= 0, got {videos_per_task}")
    plan = []
    for task in suite.tasks:
        for j in range(episodes):
            plan.append(EpisodeSpec(len(plan), task, EVAL_SEED_BASE + seed + j, j < videos_per_task))
    return plan


def check_policy(policy: Any, replan_every: int | None) -> int:
    """Validate the policy's interface; return k, the number of actions executed per chunk."""
    missing = [
        name
        for name in (
            "chunk_size",
            "n_action_steps",
            "embodiment",
            "checkpoint_hash",
            "predict_chunk",
            "reset",
        )
        if not hasattr(policy, name)
    ]
    if missing or not isinstance(policy, ChunkPolicy):
        raise TypeError(
            f"{type(policy).__name__} is not a ChunkPolicy: missing {missing or 'callable members'} "
            "(see embodia.eval.protocol)"
        )
    h = int(policy.chunk_size)
    k = int(policy.n_action_steps if replan_every is None else replan_every)
    if not 1 <= k <= h:
        raise ValueError(f"replan_every (actions executed per chunk) must be in 1..chunk_size ({h}), got {k}")
    return k


def _video_name(spec: EpisodeSpec) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", spec.task.name).strip("-")
    return f"{safe}_seed{spec.seed}.mp4"


def run_rollouts(
    policy: ChunkPolicy,
    runner: VectorRunner,
    plan: Sequence[EpisodeSpec],
    *,
    replan_every: int | None = None,
    guided: bool = False,
    ensemble: float | None = None,
    camera_key: str,
    fps: int,
    video_dir: Path | None = None,
    on_episode: Callable[[EpisodeResult], None] | None = None,
) -> list[EpisodeResult]:
    """Run every planned episode on `runner`'s envs; results in plan order.

    `video_dir` receives one mp4 of `camera_key` per episode whose spec asks for a video (written when
    the episode ends, so at most N episodes' frames are held in memory). `on_episode` is called as each
    episode finishes (progress bars).

    `guided`: each re-plan inpaints the new chunk toward the previous chunk's unexecuted actions
    (`predict_chunk(..., pending=rest, delay=0)`, real-time chunking's guidance with no delay), so that
    re-planning corrects the current plan instead of switching to an unrelated sample of a multimodal
    action distribution.

    `ensemble`: re-plan every step and execute the temporally ensembled action (`TemporalEnsemble`, this
    value its coefficient); needs replan_every 1 and no guidance.
    """
    k = check_policy(policy, replan_every)
    if guided:
        check_guidable(policy, k)
    if ensemble is not None:
        check_ensemble(ensemble, k, guided)
    if any(s.record_video for s in plan) and video_dir is None:
        raise ValueError("the plan films episodes but no video_dir was given")
    (action_space,) = runner.get_attr("action_space", indices=[0])
    action_dim = int(np.prod(action_space.shape))
    pending = deque(plan)
    active: dict[int, _Live] = {}
    results: list[EpisodeResult] = []

    def start(indices: list[int]) -> None:
        idx = indices[: len(pending)]
        specs = [pending.popleft() for _ in idx]
        replies = runner.reset(
            [s.seed for s in specs], options=[s.task.reset_options for s in specs], indices=idx
        )
        for i, spec, (obs, _info) in zip(idx, specs, replies, strict=True):
            frames = [_frame(obs, camera_key)] if spec.record_video else None
            smoother = TemporalEnsemble(ensemble) if ensemble is not None else None
            active[i] = _Live(spec, obs, str(obs.get(TASK, "")), frames=frames, ensemble=smoother)

    def finish(live: _Live, success: bool, progress: Any) -> None:
        video = None
        if live.frames is not None:
            assert video_dir is not None
            video = write_mp4(video_dir / _video_name(live.spec), live.frames, fps=fps)
            live.frames = None
        spec = live.spec
        result = EpisodeResult(
            index=spec.index,
            task=spec.task.name,
            group=spec.task.group,
            instruction=live.instruction,
            seed=spec.seed,
            success=success,
            steps=live.steps,
            chunks=live.chunks,
            video=video,
            **_progress_fields(progress, success),
        )
        results.append(result)
        if on_episode is not None:
            on_episode(result)

    start(list(range(min(runner.num_envs, len(pending)))))
    while active:
        idx = sorted(active)
        need = [i for i in idx if not active[i].queue]
        # Envs with a previous chunk are guided by its rest (one call); the others plan freely.
        with_rest = [i for i in need if guided and active[i].rest is not None]
        for group, use_rest in ((with_rest, True), ([i for i in need if i not in with_rest], False)):
            if not group:
                continue
            rests = np.stack([active[i].rest for i in group]) if use_rest else None
            chunks = _predict(policy, [active[i].obs for i in group], k, action_dim, rests)
            for row, i in enumerate(group):
                live = active[i]
                if live.ensemble is not None:
                    live.queue.append(live.ensemble.add(chunks[row]))
                else:
                    live.queue.extend(chunks[row, :k])
                live.rest = chunks[row, k:].copy()
                live.chunks += 1
        actions = [active[i].queue.popleft() for i in idx]
        replies = runner.step(actions, indices=idx)
        freed = []
        for i, (obs, _reward, terminated, truncated, info) in zip(idx, replies, strict=True):
            live = active[i]
            live.steps += 1
            live.obs = obs
            if live.frames is not None:
                live.frames.append(_frame(obs, camera_key))
            if terminated or truncated:
                finish(live, bool(info.get("success", terminated)), info.get("progress"))
                del active[i]
                freed.append(i)
        if freed and pending:
            start(freed)
    results.sort(key=lambda r: r.index)
    return results


def _progress_fields(progress: Any, success: bool) -> dict[str, Any]:
    """`info["progress"]` of an env's last step as EpisodeResult fields; an env that does not report it
    (Meta-World) or reports something else leaves them empty rather than failing the evaluation."""
    if not isinstance(progress, dict):
        return {}
    stages = progress.get("stages")
    failure = progress.get("failure")
    measures = progress.get("measures")
    return {
        "stages": tuple(str(x) for x in stages) if isinstance(stages, list | tuple) else (),
        "failure": str(failure) if failure is not None and not success else None,
        "measures": {
            str(kind): {str(k): float(v) for k, v in row.items() if isinstance(v, int | float)}
            for kind, row in measures.items()
            if isinstance(row, dict)
        }
        if isinstance(measures, dict)
        else {},
    }


def check_ensemble(ensemble: float, k: int, guided: bool) -> None:
    """Temporal ensembling averages a new chunk every step: it needs replan_every 1, and replaces guidance."""
    TemporalEnsemble(ensemble)  # checks the coefficient
    if k != 1:
        raise ValueError(f"temporal ensembling re-plans every step: use replan_every 1, got {k}")
    if guided:
        raise ValueError("temporal ensembling and guided re-planning are alternatives: choose one")


def check_guidable(policy: Any, k: int) -> None:
    """Guided re-planning needs actions left over after the k executed ones, and a policy that takes them."""
    if k >= int(policy.chunk_size):
        raise ValueError(
            f"guided re-planning needs actions left in the chunk to guide by: execute fewer than the chunk's "
            f"{policy.chunk_size} actions per chunk (replan_every), got {k}"
        )
    if "pending" not in inspect.signature(policy.predict_chunk).parameters:
        raise TypeError(
            f"{type(policy).__name__}.predict_chunk takes no `pending` actions, so it cannot be guided "
            "(see Policy.predict_chunk for the real-time-chunking arguments)"
        )


def _predict(
    policy: ChunkPolicy,
    observations: list[dict[str, Any]],
    k: int,
    action_dim: int,
    pending: np.ndarray | None = None,
) -> np.ndarray:
    """One batched policy call, with the output checked against the contract before anything moves."""
    if pending is None:
        raw = policy.predict_chunk(observations)
    else:
        raw = policy.predict_chunk(observations, pending=pending, delay=0)
    chunks = np.asarray(raw.detach().cpu() if hasattr(raw, "detach") else raw, dtype=np.float32)
    b = len(observations)
    if chunks.ndim != 3 or chunks.shape[0] != b or chunks.shape[1] < k or chunks.shape[2] != action_dim:
        raise ValueError(
            f"predict_chunk must return (B={b}, H>={k}, action_dim={action_dim}) actions for {b} "
            f"observations, got shape {chunks.shape}"
        )
    return chunks


def _frame(obs: dict[str, Any], camera_key: str) -> np.ndarray:
    try:
        return np.asarray(obs[camera_key])
    except KeyError:
        raise ValueError(
            f"cannot film {camera_key!r}: the observation has {sorted(obs)} (was the env built without it?)"
        ) from None
