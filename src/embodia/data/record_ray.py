"""`embodia record ... --ray [ADDRESS]`: the scripted experts' episodes played by Ray actors.

Each actor (one CPU) builds the worlds of the recording from its `RecordConfig`, loads the user's task
files from their text (a worker of a real cluster does not share the driver's disk), and plays one
planned (seed, reset options) per call with the local path's own loop (`recording.run_episodes` on one
in-process env) and the same perturbations, seeded by the episode's seed: an episode's frames equal a
local recording's. Workers stage each finished episode (its frames, as numpy arrays) in Ray's object
store; the driver's one `Committer` writes them in seed order with the writer's atomic commit, so the
dataset equals a local recording of the same seeds in every non-video column, and a crash of the driver
loses only staged episodes, which `--resume` records again (`next_seed` is the first uncommitted seed).
The plan is fixed seeds, so nothing is overshot. An actor that dies mid-episode is replaced and its
episode played again from its start by the next free actor (embodia.cluster.ActorPool): kept once.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from embodia.cluster import CPUS_PER_WORKER, ActorPool, connect, import_ray

if TYPE_CHECKING:
    from embodia.data.recording import RecordConfig

Job = tuple[int, int, "dict | None"]  # (world index, seed, reset options)


class RecordWorker:
    """The actor's class: the recording's worlds, one env at a time; `run` plays one expert episode."""

    def __init__(self, cfg: RecordConfig, task_sources: tuple[tuple[str, str], ...]):
        from embodia.data.recording import perturbations, record_worlds
        from embodia.sim.task_files import load_task_sources

        self._tmp = tempfile.mkdtemp(prefix="embodia-ray-record-")
        load_task_sources(task_sources, Path(self._tmp))
        self.cfg = cfg
        self.spec, self.worlds = record_worlds(cfg)
        self.noise = perturbations(cfg.perturb, self.spec)
        self.world: int | None = None
        self.runner = None

    def run(self, job: Job) -> dict:
        """The episode of `job`: {"seed", "task", "success", "frames"} as the local path yields it."""
        from embodia.data.recording import run_episodes
        from embodia.sim.vector import VectorRunner

        world, seed, options = job
        if world != self.world:  # Meta-World's worlds come one after the other: one env at a time
            if self.runner is not None:
                self.runner.close()
            self.runner = VectorRunner([self.worlds[world][0]], in_process=True)
            self.world = world
        (episode,) = run_episodes(self.runner, [(seed, options)], self.cfg.keep_failures, self.noise)
        return episode

    def close(self) -> None:
        """Before the pool ends this actor: its environment closed and its scratch folder removed."""
        if self.runner is not None:
            self.runner.close()
        shutil.rmtree(self._tmp, ignore_errors=True)


def record_on_ray(
    cfg: RecordConfig,
    batches: list[tuple[int, list[tuple[int, dict | None]]]],
    on_episode: Callable[[dict], None],
    on_pool: Callable[[ActorPool], None] | None = None,
) -> None:
    """Play every (seed, options) of `batches` (record._batches) on `cfg.num_envs` actors of the cluster
    `cfg.ray` names; `on_episode` (the committer) gets each episode once, in the order they finish.
    `on_pool` (tests) sees the actor pool once it is started."""
    from embodia.sim.task_files import task_sources

    ray = import_ray()
    jobs: list[Job] = [(w, seed, options) for w, batch in batches for seed, options in batch]
    n = min(cfg.num_envs, len(jobs))
    connected = connect(cfg.ray or "local", num_cpus=n * CPUS_PER_WORKER)
    try:
        pool = ActorPool(ray, RecordWorker, (cfg, task_sources()), n)
        try:
            if on_pool is not None:
                on_pool(pool)
            pool.run(jobs, lambda _, episode: on_episode(episode), name=lambda job: f"episode seed {job[1]}")
        finally:
            pool.close()
    finally:
        if connected:
            ray.shutdown()
