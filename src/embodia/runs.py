"""Where every command puts its outputs: ./embodia_runs/<command>/<time>-<name>/ plus a manifest.

The manifest records what is needed to reproduce or audit a run: the command's inputs and seeds, the
package versions, the git commit of the working tree (when there is one) and the timestamps.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

RUNS_ROOT = Path("embodia_runs")
_VERSIONED = ("embodia", "numpy", "mujoco", "mink", "gymnasium", "metaworld", "torch", "av")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_sha(cwd: Path | None = None) -> str | None:
    """The commit of the checkout embodia runs from (suffixed `-dirty` with local changes), or None."""
    here = cwd or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha


def _process_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import (os.umask can only be read by setting it, which is not thread-safe later).
_UMASK = _process_umask()


def publish_mode(path: str | Path) -> None:
    """Give a file the permissions an ordinary `open()` would have (0666 minus the umask).

    `tempfile.mkstemp` (and safetensors) create files as 0600, so a dataset or checkpoint written
    through a temporary file would be unreadable to the other users of a shared machine or a
    `docker run --user` container."""
    os.chmod(path, 0o666 & ~_UMASK)


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a crash never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        publish_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


MAX_NAME = 80  # characters of a run folder's name after the time stamp


def new_run_dir(command: str, name: str = "run", root: Path | None = None) -> Path:
    """Create ./embodia_runs/<command>/<UTC time>-<name>/ (never reusing an existing folder)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"
    if len(safe) > MAX_NAME:  # e.g. a long task list: file systems refuse names over 255 bytes
        digest = hashlib.sha256(safe.encode()).hexdigest()[:8]
        safe = f"{safe[: MAX_NAME - 9].rstrip('-')}-{digest}"
    base = (root or RUNS_ROOT) / command
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = base / f"{stamp}-{safe}"
    k = 1
    while path.exists():
        k += 1
        path = base / f"{stamp}-{safe}-{k}"
    path.mkdir(parents=True)
    return path


_TASK_FILES: list[dict] = []  # the task files this process loaded (commands note them: note_task_files)


def note_task_files(files: list[dict]) -> None:
    """The task files ({path, sha256, families}) every manifest written from now on records."""
    _TASK_FILES[:] = [dict(f) for f in files]


def write_manifest(
    run_dir: Path, command: str, inputs: dict[str, Any], seeds: Any = None, **extra: Any
) -> Path:
    manifest = {
        "command": command,
        "argv": sys.argv,
        "inputs": inputs,
        "seeds": seeds,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_sha": git_sha(),
        "versions": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **({"task_files": list(_TASK_FILES)} if _TASK_FILES else {}),
        **extra,
    }
    path = run_dir / "manifest.json"
    atomic_write_text(path, json.dumps(manifest, indent=2, default=str) + "\n")
    return path


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Treat SIGTERM (`kill`, `timeout`, a scheduler's stop) like Ctrl-C for the duration: long jobs
    then leave through their `finally` blocks and commit what is complete instead of dying mid-way.
    (A job started in the background by a non-interactive shell ignores SIGINT, so `kill -TERM` is the
    only polite way to stop it.)"""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
