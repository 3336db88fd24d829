"""Run N gymnasium environments side by side, each in its own subprocess (or all in-process).

Dataset recording and closed-loop evaluation drive N worlds at once, and every world lives its own
life: its own seed *and* reset options (e.g. ``{"task": "pick up the red block"}``) per episode,
episodes of different lengths, no auto-reset (the caller decides when an env resets and which envs
are stepped at all), and method calls such as ``expert_action()`` that must run next to the
simulator because scripted experts read privileged state that never leaves the subprocess.

Why not ``gymnasium.vector.AsyncVectorEnv``? Checked against gymnasium 1.4 with
``autoreset_mode=AutoresetMode.DISABLED``, ``context="spawn"`` and a dict observation with a
``spaces.Text`` ``task``:

* **Per-env reset options are impossible.** ``reset(options=...)`` takes one dict and sends that
  same dict to every env; passing a list of dicts hands the whole list to each env's ``reset``
  (which then crashes). Per-env seeds do work.
* **Subsets can be reset but not stepped.** Partial reset exists (``options["reset_mask"]``), but
  it still uses the one shared options dict, and ``step`` needs an action for every env: stepping
  only the envs whose episode is still running is not possible, so finished envs would be stepped
  past termination.
* **``call`` cannot take per-env arguments.** ``call(name, *args)`` broadcasts the same args; a
  list of per-env args is passed whole to every env.
* **Text observations are corrupted in the default mode.** With ``shared_memory=True`` (the
  default) the ``task`` string comes back as ``"0000…"``; ``shared_memory=False`` works but still
  stacks observations into a batch (``task`` becomes a tuple), which we would only unstack again.
* **One env error breaks the whole vector env.** After a worker raises, its pipe is dropped and
  every later call fails with ``AttributeError: 'NoneType' object has no attribute 'send'``.

So this is a small runner on ``multiprocessing`` with the ``"spawn"`` start method: a forked child
inherits the parent's MuJoCo/EGL (and any CUDA) state, which does not survive a fork.

API (results are per env and in the order of ``indices``, which defaults to all envs; nothing is
stacked):

* ``reset(seeds, options=None, indices=None) -> [(obs, info), ...]``
* ``step(actions, indices=None) -> [(obs, reward, terminated, truncated, info), ...]``
* ``call(method, args=None, indices=None, kwargs=None) -> [result, ...]`` with per-env args
* ``get_attr(name, indices=None) -> [value, ...]``
* ``close()``: idempotent, also via the context manager and a ``__del__`` safety net.

Commands go to all selected workers before any result is read, so the envs work in parallel.

Errors, and what the runner is like afterwards:

* An exception raised by an env (or its ``reset``/``step``/method) is caught in the worker, and
  every other selected env still finishes the command. The parent then raises
  :class:`EnvWorkerError` (a ``RuntimeError``), or :class:`EnvWorkerValueError` (also a
  ``ValueError``) when the original was a ``ValueError``. The message names the env index and
  includes the worker's traceback, and ``partial_results`` holds what the other envs returned.
  **The runner stays usable.** The failed env is left as the exception left it, so reset it
  before stepping it again.
* If a worker process dies (killed, segfault in native code) it raises :class:`EnvWorkerDiedError`.
  If a command takes longer than ``timeout_s`` it raises :class:`EnvWorkerTimeoutError`. A
  ``KeyboardInterrupt`` while waiting is re-raised as it is. In all three cases **the runner is
  closed**: the pipe protocol can no longer be trusted and the env's state is gone, so the caller
  builds a new runner.

``in_process=True`` builds and runs the envs in this process, one after the other, with the same
error semantics. Use it for debugging (breakpoints, profilers) and for ``n=1`` without subprocess
overhead. In this mode ``timeout_s`` is ignored and results are the env's own objects, not copies.

Data crosses the pipes with pickle. That is only ever between this process and the workers it
spawned, never data from disk or the network.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import operator
import os
import signal
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from multiprocessing.reduction import ForkingPickler
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = [
    "EnvWorkerDiedError",
    "EnvWorkerError",
    "EnvWorkerTimeoutError",
    "EnvWorkerValueError",
    "VectorRunner",
]

# Wire protocol. Parent -> worker: (command, payload). Worker -> parent: (status, payload).
_RESET, _STEP, _CALL, _GET_ATTR, _CLOSE = "reset", "step", "call", "get_attr", "close"
_OK, _ERR, _CLOSED = "ok", "err", "closed"
# These have dedicated methods. Going through `call` would bypass the runner's bookkeeping, and
# after `close` the worker would be left without an env.
_RESERVED_METHODS = frozenset({"reset", "step", "close"})
# How long close() waits for workers to close their envs and exit before terminating them.
_CLOSE_GRACE_S = 5.0


class EnvWorkerError(RuntimeError):
    """An env raised (or its worker failed) while running a command; carries the env index."""

    def __init__(
        self,
        message: str,
        *,
        index: int,
        remote_type: str = "",
        remote_traceback: str = "",
        partial_results: dict[int, Any] | None = None,
    ):
        super().__init__(message)
        self.index = index
        self.remote_type = remote_type
        self.remote_traceback = remote_traceback
        # Results of the envs that did succeed in the same command. Their state has already moved on,
        # so a caller that carries on needs these to stay consistent.
        self.partial_results: dict[int, Any] = partial_results or {}


class EnvWorkerValueError(EnvWorkerError, ValueError):
    """The env raised a ValueError (typically bad input); catchable as ValueError too."""


class EnvWorkerDiedError(EnvWorkerError):
    """A worker process exited unexpectedly; the runner has been closed."""


class EnvWorkerTimeoutError(EnvWorkerError):
    """A worker did not answer within ``timeout_s``; the runner has been closed."""


def _error_payload(exc: BaseException) -> dict[str, Any]:
    # Send plain text, not the exception object: arbitrary exceptions may not pickle, and the parent
    # must be able to report the error even if the class cannot be imported there.
    return {
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
        "value_error": isinstance(exc, ValueError),
    }


def _execute(env: gym.Env, command: str, payload: Any) -> Any:
    """Run one command on one env. Shared by workers and in-process mode so both behave the same."""
    if command == _RESET:
        seed, options = payload
        obs, info = env.reset(seed=seed, options=options)
        return obs, info
    if command == _STEP:
        obs, reward, terminated, truncated, info = env.step(payload)
        # Plain Python scalars, so results look the same whatever numpy types an env returns.
        return obs, float(reward), bool(terminated), bool(truncated), info
    if command == _CALL:
        name, args, kwargs = payload
        # get_wrapper_attr also looks through gymnasium wrappers (TimeLimit, ...) to the base env.
        method = env.get_wrapper_attr(name)
        if not callable(method):
            raise TypeError(f"{name!r} is not callable on {type(env.unwrapped).__name__}; use get_attr")
        return method(*args, **kwargs)
    if command == _GET_ATTR:
        return env.get_wrapper_attr(payload)
    raise ValueError(f"unknown command {command!r}")


def _worker_main(
    index: int, env_fn: Callable[[], gym.Env], conn: Connection, task_files: tuple[str, ...] = ()
) -> None:
    """Worker process loop: load the parent's task files, build the env, then serve commands until close
    or parent exit."""
    # Ctrl-C reaches the whole process group. Only the parent should react to it; it then closes the
    # workers in an orderly way. A worker interrupted mid-command would just look like a crash.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    env: gym.Env | None = None
    try:
        try:
            from embodia.sim.task_files import load_task_file

            for path in task_files:  # user task families, registered before the env is built
                load_task_file(path)
            env = env_fn()
        except Exception as exc:
            conn.send((_ERR, _error_payload(exc)))
            return
        conn.send((_OK, None))
        while True:
            try:
                message = conn.recv_bytes()
            except (EOFError, OSError):
                return  # parent is gone; the finally below still closes the env
            try:
                command, payload = ForkingPickler.loads(message)
            except Exception as exc:
                # E.g. an action whose class this interpreter cannot import. The message has been read
                # whole, so the pipe stays in sync: report the error and keep serving.
                conn.send((_ERR, _error_payload(exc)))
                continue
            if command == _CLOSE:
                close_error, env = _close_env(env), None
                conn.send((_CLOSED, close_error))
                return
            try:
                result = _execute(env, command, payload)
            except Exception as exc:
                conn.send((_ERR, _error_payload(exc)))
                continue
            try:
                conn.send((_OK, result))
            except Exception as exc:
                # Pickling happens before anything is written, so the pipe is still in sync here
                # (e.g. an info dict holding an unpicklable object).
                conn.send((_ERR, _error_payload(exc)))
    finally:
        if env is not None:
            _close_env(env)
        conn.close()


def _close_env(env: gym.Env) -> dict[str, Any] | None:
    try:
        env.close()
    except Exception as exc:
        return _error_payload(exc)
    return None


def _describe_exit(process: BaseProcess) -> str:
    code = process.exitcode
    if code is None:
        return "is unresponsive"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class VectorRunner:
    """N independent envs stepped in parallel; see the module docstring for the full contract.

    Args:
        env_fns: one zero-argument factory per env. In subprocess mode they must be picklable
            (a module-level function or a ``functools.partial`` of a class, not a lambda), and
            importable by module path in a fresh interpreter (spawn re-imports them).
        in_process: build and run all envs in this process, one after the other.
        timeout_s: how long to wait for all selected envs to answer one command. ``None`` waits
            without a limit, but a dead worker is still detected at once.
        start_timeout_s: how long to wait for the workers to start and build their envs. It is kept
            apart from `timeout_s` because spawning re-imports numpy/gymnasium/MuJoCo in every worker,
            which on a loaded CI machine takes far longer than a step should.
    """

    def __init__(
        self,
        env_fns: Sequence[Callable[[], gym.Env]],
        *,
        in_process: bool = False,
        timeout_s: float | None = None,
        start_timeout_s: float | None = 300.0,
    ):
        if len(env_fns) == 0:
            raise ValueError("VectorRunner needs at least one env factory")
        self.num_envs: int = len(env_fns)
        self.in_process = in_process
        self.timeout_s = timeout_s
        self._closed = False
        self._envs: list[gym.Env] = []
        self._processes: list[BaseProcess] = []
        self._conns: list[Connection] = []
        if in_process:
            self._start_in_process(env_fns)
        else:
            self._start_workers(env_fns, start_timeout_s)

    # ------------------------------------------------------------------ public API

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pids(self) -> list[int]:
        """Worker process ids, one per env (this process's id for every env when in-process)."""
        if self.in_process:
            return [os.getpid()] * self.num_envs
        return [int(p.pid) for p in self._processes if p.pid is not None]

    def reset(
        self,
        seeds: Sequence[int | None],
        options: Sequence[dict[str, Any] | None] | None = None,
        indices: Sequence[int] | None = None,
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Reset the envs at `indices` (default all), each with its own seed and options."""
        idx = self._select(indices)
        seeds = self._per_env("seeds", seeds, len(idx))
        opts = [None] * len(idx) if options is None else self._per_env("options", options, len(idx))
        return self._run(_RESET, list(zip(seeds, opts, strict=True)), idx)

    def step(
        self, actions: Sequence[np.ndarray], indices: Sequence[int] | None = None
    ) -> list[tuple[dict[str, Any], float, bool, bool, dict[str, Any]]]:
        """Step the envs at `indices` (default all), one action each; the other envs are left alone."""
        idx = self._select(indices)
        return self._run(_STEP, self._per_env("actions", actions, len(idx)), idx)

    def call(
        self,
        method: str,
        args: Sequence[tuple[Any, ...]] | None = None,
        indices: Sequence[int] | None = None,
        kwargs: Sequence[dict[str, Any]] | None = None,
    ) -> list[Any]:
        """Call `method` on each selected env inside its worker, with that env's own args/kwargs."""
        if method in _RESERVED_METHODS:
            raise ValueError(f"use VectorRunner.{method}() instead of call({method!r})")
        idx = self._select(indices)
        per_args = [()] * len(idx) if args is None else self._per_env("args", args, len(idx))
        per_kwargs = [{}] * len(idx) if kwargs is None else self._per_env("kwargs", kwargs, len(idx))
        payloads = [(method, tuple(a), dict(k)) for a, k in zip(per_args, per_kwargs, strict=True)]
        return self._run(_CALL, payloads, idx)

    def get_attr(self, name: str, indices: Sequence[int] | None = None) -> list[Any]:
        """Read attribute `name` from each selected env (looking through gymnasium wrappers)."""
        idx = self._select(indices)
        return self._run(_GET_ATTR, [name] * len(idx), idx)

    def close(self, timeout_s: float = _CLOSE_GRACE_S) -> None:
        """Close every env and stop the workers. Safe to call more than once.

        Workers get `timeout_s` in total to run ``env.close()`` and exit. Any still alive after that
        are terminated (then killed), so close never hangs on a stuck env.
        """
        if self._closed:
            return
        self._closed = True
        close_errors: list[str] = []
        if self.in_process:
            for i, env in enumerate(self._envs):
                err = _close_env(env)
                if err is not None:
                    close_errors.append(f"env {i}: {err['type']}: {err['message']}")
            self._envs = []
        else:
            close_errors = self._stop_workers(timeout_s)
        if close_errors:
            # Warn rather than raise: close runs in finally blocks and __del__, where a raise would
            # hide the error that got us there, and the processes are stopped either way.
            warnings.warn("env.close() failed: " + "; ".join(close_errors), RuntimeWarning, stacklevel=2)

    def __enter__(self) -> VectorRunner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Safety net only. Workers are daemonic, so they also die with this process, but a runner
        # dropped early would otherwise hold N processes (and their GL contexts) until then.
        if getattr(self, "_closed", True):
            return
        # Interpreter shutdown may already have torn down modules that close() uses.
        with contextlib.suppress(Exception):
            self.close(timeout_s=1.0)

    # ------------------------------------------------------------------ startup / shutdown

    def _start_in_process(self, env_fns: Sequence[Callable[[], gym.Env]]) -> None:
        for i, fn in enumerate(env_fns):
            try:
                self._envs.append(fn())
            except Exception as exc:
                self.close()
                raise self._remote_error(i, _error_payload(exc), "building the env", {}) from exc

    def _start_workers(self, env_fns: Sequence[Callable[[], gym.Env]], start_timeout_s: float | None) -> None:
        from embodia.sim.task_files import loaded_task_files

        ctx = mp.get_context("spawn")
        task_files = tuple(f["resolved"] for f in loaded_task_files())
        try:
            for i, fn in enumerate(env_fns):
                parent_conn, child_conn = ctx.Pipe(duplex=True)
                # daemon: multiprocessing terminates daemonic children when this interpreter exits, so
                # a runner nobody closed cannot keep it alive. If this process is killed outright,
                # the workers see EOF on their pipe and exit on their own.
                proc = ctx.Process(
                    target=_worker_main,
                    args=(i, fn, child_conn, task_files),
                    name=f"embodia-env-{i}",
                    daemon=True,
                )
                try:
                    proc.start()  # pickles `fn`: a lambda fails here, before any child is launched
                except BaseException:
                    parent_conn.close()
                    raise
                finally:
                    # Drop our copy of the child's end, so a dead worker reads as EOF on our end.
                    child_conn.close()
                self._processes.append(proc)
                self._conns.append(parent_conn)
            # Wait for every env to be built, in parallel: a bad factory fails here, not on first use.
            replies = self._gather(list(range(self.num_envs)), "building the env", start_timeout_s)
        except BaseException:
            self.close(timeout_s=1.0)
            raise
        errors = {i: payload for i, (status, payload) in replies.items() if status == _ERR}
        if errors:
            self.close(timeout_s=1.0)
            first = min(errors)
            raise self._remote_error(first, errors[first], "building the env", {}, len(errors) - 1)

    def _stop_workers(self, timeout_s: float) -> list[str]:
        close_errors: list[str] = []
        for conn in self._conns:
            with contextlib.suppress(OSError):  # worker already gone
                conn.send((_CLOSE, None))
        deadline = time.monotonic() + timeout_s
        for i, (proc, conn) in enumerate(zip(self._processes, self._conns, strict=True)):
            # Read until the close ack: a worker may still be pushing a reply to a command whose wait
            # was interrupted, and would block on a full pipe if nobody read it.
            while True:
                remaining = max(0.0, deadline - time.monotonic())
                try:
                    if not conn.poll(remaining):
                        break
                    status, payload = conn.recv()
                except (EOFError, OSError):
                    break
                if status == _CLOSED:
                    if payload is not None:
                        close_errors.append(f"env {i}: {payload['type']}: {payload['message']}")
                    break
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in self._processes:
            if proc.is_alive():
                proc.terminate()
                proc.join(1.0)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in self._conns:
            conn.close()
        return close_errors

    # ------------------------------------------------------------------ command plumbing

    def _select(self, indices: Sequence[int] | None) -> list[int]:
        if self._closed:
            raise RuntimeError("VectorRunner is closed")
        if indices is None:
            return list(range(self.num_envs))
        idx = [operator.index(i) for i in indices]  # accepts numpy ints, rejects floats
        bad = [i for i in idx if not 0 <= i < self.num_envs]
        if bad:
            raise ValueError(f"env indices {bad} out of range for {self.num_envs} envs")
        if len(set(idx)) != len(idx):
            raise ValueError(f"duplicate env indices in {idx}")
        return idx

    @staticmethod
    def _per_env(what: str, values: Sequence[Any], n: int) -> list[Any]:
        values = list(values)
        if len(values) != n:
            raise ValueError(f"expected one entry of {what} per selected env ({n}), got {len(values)}")
        return values

    def _run(self, command: str, payloads: list[Any], idx: list[int]) -> list[Any]:
        if not idx:
            return []
        if self.in_process:
            replies: dict[int, tuple[str, Any]] = {}
            originals: dict[int, BaseException] = {}
            for i, payload in zip(idx, payloads, strict=True):
                try:
                    replies[i] = (_OK, _execute(self._envs[i], command, payload))
                except Exception as exc:
                    replies[i] = (_ERR, _error_payload(exc))
                    originals[i] = exc
            return self._unpack(command, idx, replies, originals)
        # Pickle every message before sending any. An unpicklable action then fails here, with no
        # worker having started, instead of leaving some workers with a command nobody waits for.
        messages = [ForkingPickler.dumps((command, payload)) for payload in payloads]
        try:
            for i, message in zip(idx, messages, strict=True):
                try:
                    self._conns[i].send_bytes(message)
                except OSError:
                    raise self._died(i, command) from None
            replies = self._gather(idx, command, self.timeout_s)
        except BaseException:
            # Dead worker, timeout or Ctrl-C: replies may still be in flight, so the protocol is out
            # of sync. Close everything rather than hand back a runner that answers the wrong command.
            self.close(timeout_s=1.0)
            raise
        return self._unpack(command, idx, replies, {})

    def _gather(self, idx: list[int], command: str, timeout_s: float | None) -> dict[int, tuple[str, Any]]:
        """Collect one reply from each worker in `idx`, in whatever order they finish."""
        pending: dict[Connection, int] = {self._conns[i]: i for i in idx}
        replies: dict[int, tuple[str, Any]] = {}
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while pending:
            # Waiting on the process sentinels too means a dead worker wakes us at once, even with no
            # timeout. No need to poll is_alive() in a loop.
            sentinels = {self._processes[i].sentinel: i for i in pending.values()}
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = wait([*pending, *sentinels], timeout=remaining)
            if not ready:
                raise self._timed_out(sorted(pending.values()), command, timeout_s)
            for obj in ready:
                if isinstance(obj, Connection) and obj in pending:
                    i = pending.pop(obj)
                    try:
                        replies[i] = obj.recv()
                    except (EOFError, OSError):
                        raise self._died(i, command) from None
            for obj in ready:
                if isinstance(obj, int) and sentinels[obj] in pending.values():
                    i = sentinels[obj]
                    # A worker may exit right after sending a reply. Only call it dead if nothing
                    # is left to read.
                    if not self._conns[i].poll():
                        raise self._died(i, command)
        return replies

    def _unpack(
        self,
        command: str,
        idx: list[int],
        replies: dict[int, tuple[str, Any]],
        originals: dict[int, BaseException],
    ) -> list[Any]:
        errors = {i: payload for i, (status, payload) in replies.items() if status == _ERR}
        if not errors:
            return [replies[i][1] for i in idx]
        ok = {i: payload for i, (status, payload) in replies.items() if status == _OK}
        first = next(i for i in idx if i in errors)
        exc = self._remote_error(first, errors[first], command, ok, len(errors) - 1)
        raise exc from originals.get(first)

    def _remote_error(
        self,
        index: int,
        payload: dict[str, Any],
        command: str,
        partial_results: dict[int, Any],
        n_other_errors: int = 0,
    ) -> EnvWorkerError:
        others = f" ({n_other_errors} other env(s) also failed)" if n_other_errors else ""
        message = (
            f"env {index} raised {payload['type']} during {command!r}{others}: {payload['message']}\n"
            f"--- traceback from env {index} ---\n{payload['traceback']}"
        )
        cls = EnvWorkerValueError if payload["value_error"] else EnvWorkerError
        return cls(
            message,
            index=index,
            remote_type=payload["type"],
            remote_traceback=payload["traceback"],
            partial_results=partial_results,
        )

    def _died(self, index: int, command: str) -> EnvWorkerDiedError:
        proc = self._processes[index]
        proc.join(1.0)  # reap it, so the exit code tells how it died
        return EnvWorkerDiedError(
            f"worker for env {index} (pid {proc.pid}) {_describe_exit(proc)} while running {command!r}; "
            "the VectorRunner has been closed",
            index=index,
        )

    def _timed_out(self, indices: list[int], command: str, timeout_s: float | None) -> EnvWorkerTimeoutError:
        return EnvWorkerTimeoutError(
            f"env(s) {indices} did not answer {command!r} within {timeout_s} s; "
            "the VectorRunner has been closed",
            index=indices[0],
        )
