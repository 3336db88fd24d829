"""Closed-loop rollouts of a chunking policy in N parallel envs.

The loop, per control tick:

1. every env whose episode's `ChunkExecutor` (embodia.policy.executor) asks for a chunk at this tick
   sends its observation to ONE `policy.predict_chunk` call (a batch of up to N; guided requests
   in a call of their own), each row's noise seeded by (episode seed, chunk index), so an episode
   acts the same whatever it is batched with;
2. every running env executes its executor's action (one `VectorRunner.step`, in parallel);
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

import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embodia.eval.protocol import ChunkPolicy
from embodia.eval.suites import EvalTask, Suite
from embodia.policy.executor import ChunkExecutor, ExecutionConfig, executor_for, predict
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
    executor: ChunkExecutor
    frames: list[np.ndarray] | None = None

    def result(self, success: bool, progress: Any, video: Path | None) -> EpisodeResult:
        spec = self.spec
        return EpisodeResult(
            index=spec.index,
            task=spec.task.name,
            group=spec.task.group,
            instruction=self.instruction,
            seed=spec.seed,
            success=success,
            steps=self.executor.ticks,
            chunks=self.executor.chunks,
            video=video,
            **_progress_fields(progress, success),
        )


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


def check_policy(policy: Any, execution: ExecutionConfig) -> int:
    """Validate the policy's interface and the execution settings against it; return k, the number of
    actions executed per chunk."""
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
    return executor_for(policy, execution).k


def _video_name(spec: EpisodeSpec) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", spec.task.name).strip("-")
    return f"{safe}_seed{spec.seed}.mp4"


def run_rollouts(
    policy: ChunkPolicy,
    runner: VectorRunner,
    plan: Sequence[EpisodeSpec],
    *,
    execution: ExecutionConfig | None = None,
    camera_key: str,
    fps: int,
    video_dir: Path | None = None,
    on_episode: Callable[[EpisodeResult], None] | None = None,
) -> list[EpisodeResult]:
    """Run every planned episode on `runner`'s envs; results in plan order.

    `execution` says how chunks are executed (re-plan interval, guided re-planning, temporal
    ensembling, a simulated inference delay: `ExecutionConfig`). `video_dir` receives one mp4 of
    `camera_key` per episode whose spec asks for a video (written when the episode ends, so at most N
    episodes' frames are held in memory). `on_episode` is called as each episode finishes (progress
    bars).
    """
    execution = execution or ExecutionConfig()
    check_policy(policy, execution)
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
            executor = executor_for(policy, execution)
            executor.reset(spec.seed)
            active[i] = _Live(spec, obs, str(obs.get(TASK, "")), executor, frames=frames)

    def finish(live: _Live, success: bool, progress: Any) -> None:
        video = None
        if live.frames is not None:
            assert video_dir is not None
            video = write_mp4(video_dir / _video_name(live.spec), live.frames, fps=fps)
            live.frames = None
        result = live.result(success, progress, video)
        results.append(result)
        if on_episode is not None:
            on_episode(result)

    start(list(range(min(runner.num_envs, len(pending)))))
    while active:
        idx = sorted(active)
        _serve_chunks(policy, [active[i].executor for i in idx], [active[i].obs for i in idx], action_dim)
        actions = [active[i].executor.action() for i in idx]
        replies = runner.step(actions, indices=idx)
        freed = []
        for i, (obs, _reward, terminated, truncated, info) in zip(idx, replies, strict=True):
            live = active[i]
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


def _serve_chunks(
    policy: ChunkPolicy, executors: list[ChunkExecutor], observations: list, action_dim: int
) -> None:
    """Every chunk due at this tick, batched across envs (synchronously: a simulated delay is in ticks)."""
    while True:
        asked = [(ex, r) for ex, obs in zip(executors, observations, strict=True) if (r := ex.request(obs))]
        if not asked:
            return
        chunks = predict(policy, [r for _, r in asked], action_dim)
        for (ex, _), chunk in zip(asked, chunks, strict=True):
            ex.receive(chunk)


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


def _frame(obs: dict[str, Any], camera_key: str) -> np.ndarray:
    try:
        return np.asarray(obs[camera_key])
    except KeyError:
        raise ValueError(
            f"cannot film {camera_key!r}: the observation has {sorted(obs)} (was the env built without it?)"
        ) from None
