"""Closed-loop evaluation fanned out to Ray actors (`embodia eval ... --ray ADDRESS`).

Each actor holds one environment and a policy replica, built in the actor by a picklable zero-argument
`policy_factory` (the CLI's loads its own copy of the checkpoint folder, shipped to it through Ray's
object store, or the same shipped name or Hub id, or connects to the same policy server), and runs one planned episode per call through the local path's own loop
(`run_rollouts` with one in-process env), so an episode's outcome equals a local run with the same seed
(each episode's noise is seeded by its seed and chunk index: embodia.policy.executor) with one env and
as many torch threads as an actor has CPUs (another count sums in another order: last-bit differences).

Results come back through Ray, never through a shared disk: per-episode outcome dicts, and the mp4 of a
filmed episode as bytes, which the driver writes into its run folder. User task files reach the
workers as their text, loaded in each actor. The driver appends each finished episode to the journal
(`episodes.jsonl`, embodia.eval.journal), so `--resume RUN_DIR` runs only the missing (task, seed)
pairs. An actor that dies mid-episode (its process killed, its node lost) is replaced and the episode is
planned again on whichever actor is free next; the journal keeps each (task, seed) once.

Addresses, the actor pool and its retries: embodia.cluster. Ray is an optional extra:
`pip install 'embodia[ray]'`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from embodia.cluster import CPUS_PER_WORKER, ActorPool, connect, import_ray, pack_folder
from embodia.eval.config import EvalConfig
from embodia.eval.journal import Journal, check_resumable
from embodia.eval.protocol import ChunkPolicy
from embodia.eval.rollout import EpisodeResult, EpisodeSpec, check_policy, plan_episodes, run_rollouts
from embodia.runs import write_manifest


@dataclass(frozen=True)
class WorkerSpec:
    """What every actor needs to build its env and policy (sent once, at its creation)."""

    policy_factory: Callable[..., ChunkPolicy]  # () -> policy; (folder) -> policy when a folder is shipped
    suite: str
    split: str
    embodiment: str
    image_size: int
    max_steps: int | None
    execution: Any  # ExecutionConfig
    task_sources: tuple[tuple[str, str], ...] = ()  # (file name, text) of each user task file
    threads: int = CPUS_PER_WORKER
    shipped: Any = None  # an ObjectRef of `cluster.pack_folder(checkpoint)`, or None


class EpisodeWorker:
    """The actor's class: one env and one policy; `run` plays one planned episode."""

    def __init__(self, spec: WorkerSpec):
        import torch

        from embodia.eval.suites import resolve_suite
        from embodia.sim.task_files import load_task_sources
        from embodia.sim.vector import VectorRunner

        torch.set_num_threads(spec.threads)
        self._tmp = tempfile.mkdtemp(prefix="embodia-ray-")
        load_task_sources(spec.task_sources, Path(self._tmp))
        self.spec = spec
        self.suite = resolve_suite(spec.suite, spec.split)
        if spec.shipped is not None:  # this actor's own copy of the driver's checkpoint folder
            import ray

            from embodia.cluster import unpack_folder

            folder = unpack_folder(ray.get(spec.shipped), Path(self._tmp) / "checkpoint")
            self.policy = spec.policy_factory(folder)
        else:
            self.policy = spec.policy_factory()
        self.policy.embodiment = spec.embodiment
        self.policy.reset()
        factory = self.suite.env_factory(spec.embodiment, spec.image_size, spec.max_steps)
        self.runner = VectorRunner([factory], in_process=True)

    def pid(self) -> int:
        return os.getpid()

    def close(self) -> None:
        """Before the pool ends this actor: its environment closed and its scratch folder (task files,
        its copy of the checkpoint) removed."""
        self.runner.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def run(self, episode: EpisodeSpec) -> tuple[dict[str, Any], bytes | None]:
        """Play `episode`; its result as a dict (video path: the mp4's file name) and the mp4's bytes."""
        with tempfile.TemporaryDirectory(dir=self._tmp) as videos:
            (result,) = run_rollouts(self.policy, self.runner, [episode], execution=self.spec.execution,
                                     camera_key=self.suite.camera_key, fps=self.suite.fps,
                                     video_dir=Path(videos))  # fmt: skip
            video = result.video.read_bytes() if result.video is not None else None
            row = result.to_dict()
            row["video"] = result.video.name if result.video is not None else None
        return row, video


def _episode(row: dict[str, Any]) -> EpisodeResult:
    from embodia.eval.journal import episode_from_dict

    return episode_from_dict({**row, "video": None}, Path("."))


