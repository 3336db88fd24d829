"""Evaluation suites: which tasks, which env builds them, how each episode is reset, and its group.

Suite specs (the same vocabulary as `embodia record`):

* ``tabletop``: all five SO-101 task families; ``pick,place``: a comma list of families. Each
  family is a task and its own group. ``split`` picks the instruction templates (train / heldout /
  all); the instruction of each episode is drawn from them by the episode's seed.
* ``metaworld:<task|group|list>``: Meta-World v3 tasks (``metaworld:drawer-open``,
  ``metaworld:mt10``, ``metaworld:hard,reach``). The group of a task is its difficulty (easy, medium,
  hard, very_hard), as in LeRobot's reports.

All tasks of a suite run in one `VectorRunner`: the tabletop env switches family through its reset
options, and `MetaWorldTasks` below does the same for Meta-World, so a worker process is spawned
once per evaluation rather than once per task (for MT50 that is 2 x 50 fewer interpreter starts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import gymnasium as gym

from embodia.robots.spec import image_key

METAWORLD_PREFIX = "metaworld:"
SPLITS = ("train", "heldout", "all")
# Which embodiment a policy must be for, and the tabletop action mode that serves it.
_TABLETOP_ACTION_MODES = {"so101": "joint_abs", "so101_ee": "ee_delta"}


@dataclass(frozen=True)
class EvalTask:
    """One task of a suite: `name` is a family ("pick") or a Meta-World task ("drawer-open-v3")."""

    name: str
    group: str
    reset_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    spec: str
    kind: str  # "tabletop" or "metaworld"
    embodiments: tuple[str, ...]  # policy embodiments this suite can evaluate
    tasks: tuple[EvalTask, ...]
    camera_key: str  # the camera recorded in videos
    fps: int
    split: str | None  # instruction templates (tabletop only)

    @property
    def groups(self) -> list[str]:
        return list(dict.fromkeys(t.group for t in self.tasks))

    def env_factory(self, embodiment: str, image_size: int, max_steps: int | None) -> Callable[[], gym.Env]:
        """A picklable zero-argument env factory (spawned workers import and call it)."""
        if embodiment not in self.embodiments:
            raise ValueError(
                f"the policy is for embodiment {embodiment!r} but suite {self.spec!r} runs "
                f"{' or '.join(self.embodiments)}; evaluate it on a matching suite"
            )
        if self.kind == "tabletop":
            from embodia.sim.tabletop import TabletopEnv

            return partial(
                TabletopEnv,
                split=self.split,
                image_size=image_size,
                action_mode=_TABLETOP_ACTION_MODES[embodiment],
                max_episode_steps=max_steps,
            )
        # MetaWorldEnv has its own default limit (LeRobot's 400 steps); pass ours only when set.
        limit = {} if max_steps is None else {"max_episode_steps": max_steps}
        return partial(MetaWorldTasks, self.tasks[0].name, image_size=image_size, **limit)


def resolve_suite(spec: str, split: str = "train") -> Suite:
    """Parse a suite spec (see the module docstring); unknown names raise ValueError listing valid ones."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {list(SPLITS)}")
    spec = spec.strip()
    if spec.startswith(METAWORLD_PREFIX):
        from embodia.sim.metaworld import CAMERA, FPS, difficulty_of, resolve_tasks

        if split != "train":
            raise ValueError(
                f"split {split!r} applies to the tabletop suite only: Meta-World has one instruction per task"
            )
        names = resolve_tasks(spec[len(METAWORLD_PREFIX) :])
        tasks = tuple(EvalTask(n, difficulty_of(n), {"task": n}) for n in names)
        return Suite(spec, "metaworld", ("sawyer",), tasks, image_key(CAMERA), FPS, None)

    from embodia.sim.scene import CONTROL_FPS
    from embodia.sim.tasks import FAMILIES

    families = list(FAMILIES) if spec == "tabletop" else [f.strip() for f in spec.split(",") if f.strip()]
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        raise ValueError(
            f"unknown suite {spec!r}; valid: 'tabletop', a comma list of task families "
            f"{sorted(FAMILIES)}, or 'metaworld:<task|group|list>' (groups: easy, medium, hard, "
            "very_hard, mt10, mt50)"
        )
    families = list(dict.fromkeys(families))
    tasks = tuple(EvalTask(f, f, {"family": f}) for f in families)
    return Suite(
        spec, "tabletop", tuple(_TABLETOP_ACTION_MODES), tasks, image_key("front"), CONTROL_FPS, split
    )


class MetaWorldTasks(gym.Env):
    """A Meta-World env that can become any task: ``reset(options={"task": name})`` switches to it.

    Only the current task's `MetaWorldEnv` is alive (switching closes the old one), so memory stays
    that of one env. Episodes are scheduled task by task, so a worker switches about once per task.
    Everything else (`step`, `expert_action`, attributes) is the current env's.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}

    def __init__(self, task: str, **env_kwargs: Any):
        from embodia.sim.metaworld import MetaWorldEnv

        self._make = partial(MetaWorldEnv, **env_kwargs)
        self._env = self._make(task)
        self._adopt_spaces()

    @property
    def current(self) -> gym.Env:
        return self._env

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = dict(options or {})
        task = options.pop("task", None)
        if task is not None:
            from embodia.sim.metaworld import normalize_task_name

            if normalize_task_name(task) != self._env.task_name:
                self._env.close()
                self._env = self._make(task)
                self._adopt_spaces()
        return self._env.reset(seed=seed, options=options or None)

    def step(self, action):
        return self._env.step(action)

    def render(self):
        return self._env.render()

    def close(self):
        self._env.close()

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes this wrapper lacks (task_name, expert_action, embodiment, ...).
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._env, name)

    def _adopt_spaces(self) -> None:
        self.observation_space = self._env.observation_space
        self.action_space = self._env.action_space
