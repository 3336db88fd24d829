"""One closed-loop episode in one in-process env, for `embodia demo` and `embodia run`.

(`eval.rollout` runs many episodes over parallel worker processes; this is the single-episode path,
where starting workers would cost more than the episode.)

Free-text instructions: the policy reads the user's own words, but the simulator still has to know
which scene to lay out and how to judge success. `interpret` maps the text to the closest task of the
catalogue by sentence-embedding similarity (the same frozen encoder the policy uses), so "grab the
crimson cube" runs as a pick of the red block while the policy is given the user's sentence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from embodia.policy.executor import ExecutionConfig, executor_for, step_policy
from embodia.robots.spec import TASK
from embodia.sim.tasks import FAMILIES, TaskInstance, make_task, parse_instruction


@dataclass
class Episode:
    instruction: str
    task: TaskInstance | None
    seed: int
    success: bool
    steps: int
    chunks: int
    frames: list[np.ndarray] = field(default_factory=list, repr=False)


def all_tasks() -> list[TaskInstance]:
    """Every instruction the catalogue can express (both template splits), user families included."""
    out = []
    for fam in FAMILIES.values():
        combos = _slot_values(fam)
        for split in ("train", "heldout"):
            for tpl in range(len(fam.templates(split))):
                out.extend(make_task(fam.name, template=tpl, split=split, **values) for values in combos)
    return out


def _slot_values(fam) -> list[dict[str, str]]:
    """Every combination of the family's slot values that respects each slot's `distinct_from`."""
    combos: list[dict[str, str]] = [{}]
    for name in fam.slots:
        slot = fam.slot(name)
        combos = [
            c | {name: v}
            for c in combos
            for v in slot.values
            if all(c.get(d) != v for d in slot.distinct_from)
        ]
    return combos


_CATALOGUE: tuple[tuple[str, ...], list[TaskInstance], np.ndarray] | None = None  # (families, tasks, vectors)


def interpret(text: str, encoder) -> tuple[TaskInstance, float]:
    """The catalogue task closest to `text` and the cosine similarity (1.0 for an exact template)."""
    global _CATALOGUE
    try:
        return parse_instruction(text), 1.0
    except ValueError:
        pass
    if _CATALOGUE is None or _CATALOGUE[0] != tuple(FAMILIES):  # a task file may have added families
        tasks = all_tasks()
        _, _, pooled = encoder.encode([t.instruction for t in tasks])
        _CATALOGUE = (tuple(FAMILIES), tasks, pooled.numpy())
    _, tasks, pooled = _CATALOGUE
    _, _, q = encoder.encode([text])
    scores = pooled @ q.numpy()[0]
    # Judge each (family, colours, direction) by its mean similarity over all its phrasings: a single
    # template can match on a shared noun ("cube") while the verb says another family.
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tasks):
        groups.setdefault((t.family, *sorted(t.values.items())), []).append(i)
    key = max(groups, key=lambda g: float(np.mean(scores[groups[g]])))
    best = max(groups[key], key=lambda i: scores[i])
    return tasks[best], float(scores[best])


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
