"""Building and checking the LeRobot environment (`embodia lerobot setup`).

Why a separate environment: LeRobot 0.4.4 (the newest release for Python 3.11) pins torch < 2.11,
torchvision < 0.26, transformers < 5 and huggingface-hub < 0.36, while embodia runs on torch 2.13
(docs/architecture.md, "LeRobot policies"). torch 2.9.1 with torchvision 0.24.1 is a pair PyPI serves
for Python 3.11 that imports together on a CPU (on x86_64 both are CUDA builds, which run on the CPU;
on aarch64 they are CPU builds). The `smolvla` extra brings transformers; `feetech` the servo SDK the
real-arm commands use.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REQUIREMENTS = ("lerobot[smolvla,feetech]==0.4.4", "torch==2.9.1", "torchvision==0.24.1")
# Free disk the build needs, measured: on x86_64 the environment is 8.2 GB (4.3 GB of it CUDA libraries
# torch's wheel requires even on a CPU) and pip holds about 3.5 GB of downloaded wheels until it is done;
# on aarch64 (CPU wheels) about 2 GB in all.
NEEDED_BYTES = {"x86_64": 12 * 10**9}.get(platform.machine(), 3 * 10**9)
PROBE = (
    "import json, lerobot, torch, transformers; "
    "print(json.dumps({'lerobot': lerobot.__version__, 'torch': torch.__version__, "
    "'transformers': transformers.__version__}))"
)


def describe_env(root: Path) -> str | None:
    """'lerobot X, torch Y, transformers Z' if `root` is a working LeRobot environment, else None."""
    python = root / "bin" / "python"
    if not python.exists():
        return None
    try:
        out = subprocess.run([str(python), "-I", "-c", PROBE], capture_output=True, text=True, timeout=300)
        versions = json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None
    return ", ".join(f"{k} {v}" for k, v in versions.items())


def build_env(root: Path) -> tuple[float, int]:
    """Create the environment at `root` (built beside it, moved into place when complete, so a failed
    build leaves nothing half-made there); returns (seconds, bytes)."""
    t0 = time.perf_counter()
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    check_free_space(partial.parent)
    # Symlinks keep the base interpreter's path out of the copied files, so the folder can be moved.
    subprocess.run([sys.executable, "-m", "venv", "--symlinks", str(partial)], check=True)
    # No pip cache: it would keep a second copy of the multi-GB wheels after the build.
    pip = [str(partial / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    pip.append("--no-cache-dir")
    subprocess.run([*pip, *REQUIREMENTS], check=True, env={**os.environ, "PIP_NO_INPUT": "1"})
    if root.exists():
        shutil.rmtree(root)
    # A venv records its own path (activate scripts, pyvenv.cfg's command): build it where it will live.
    partial.rename(root)
    _fix_paths(root, partial)
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and not f.is_symlink())
    return time.perf_counter() - t0, size


class NotEnoughSpace(ValueError):
    """The disk cannot hold the build (a ValueError, so the CLI says so without a traceback)."""


def check_free_space(folder: Path, needed: int = NEEDED_BYTES) -> None:
    """Fail before pip starts (and leaves a half-written folder) when the disk cannot hold the build."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise NotEnoughSpace(
            f"{folder}: {free / 1e9:.1f} GB free, the LeRobot environment needs about {needed / 1e9:.0f} GB "
            f"while it is built ({platform.machine()}); free some space or pass --env on a larger disk"
        )


def _fix_paths(root: Path, old: Path) -> None:
    """Scripts under bin/ name their interpreter by absolute path: point them at the moved folder."""
    for script in (root / "bin").iterdir():
        if script.is_file() and not script.is_symlink():
            try:
                text = script.read_text()
            except UnicodeDecodeError:
                continue
            if str(old) in text:
                script.write_text(text.replace(str(old), str(root)))
