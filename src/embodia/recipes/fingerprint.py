"""Fingerprints of what stages read and write, so that a rerun knows what is up to date.

They hash content, never modification times or absolute paths: a dataset or checkpoint copied to another
folder or machine fingerprints the same.

    dataset      sha256 over meta/info.json, meta/tasks.parquet, meta/stats.json (their bytes) and the
                 (relative path, size) of every file under data/, videos/ and meta/episodes/ (the video
                 and parquet files are large; their sizes change with any re-recording)
    checkpoint   sha256 over the hashes of model.safetensors, normalization.json and config.json less its
                 `metadata` (provenance: which recipe and commit built it, what it scored; editing it
                 changes nothing the policy does, so it does not make later stages stale)
    file         sha256 of the file (an evaluation's results.json)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from embodia.policy.checkpoint import file_hash

DATASET_META = ("meta/info.json", "meta/tasks.parquet", "meta/stats.json")
DATASET_FILES = ("data", "videos", "meta/episodes")
CHECKPOINT_FILES = ("model.safetensors", "config.json", "normalization.json")


def dataset_fingerprint(root: Path) -> str:
    root = Path(root)
    if not (root / "meta" / "info.json").is_file():
        raise FileNotFoundError(f"{root}: not a dataset (no meta/info.json)")
    h = hashlib.sha256()
    for rel in DATASET_META:
        path = root / rel
        h.update(f"{rel}:{file_hash(path) if path.is_file() else '-'}\n".encode())
    for sub in DATASET_FILES:
        files = sorted(p for p in (root / sub).rglob("*") if p.is_file() and not p.name.startswith("."))
        for path in files:
            h.update(f"{path.relative_to(root).as_posix()}|{path.stat().st_size}\n".encode())
    return h.hexdigest()


def checkpoint_fingerprint(root: Path) -> str:
    root = Path(root)
    h = hashlib.sha256()
    for name in CHECKPOINT_FILES:
        path = root / name
        if not path.is_file():
            raise FileNotFoundError(f"{root}: not a complete checkpoint (no {name})")
        digest = _config_hash(path) if name == "config.json" else file_hash(path)
        h.update(f"{name}:{digest}\n".encode())
    return h.hexdigest()


def _config_hash(path: Path) -> str:
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(config, dict):
        config.pop("metadata", None)
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def fingerprint(path: Path, kind: str) -> str:
    """kind: 'dataset', 'policy' or 'file'."""
    if kind == "dataset":
        return dataset_fingerprint(path)
    if kind == "policy":
        return checkpoint_fingerprint(path)
    if kind == "file":
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: missing")
        return file_hash(Path(path))
    raise ValueError(f"unknown kind {kind!r}")
