"""A recording's settings (`RecordConfig`, the options of `embodia record`) and how its scripted experts'
episodes are played: the worlds it records, the perturbations of recovery data, and the loop that plays
(seed, reset options) jobs on a pool of envs. `embodia.data.record` runs it on local env processes and
commits the episodes; `embodia.data.record_ray` runs the same loop on Ray actors.

`action_noise` and `approach_error` record recovery data (DART, Laskey et al. 2017; `data.perturb`): the
robot executes a perturbed action while the dataset keeps the expert's clean one, so the labels say how
to get back to the expert's path: the situations a learned policy meets once its own small errors
compound, which clean demonstrations never show it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import numpy as np

from embodia.configs import nested, non_negative, opt, positive_int, ray_option, task_files
from embodia.data.perturb import ActionNoise, ApproachError, Perturbations
from embodia.robots.spec import ACTION, SAWYER, SO101, EmbodimentSpec
from embodia.sim.vector import VectorRunner


@dataclass(frozen=True)
class PerturbConfig:
    """Recovery data (DART): the robot executes a perturbed action while the dataset keeps the expert's
    clean one. All zero (the default): clean demonstrations."""

    # The gripper is never perturbed (a twitching jaw drops blocks rather than teaching recovery).
    action_noise: float = opt(
        0.0,
        "std of a smooth perturbation of the executed arm action, in action units (SO-101: radians, "
        "e.g. 0.02)",
        parse=non_negative,
        metavar="S",
    )
    # `data.perturb.ApproachError`; SO-101 tabletop only.
    approach_error: float = opt(
        0.0,
        "(tabletop) each grasp's or push's approach is executed up to M metres sideways (e.g. 0.02), "
        "the error shrinking to nothing as the tool comes down",
        parse=non_negative,
        metavar="M",
    )
    approach_roll: float = opt(
        25.0,
        "with --approach-error or --carry-error: the largest wrist-roll error, degrees",
        parse=non_negative,
        metavar="DEG",
    )
    carry_error: float = opt(
        0.0,
        "(tabletop, stack and place) a held block is carried up to M metres off, the error gone before "
        "it is set down",
        parse=non_negative,
        metavar="M",
    )
    # While the fingertips are on the table the pusher is executed off the expert's line (beside it,
    # behind or ahead), and the expert follows the block and pushes on if it fell short.
    stroke_error: float = opt(
        0.0,
        "(tabletop, push) the stroke is executed up to M metres off the expert's line",
        parse=non_negative,
        metavar="M",
    )

    def __post_init__(self) -> None:
        if not (self.action_noise >= 0 and np.isfinite(self.action_noise)):
            raise ValueError(f"action_noise must be a finite number >= 0, got {self.action_noise}")
        for name in ("approach_error", "carry_error", "stroke_error"):
            if not (0 <= getattr(self, name) <= 0.05):
                raise ValueError(f"{name} is metres in [0, 0.05], got {getattr(self, name)}")
        if not (0 <= self.approach_roll <= 45):
            raise ValueError(f"approach_roll is degrees in [0, 45], got {self.approach_roll}")

    @property
    def structured(self) -> bool:
        """Whether any tabletop-specific (approach, carry, stroke) error is on."""
        return self.approach_error > 0 or self.carry_error > 0 or self.stroke_error > 0


@dataclass(frozen=True)
class RecordConfig:
    """What `embodia record` records; its options are these fields."""

    tasks: str = opt(
        "tabletop",
        "'tabletop' (all families), families like 'pick,place', or 'metaworld:<task|group|list>'",
        positional=True,
        nargs="?",
    )
    episodes: int = opt(50, "episodes to keep", parse=positive_int)
    num_envs: int = opt(2, "environments run in parallel (subprocesses)", parse=positive_int)
    image_size: int = opt(96, "camera image side, pixels (even)", parse=positive_int)
    seed: int = opt(0, "first episode seed; episode i uses seed + i")
    keep_failures: bool = opt(False, "keep failed episodes, with next.success/next.done")
    split: Literal["train", "heldout", "all"] = opt("train", "instruction templates (tabletop)")
    video: str = opt(
        "av1",
        "video encoding: av1 (LeRobot's default, yuv420p) or h264-444 (full colour resolution)",
        choices=("av1", "h264-444"),
    )
    perturb: PerturbConfig = nested(
        PerturbConfig, "recovery data: perturb the executed action, keep the expert's"
    )
    # Each commit rewrites the growing video files, so one per episode made long recordings quadratic.
    commit_every: int = opt(
        10,
        "commit episodes to disk N at a time: a crash loses at most N; 1 commits each episode, but "
        "rewrites the growing video files every time",
        parse=positive_int,
        metavar="N",
    )

    task_files: list[str] = task_files()
    # Where the episodes run (embodia.data.record_ray); the dataset is written here either way.
    ray: str | None = ray_option("expert episodes")

    def __post_init__(self) -> None:
        if isinstance(self.perturb, dict):
            object.__setattr__(self, "perturb", PerturbConfig(**self.perturb))
        if self.commit_every < 1:
            raise ValueError(f"commit_every must be >= 1, got {self.commit_every}")


def record_worlds(cfg: RecordConfig) -> tuple[EmbodimentSpec, list[tuple[Callable, dict | None]]]:
    """(embodiment, [(env factory, reset options or None)]), one entry per world."""
    from embodia.sim.tasks import FAMILIES

    if cfg.tasks.startswith("metaworld:"):
        from embodia.sim.metaworld import MetaWorldEnv, resolve_tasks

        names = resolve_tasks(cfg.tasks.split(":", 1)[1])
        return SAWYER, [(partial(MetaWorldEnv, n, image_size=cfg.image_size), None) for n in names]
    from embodia.sim.tabletop import TabletopEnv

    families = sorted(FAMILIES) if cfg.tasks == "tabletop" else cfg.tasks.split(",")
    for fam in families:
        if fam not in FAMILIES:
            raise ValueError(
                f"unknown task family {fam!r}; valid: 'tabletop', {sorted(FAMILIES)}, or 'metaworld:<tasks or group>'"
            )
    factory = partial(TabletopEnv, image_size=cfg.image_size, split=cfg.split)
    return SO101, [(factory, {"family": fam}) for fam in families]


def perturbations(p: PerturbConfig, spec: EmbodimentSpec) -> Perturbations | None:
    """The perturbations `p` asks for (None: clean demonstrations)."""
    if not (p.structured or p.action_noise > 0):
        return None
    return Perturbations(
        ApproachError(spec, p.approach_error, p.approach_roll, p.carry_error, p.stroke_error)
        if p.structured
        else None,
        ActionNoise(p.action_noise, len(spec.action_names), spec.gripper.action_index, spec.fps)
        if p.action_noise > 0
        else None,
    )


def run_episodes(
    runner: VectorRunner,
    jobs: list[tuple[int, dict | None]],
    label_frames: bool,
    noise: Perturbations | None = None,
) -> Iterator[dict]:
    """Run the expert on every (seed, reset options); yield each finished episode. Frames hold the
    expert's action; the env executes `noise(env, action)` when given."""
    pending = list(jobs)
    active: dict[int, dict[str, Any]] = {}

    def start(i: int) -> None:
        seed, options = pending.pop(0)
        ((obs, _),) = runner.reset([seed], options=[options], indices=[i])
        active[i] = {"seed": seed, "obs": obs, "frames": []}
        if noise:
            noise.reset(i, seed, options)

    for i in range(min(runner.num_envs, len(pending))):
        start(i)
    while active:
        idx = list(active)
        actions = runner.call("expert_action", indices=idx)
        executed = [noise(i, a) for i, a in zip(idx, actions, strict=True)] if noise else actions
        results = runner.step(executed, indices=idx)
        for i, action, (obs, _, terminated, truncated, info) in zip(idx, actions, results, strict=True):
            ep = active[i]
            frame = {**ep["obs"], ACTION: np.asarray(action, np.float32)}
            done = bool(terminated or truncated)
            if label_frames:
                frame["next.success"] = np.array([bool(info.get("success", False))])
                frame["next.done"] = np.array([done])
            ep["frames"].append(frame)
            ep["obs"] = obs
            if done:
                del active[i]
                yield {
                    "seed": ep["seed"],
                    "task": ep["frames"][0]["task"],
                    "success": bool(info.get("success", False)),
                    "frames": ep["frames"],
                }
                if pending:
                    start(i)
