"""`embodia record`: scripted experts in N parallel environments -> a LeRobotDataset v3.0.

Episodes are planned up front as (world, seed, reset options); each world (the tabletop suite, or one
Meta-World task) gets a `VectorRunner` of N subprocess envs. Frames are buffered per env in this
process and handed to the `DatasetWriter` when an episode ends, so an episode is either fully in the
dataset or not at all. By default only successful episodes are kept; `keep_failures` keeps every
episode and labels each frame with `next.success` and `next.done`.

The seeds already tried are written to `meta/embodia_record.json` before each commit, so `--resume`
continues with fresh seeds and never records the same scene twice.

The settings (`RecordConfig`) and the experts' episode loop live in `embodia.data.recording`; with
`--ray` the episodes are played by Ray actors (`embodia.data.record_ray`) and committed here the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from embodia.data.format import VIDEO_PRESETS, DatasetError, features_for, read_json, write_json
from embodia.data.recording import (  # noqa: F401  (PerturbConfig: the options' home, re-exported)
    PerturbConfig,
    RecordConfig,
    perturbations,
    record_worlds,
    run_episodes,
)
from embodia.data.writer import DatasetWriter
from embodia.robots.spec import SO101
from embodia.sim.task_files import load_task_file, task_files_record
from embodia.sim.vector import VectorRunner

RECORD_META = "meta/embodia_record.json"
SUCCESS_FEATURES = {
    "next.success": {"dtype": "bool", "shape": [1], "names": None},
    "next.done": {"dtype": "bool", "shape": [1], "names": None},
}


@dataclass
class RecordResult:
    root: Path
    saved: int
    attempted: int
    successes: int
    frames: int
    seconds: float
    per_task: dict[str, list[int]] = field(default_factory=dict)  # instruction -> [saved, attempted]


def _plan(cfg: RecordConfig, n_worlds: int, first_seed: int, origin: int) -> list[tuple[int, int]]:
    """(world index, seed) per episode: worlds take turns so every task gets its share, counted from the
    recording's very first seed `origin`, so a resumed recording goes on with the same rotation (seed s
    records the same world however many runs it took to get there)."""
    return [((first_seed + i - origin) % n_worlds, first_seed + i) for i in range(cfg.episodes)]


def record(
    cfg: RecordConfig, root: Path, resume: bool = False, progress: Progress | None = None
) -> RecordResult:
    if cfg.episodes <= 0 or cfg.num_envs <= 0:
        raise ValueError("episodes and num_envs must be positive")
    if cfg.image_size % 2:
        raise ValueError(f"image_size must be even (yuv420p video), got {cfg.image_size}")
    if cfg.ray is not None:
        from embodia.cluster import import_ray

        import_ray()  # without the extra: a clear error before any folder is written
    for path in cfg.task_files:  # before the worlds are built: the suite may name their families
        load_task_file(path)
    spec, worlds = record_worlds(cfg)
    if cfg.perturb.structured and spec.name != SO101.name:
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
        meta = read_json(root / RECORD_META) if (root / RECORD_META).exists() else {}
        first_seed = int(meta.get("next_seed", cfg.seed))
        origin = int(meta.get("first_seed", cfg.seed))
    else:
        writer = DatasetWriter.create(
            root, features, fps=spec.fps, robot_type=spec.robot_type, commit_every=cfg.commit_every
        )
        first_seed = origin = cfg.seed
    plan = _plan(cfg, len(worlds), first_seed, origin)
    batches = _batches(worlds, plan)
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
    order = [seed for _, jobs in batches for seed, _ in jobs]
    with progress if own_progress else nullcontext(), writer:  # leaving commits what is saved
        committer = Committer(cfg, root, writer, result, order, first_seed, origin,
                              lambda: progress.update(bar, advance=1, rate=_rate(result, t0)))  # fmt: skip
        if cfg.ray is not None:
            from embodia.data.record_ray import record_on_ray

            record_on_ray(cfg, batches, committer.add)
        else:
            noise = perturbations(cfg.perturb, spec)
            for w, jobs in batches:
                with VectorRunner([worlds[w][0] for _ in range(min(cfg.num_envs, len(jobs)))]) as runner:
                    for episode in run_episodes(runner, jobs, cfg.keep_failures, noise):
                        committer.add(episode)
    write_json(root / RECORD_META, record_meta(first_seed + len(plan), origin))
    result.seconds = time.perf_counter() - t0
    return result


def record_meta(next_seed: int, first_seed: int) -> dict:
    """meta/embodia_record.json: the next seed to record, the recording's first seed (for the family
    rotation of a resumed recording) and the task files it loaded."""
    return {"next_seed": next_seed, "first_seed": first_seed, "task_files": task_files_record()}


def _rate(result: RecordResult, t0: float) -> str:
    return f"{result.attempted / max(time.perf_counter() - t0, 1e-9):.2f}"


class Committer:
    """The one writer of a recording: takes finished episodes in any order (parallel envs, Ray actors)
    and commits them in the order their seeds were planned, so a recording's episodes do not depend on
    how many envs or workers made them, and `next_seed` (written before each commit) is exact: after a
    crash, `--resume` runs again every seed not committed. Episodes waiting for an earlier seed are
    held in memory (a few: the envs or workers in flight)."""

    def __init__(self, cfg: RecordConfig, root: Path, writer: DatasetWriter, result: RecordResult,
                 order: list[int], next_seed: int, origin: int, on_episode: Callable[[], None]):  # fmt: skip
        self.cfg, self.root, self.writer, self.result = cfg, root, writer, result
        self.order = iter(order)
        self.expected = next(self.order, None)
        self.waiting: dict[int, dict] = {}
        self.next_seed, self.origin = next_seed, origin
        self.on_episode = on_episode

    def add(self, episode: dict) -> None:
        if episode["seed"] in self.waiting:
            raise RuntimeError(f"seed {episode['seed']} was recorded twice")
        self.waiting[episode["seed"]] = episode
        while self.expected in self.waiting:
            self._commit(self.waiting.pop(self.expected))
            self.expected = next(self.order, None)

    def _commit(self, episode: dict) -> None:
        result = self.result
        result.attempted += 1
        result.successes += episode["success"]
        saved_attempted = result.per_task.setdefault(episode["task"], [0, 0])
        saved_attempted[1] += 1
        if episode["success"] or self.cfg.keep_failures:
            for frame in episode["frames"]:
                self.writer.add_frame(frame)
            # Before the commit: a crash after it must not hand this seed out again.
            self.next_seed = max(self.next_seed, episode["seed"] + 1)
            write_json(self.root / RECORD_META, record_meta(self.next_seed, self.origin))
            self.writer.save_episode()
            result.saved += 1
            result.frames += len(episode["frames"])
            saved_attempted[0] += 1
        self.on_episode()


def _batches(
    worlds: list[tuple[Callable, dict | None]], plan: list[tuple[int, int]]
) -> list[tuple[int, list[tuple[int, dict | None]]]]:
    """(index of the world whose factory builds the envs, [(seed, reset options)]) per pool of envs to
    run. Worlds built by one factory (the tabletop families, chosen by a reset option) share one pool and
    run in the plan's interleaved order, so a recording stopped early (`--episodes` larger than the time
    allows) still holds every family in equal shares. Worlds needing their own env class (Meta-World
    tasks) run one after the other: a Meta-World recording stopped early holds only its first tasks."""
    if all(factory is worlds[0][0] for factory, _ in worlds):
        return [(0, [(seed, worlds[w][1]) for w, seed in plan])]
    return [
        (w, [(seed, options) for wi, seed in plan if wi == w])
        for w, (factory, options) in enumerate(worlds)
        if any(wi == w for wi, _ in plan)
    ]
