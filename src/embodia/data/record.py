"""`embodia record`: scripted experts in N parallel environments -> a LeRobotDataset v3.0.

Episodes are planned up front as (world, seed, reset options); each world (the tabletop suite, or one
Meta-World task) gets a `VectorRunner` of N subprocess envs. Frames are buffered per env in this
process and handed to the `DatasetWriter` when an episode ends, so an episode is either fully in the
dataset or not at all. By default only successful episodes are kept; `keep_failures` keeps every
episode and labels each frame with `next.success` and `next.done`.

The seeds already tried are written to `meta/embodia_record.json` before each commit, so `--resume`
continues with fresh seeds and never records the same scene twice.

`action_noise` and `approach_error` record recovery data (DART, Laskey et al. 2017; `data.perturb`): the
robot executes a perturbed action while the dataset keeps the expert's clean one, so the labels say how
to get back to the expert's path: the situations a learned policy meets once its own small errors
compound, which clean demonstrations never show it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from embodia.configs import nested, non_negative, opt, positive_int, task_files
from embodia.data.format import VIDEO_PRESETS, DatasetError, features_for, read_json, write_json
from embodia.data.perturb import ActionNoise, ApproachError, Perturbations
from embodia.data.writer import DatasetWriter
from embodia.robots.spec import ACTION, SAWYER, SO101, EmbodimentSpec
from embodia.sim.task_files import load_task_file, task_files_record
from embodia.sim.vector import VectorRunner

RECORD_META = "meta/embodia_record.json"
SUCCESS_FEATURES = {
    "next.success": {"dtype": "bool", "shape": [1], "names": None},
    "next.done": {"dtype": "bool", "shape": [1], "names": None},
}


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

    def __post_init__(self) -> None:
        if isinstance(self.perturb, dict):
            object.__setattr__(self, "perturb", PerturbConfig(**self.perturb))
        if self.commit_every < 1:
            raise ValueError(f"commit_every must be >= 1, got {self.commit_every}")


@dataclass
class RecordResult:
    root: Path
    saved: int
    attempted: int
    successes: int
    frames: int
    seconds: float
    per_task: dict[str, list[int]] = field(default_factory=dict)  # instruction -> [saved, attempted]


def _worlds(cfg: RecordConfig) -> tuple[EmbodimentSpec, list[tuple[Callable, dict | None]]]:
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


def _plan(cfg: RecordConfig, n_worlds: int, first_seed: int) -> list[tuple[int, int]]:
    """(world index, seed) per episode: worlds take turns so every task gets its share."""
    return [(i % n_worlds, first_seed + i) for i in range(cfg.episodes)]


def record(
    cfg: RecordConfig, root: Path, resume: bool = False, progress: Progress | None = None
) -> RecordResult:
    if cfg.episodes <= 0 or cfg.num_envs <= 0:
        raise ValueError("episodes and num_envs must be positive")
    if cfg.image_size % 2:
        raise ValueError(f"image_size must be even (yuv420p video), got {cfg.image_size}")
    for path in cfg.task_files:  # before the worlds are built: the suite may name their families
        load_task_file(path)
    spec, worlds = _worlds(cfg)
    structured = cfg.perturb.structured
    if structured and spec.name != SO101.name:
        raise ValueError(
            "approach_error, carry_error and stroke_error perturb the SO-101's tabletop motions; this "
            f"recording is {spec.name} (use action_noise for recovery data there)"
        )
    extra = SUCCESS_FEATURES if cfg.keep_failures else None
    if cfg.video not in VIDEO_PRESETS:
        raise ValueError(f"unknown video encoding {cfg.video!r}; valid: {sorted(VIDEO_PRESETS)}")
    features = features_for(spec, cfg.image_size, cfg.image_size, extra, video=cfg.video)
    if resume:
        writer = DatasetWriter.resume(root, commit_every=cfg.commit_every)
        if writer.features != features:
            raise DatasetError(
                f"{root}: its features differ from this recording's (embodiment {spec.name}, "
                f"{cfg.image_size} px, keep_failures={cfg.keep_failures}); record into a new folder"
            )
        first_seed = (
            int(read_json(root / RECORD_META)["next_seed"]) if (root / RECORD_META).exists() else cfg.seed
        )
    else:
        writer = DatasetWriter.create(
            root, features, fps=spec.fps, robot_type=spec.robot_type, commit_every=cfg.commit_every
        )
        first_seed = cfg.seed
    plan = _plan(cfg, len(worlds), first_seed)
    result = RecordResult(root=root, saved=0, attempted=0, successes=0, frames=0, seconds=0.0)
    t0 = time.perf_counter()
    own_progress = progress is None
    progress = progress or Progress(
        TextColumn("recording"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} ep/s"),
        TimeRemainingColumn(),
    )
    bar = progress.add_task("record", total=len(plan), rate="-")
    next_seed = first_seed
    with progress if own_progress else nullcontext(), writer:  # leaving commits what is saved
        for factory, jobs in _batches(worlds, plan):
            n = min(cfg.num_envs, len(jobs))
            p = cfg.perturb
            noise = Perturbations(
                ApproachError(spec, p.approach_error, p.approach_roll, p.carry_error, p.stroke_error)
                if structured
                else None,
                ActionNoise(p.action_noise, len(spec.action_names), spec.gripper.action_index, spec.fps)
                if p.action_noise > 0
                else None,
            )
            with VectorRunner([factory for _ in range(n)]) as runner:
                for episode in _run_episodes(runner, jobs, cfg.keep_failures, noise):
                    result.attempted += 1
                    result.successes += episode["success"]
                    key = episode["task"]
                    saved_attempted = result.per_task.setdefault(key, [0, 0])
                    saved_attempted[1] += 1
                    if episode["success"] or cfg.keep_failures:
                        for frame in episode["frames"]:
                            writer.add_frame(frame)
                        # Before the commit: a crash after it must not hand this seed out again.
                        next_seed = max(next_seed, episode["seed"] + 1)
                        write_json(
                            root / RECORD_META, {"next_seed": next_seed, "task_files": task_files_record()}
                        )
                        writer.save_episode()
                        result.saved += 1
                        result.frames += len(episode["frames"])
                        saved_attempted[0] += 1
                    rate = result.attempted / max(time.perf_counter() - t0, 1e-9)
                    progress.update(bar, advance=1, rate=f"{rate:.2f}")
    write_json(root / RECORD_META, {"next_seed": first_seed + len(plan), "task_files": task_files_record()})
    result.seconds = time.perf_counter() - t0
    return result


def _batches(
    worlds: list[tuple[Callable, dict | None]], plan: list[tuple[int, int]]
) -> list[tuple[Callable, list[tuple[int, dict | None]]]]:
    """(env factory, [(seed, reset options)]) per pool of envs to run. Worlds built by one factory (the
    tabletop families, chosen by a reset option) share one pool and run in the plan's interleaved
    order, so a recording stopped early (`--episodes` larger than the time allows) still holds every
    family in equal shares. Worlds needing their own env class (Meta-World tasks) run one after the
    other: a Meta-World recording stopped early holds only its first tasks."""
    if all(factory is worlds[0][0] for factory, _ in worlds):
        return [(worlds[0][0], [(seed, worlds[w][1]) for w, seed in plan])]
    return [
        (factory, [(seed, options) for wi, seed in plan if wi == w])
        for w, (factory, options) in enumerate(worlds)
        if any(wi == w for wi, _ in plan)
    ]


def _run_episodes(
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
