"""One closed-loop episode in one in-process env, for `embodia demo` and `embodia run`.

(`eval.rollout` runs many episodes over parallel worker processes; this is the single-episode path,
where starting workers would cost more than the episode.)

Free-text instructions are read by `embodia.eval.scope` (which task, whether any, the words the
policy is given); `run_episode` takes the task for the scene and, optionally, other words for the policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from embodia.policy.executor import ExecutionConfig, executor_for, step_policy
from embodia.robots.spec import TASK
from embodia.sim.tasks import TaskInstance


@dataclass
class Episode:
    instruction: str
    task: TaskInstance | None
    seed: int
    success: bool
    steps: int
    chunks: int
    frames: list[np.ndarray] = field(default_factory=list, repr=False)


def run_episode(
    policy,
    env,
    seed: int,
    task: TaskInstance | str | None = None,
    instruction: str | None = None,
    execution: ExecutionConfig | None = None,
    max_steps: int | None = None,
    cameras: tuple[str, ...] = ("observation.images.front", "observation.images.wrist"),
    on_step=None,
) -> Episode:
    """Reset `env` with `seed` (and `task`), then act with chunks of `policy` (executed as `execution`
    says) until success or the step limit. `instruction` replaces the text the policy reads (the scene
    still follows `task`). `on_step(env)`, if given, is called after every env step (e.g. to measure the
    scene). The same seed replays the same episode: the policy's noise is seeded by it."""
    options = {"task": task} if task is not None else None
    obs, _ = env.reset(seed=seed, options=options)
    text = instruction or obs[TASK]
    limit = max_steps or env.max_episode_steps
    frames = [_frame(obs, cameras)]
    executor = executor_for(policy, execution)
    executor.reset(seed)
    policy.reset()
    success = False
    while executor.ticks < limit:
        obs, _, terminated, truncated, info = env.step(step_policy(policy, executor, {**obs, TASK: text}))
        if on_step is not None:
            on_step(env)
        frames.append(_frame(obs, cameras))
        success = bool(info.get("success", terminated))
        if terminated or truncated:
            break
    return Episode(text, getattr(env, "task", None), seed, success, executor.ticks, executor.chunks, frames)


def _frame(obs: dict, cameras: tuple[str, ...]) -> np.ndarray:
    views = [obs[c] for c in cameras if c in obs]
    return np.concatenate(views, axis=1) if len(views) > 1 else views[0]