def evaluate_on_ray(
    policy: ChunkPolicy,
    policy_factory: Callable[..., ChunkPolicy],
    cfg: EvalConfig,
    *,
    show_progress: bool = True,
    ship: str | Path | None = None,
    on_pool: Callable[[ActorPool], None] | None = None,
):
    """`evaluate(policy, cfg=cfg)` (embodia.eval.run) with the episodes run by `cfg.num_envs` Ray actors
    on the cluster `cfg.ray` names, each building its own replica with `policy_factory`; `policy` (the
    driver's) names the checkpoint, chunking and embodiment in results.json. `cfg.resume`: the folder of
    an earlier Ray evaluation whose journalled episodes are kept and not run again. `ship`: a folder
    (the checkpoint) put once in Ray's object store; every actor writes out its own copy and calls
    `policy_factory(its folder)` (else `policy_factory()`). `on_pool` (tests) sees the actor pool once
    it is started."""
    from embodia.eval.run import (
        build_report,
        eval_result,
        eval_run_dir,
        eval_settings,
        results_json,
        suite_embodiment,
    )
    from embodia.eval.suites import resolve_suite
    from embodia.runs import atomic_write_text
    from embodia.sim.task_files import load_task_file, task_sources

    ray = import_ray()
    address, resume = cfg.ray or "local", cfg.resume
    k = check_policy(policy, cfg.execution)
    for path in cfg.task_files:  # before the suite is resolved: it may name their families
        load_task_file(path)
    spec = resolve_suite(cfg.suite, cfg.split)
    embodiment = suite_embodiment(policy, spec)
    spec.env_factory(embodiment, cfg.image_size, cfg.max_steps)  # a mismatched embodiment fails here
    plan = plan_episodes(spec, cfg.episodes, cfg.seed, cfg.videos_per_task)
    out = eval_run_dir(cfg)
    settings = eval_settings(policy, cfg, spec, "eval", k, embodiment, False) | {"ray": address}
    if resume is not None:
        check_resumable(out, settings)
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out, "eval", settings | {"out": str(out)}, seeds=sorted({e.seed for e in plan}),
                   resumed=resume is not None)  # fmt: skip
    journal = Journal(out)
    todo = journal.remaining(plan)
    t0 = time.perf_counter()
    if todo:
        files = pack_folder(ship) if ship is not None else None  # too large: an error before Ray starts
        n = min(cfg.num_envs, len(todo))
        size = sum(map(len, files.values())) if files else 0
        connected = connect(address, num_cpus=n * CPUS_PER_WORKER, extra_bytes=2 * size)
        try:
            worker = WorkerSpec(policy_factory, cfg.suite, cfg.split, embodiment, cfg.image_size, cfg.max_steps,
                                cfg.execution, task_sources(), shipped=ray.put(files) if files else None)  # fmt: skip
            pool = ActorPool(ray, EpisodeWorker, (worker,), n, num_cpus=worker.threads)
            try:
                if on_pool is not None:
                    on_pool(pool)
                _run_pool(pool, todo, journal, out, spec.spec, show_progress)
            finally:
                pool.close()
        finally:
            if connected:
                ray.shutdown()
    seconds = time.perf_counter() - t0
    result = eval_result(out, spec, journal.episodes(), seconds, str(policy.checkpoint_hash))
    atomic_write_text(result.results_path, json.dumps(results_json(result, settings), indent=2) + "\n")
    build_report(result, settings).save(result.report_path)
    return result


def _run_pool(pool: ActorPool, todo: list[EpisodeSpec], journal: Journal, out: Path, name: str,
              show_progress: bool) -> None:  # fmt: skip
    """Run `todo` on `pool`, journalling each episode (and writing its video) as it comes back."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("eval (ray) {task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), disable=not show_progress)  # fmt: skip
    bar = progress.add_task(name, total=len(todo))

    def on_result(_: int, result: tuple[dict[str, Any], bytes | None]) -> None:
        row, video = result
        ep = _episode(row)
        if video is not None:
            path = out / "videos" / _video_name(ep)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(video)
            os.replace(tmp, path)
            ep = replace(ep, video=path)
        journal.append(ep)
        progress.update(bar, advance=1)

    with progress:
        pool.run(todo, on_result, name=lambda ep: f"episode {ep.task.name} seed {ep.seed}")


def _video_name(ep: EpisodeResult) -> str:
    import re

    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', ep.task).strip('-')}_seed{ep.seed}.mp4"
