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
import shutil
import subprocess
import sys
import time
from pathlib import Path

REQUIREMENTS = ("lerobot[smolvla,feetech]==0.4.4", "torch==2.9.1", "torchvision==0.24.1")
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
    # Symlinks keep the base interpreter's path out of the copied files, so the folder can be moved.
    subprocess.run([sys.executable, "-m", "venv", "--symlinks", str(partial)], check=True)
    pip = [str(partial / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *REQUIREMENTS], check=True, env={**os.environ, "PIP_NO_INPUT": "1"})
    if root.exists():
        shutil.rmtree(root)
    # A venv records its own path (activate scripts, pyvenv.cfg's command): build it where it will live.
    partial.rename(root)
    _fix_paths(root, partial)
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and not f.is_symlink())
    return time.perf_counter() - t0, size


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
