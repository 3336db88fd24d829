"""Ray, for what runs episodes on a cluster (`embodia eval --ray`, `embodia record --ray`).

`connect` joins or starts the cluster an address names: "local" starts a private cluster on this
machine (`address="local"`: a bare `ray.init()` would join whatever cluster the machine runs); "auto"
joins the running cluster; anything else is a cluster address (`ray://host:10001` or `host:6379`). An
already initialised Ray (tests) is used as is.

`pack_folder` reads a folder (a checkpoint) into one object for Ray's object store and `unpack_folder`
writes it out in an actor: workers of a real cluster load the driver's checkpoint without a shared disk
(Ray moves the object to each node that needs it, once). `runtime_env()` passes on to the actors the
variables that say where this machine's LeRobot environment is and whether the Hub is offline.

`ActorPool` feeds a list of jobs to `n` actors of one class, one job per actor at a time, and hands each
result to a callback exactly once: an actor that dies mid-job (its process killed, its node lost) is
replaced, placed by Ray wherever a CPU is free, and its job goes first to the next free actor.

Ray is an optional extra: `pip install 'embodia[ray]'`; nothing here imports it before it is needed.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

CPUS_PER_WORKER = 1  # each actor: one env (and one policy replica), torch threads = its CPUs
OBJECT_STORE_BYTES = 512 * 1024**2  # a private cluster's object store: results, videos, staged episodes
RAY_VERSION = "2.60.0"  # what the extra pins (pyproject.toml)
MAX_ATTEMPTS = 3  # a job whose actor died this often fails the run
CLOSE_TIMEOUT_S = 30  # how long the pool waits for its actors to clean up before it ends them
SHIP_LIMIT = 2 * 1024**3  # the largest folder shipped through the object store (a checkpoint)
# Passed on to the actors: the LeRobot environment's location (the same path on every node) and offline mode.
PASSED_ON = ("EMBODIA_LEROBOT_ENV", "HF_HUB_OFFLINE")


class RayMissingError(ImportError, ValueError):
    """Ray is not installed: the message names the extra that brings it."""


def import_ray():
    try:
        import ray
    except ImportError:
        raise RayMissingError(
            f"--ray needs Ray, embodia's optional extra 'ray' (not installed): pip install ray=={RAY_VERSION}"
        ) from None
    return ray


def connect(address: str, num_cpus: int, extra_bytes: int = 0) -> bool:
    """Join or start the cluster `address` names (see the module docstring), unless Ray is up already;
    True if this call connected (the caller then shuts Ray down when done). A private cluster's object
    store holds `extra_bytes` (a shipped checkpoint) beyond OBJECT_STORE_BYTES."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address == "local":
        ray.init(address="local", num_cpus=num_cpus, object_store_memory=OBJECT_STORE_BYTES + extra_bytes,
                 include_dashboard=False, log_to_driver=False)  # fmt: skip
    else:
        ray.init(address=address, log_to_driver=False)
    return True


def runtime_env() -> dict:
    """The actors' runtime_env: the variables of PASSED_ON set here."""
    passed = {k: os.environ[k] for k in PASSED_ON if k in os.environ}
    return {"env_vars": passed} if passed else {}


def pack_folder(folder: str | Path) -> dict[str, bytes]:
    """Every file under `folder` by its relative path (what `unpack_folder` writes out elsewhere)."""
    folder = Path(folder)
    files = sorted(f for f in folder.rglob("*") if f.is_file())
    size = sum(f.stat().st_size for f in files)
    if size >= SHIP_LIMIT:
        raise ValueError(
            f"{folder} holds {size / 1024**2:.0f} MiB: embodia ships at most {SHIP_LIMIT // 1024**2} MiB to Ray "
            "workers. Push it to the Hub (embodia policy push) and give its id, which each worker "
            "downloads, or put it on storage that every node reads"
        )
    return {f.relative_to(folder).as_posix(): f.read_bytes() for f in files}


def unpack_folder(files: dict[str, bytes], dest: str | Path) -> Path:
    """Write `pack_folder`'s files under `dest` (refusing paths that leave it); returns `dest`."""
    dest = Path(dest).resolve()
    for name, data in files.items():
        path = (dest / name).resolve()
        if not path.is_relative_to(dest):
            raise ValueError(f"a shipped file leaves its folder: {name!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return dest


class ActorPool:
    """`n` actors of `cls(*args)` (in `runtime_env()`), each running one `cls.run(job)` at a time; a dead
    actor is replaced and its job goes back to the queue (at most MAX_ATTEMPTS tries per job)."""

    def __init__(self, ray, cls: type, args: tuple, n: int, num_cpus: int = CPUS_PER_WORKER):
        self.ray = ray
        self.cls = cls
        self.args = args
        self.remote_cls = ray.remote(num_cpus=num_cpus, max_restarts=0, max_task_retries=0,
                                     runtime_env=runtime_env())(cls)  # fmt: skip
        self.actors = [self._new_actor() for _ in range(n)]
        self.replaced = 0

    def _new_actor(self):
        return self.remote_cls.remote(*self.args)

    def run(
        self, jobs: Sequence[Any], on_result: Callable[[int, Any], None], name: Callable[[Any], str] = str
    ) -> None:
        """Run every job; `on_result(position in jobs, result)` gets each finished one exactly once, in
        the order they finish. `name(job)` says which job failed, in errors."""
        ray = self.ray
        pending = deque(enumerate(jobs))
        attempts: dict[int, int] = {}
        running: dict[Any, tuple[int, int, Any]] = {}  # future -> (actor slot, position, job)
        idle = list(range(len(self.actors)))
        while pending or running:
            while idle and pending:
                slot, (pos, job) = idle.pop(), pending.popleft()
                attempts[pos] = attempts.get(pos, 0) + 1
                running[self.actors[slot].run.remote(job)] = (slot, pos, job)
            (ready,), _ = ray.wait(list(running), num_returns=1)
            slot, pos, job = running.pop(ready)
            try:
                result = ray.get(ready)
            except ray.exceptions.RayActorError as exc:  # the actor (its process or node) died
                if getattr(exc, "actor_init_failed", False):  # its env or policy cannot be built there
                    raise RuntimeError(f"a Ray actor could not start: {exc}") from None
                if attempts[pos] >= MAX_ATTEMPTS:
                    raise RuntimeError(
                        f"{name(job)}: its actor died {MAX_ATTEMPTS} times; last: {exc}"
                    ) from exc
                self._replace(slot)
                pending.appendleft((pos, job))  # next to run, on the first actor free (others first)
                idle.insert(0, slot)
                continue
            except ray.exceptions.RayTaskError as exc:  # the job itself raised: as a local run would
                raise exc.as_instanceof_cause() from None
            idle.append(slot)
            on_result(pos, result)

    def _replace(self, slot: int) -> None:
        self.ray.kill(self.actors[slot], no_restart=True)
        self.replaced += 1
        self.actors[slot] = self._new_actor()

    def close(self) -> None:
        """Ask every actor to `close()` (where its class has one: its scratch folder removed, its
        environments closed), wait up to CLOSE_TIMEOUT_S, then end them. An actor that died (and was
        replaced) could not clean up after itself."""
        if callable(getattr(self.cls, "close", None)):
            closing = []
            for actor in self.actors:
                with contextlib.suppress(Exception):  # an actor already gone
                    closing.append(actor.close.remote())
            if closing:
                with contextlib.suppress(Exception):
                    self.ray.wait(closing, num_returns=len(closing), timeout=CLOSE_TIMEOUT_S)
        for actor in self.actors:
            self.ray.kill(actor, no_restart=True)
