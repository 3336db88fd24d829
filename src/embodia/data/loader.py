"""Training loader: a PyTorch `Dataset` over a LeRobotDataset that is never bound by video decoding.

Each camera's video is decoded once, episode by episode, into a memory-mapped uint8 array on disk
(`<cache>/<fingerprint>/<camera>.u8`, frames in dataset index order). The fingerprint hashes the
dataset's metadata and the sizes/mtimes of its files, so editing or re-recording the dataset builds a
new cache instead of serving stale frames. Each cache folder records which dataset folder it came from
(`source.json`), so building a new one removes the caches of that folder's earlier versions: re-recording
a 150 k-frame dataset would otherwise leave ~8 GB behind each time. After that a sample is a few array
slices.

A sample follows LeRobot's delta-timestamp semantics for the action chunk: the actions at frames
t, t+1, ..., t+H-1 of the same episode; indices past the episode's end are clamped to its last frame
and flagged in `action_is_pad`.

Augmentation runs batched on the collated batch (`data.transforms.ImageAugment`, much cheaper than
per sample): the training loop applies it with its other batch transforms; `augment=True` applies it
here instead, inside DataLoader workers.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.utils.data import Dataset

from embodia.data.reader import LeRobotDataset
from embodia.data.transforms import ImageAugment
from embodia.robots.spec import ACTION, OBS_STATE
from embodia.runs import atomic_write_text

DEFAULT_CACHE = Path(os.environ.get("EMBODIA_CACHE", Path.home() / ".cache" / "embodia" / "frames"))


def dataset_fingerprint(root: Path) -> str:
    """Changes whenever any file of the dataset changes (name, size or modification time)."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        st = path.stat()
        h.update(f"{path.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


class FrameCache:
    """Decoded frames of every camera, memory-mapped; built on first use."""

    def __init__(self, ds: LeRobotDataset, cache_dir: Path | None = None):
        self.ds = ds
        self.dir = Path(cache_dir or DEFAULT_CACHE) / dataset_fingerprint(ds.root)
        self.arrays: dict[str, np.memmap] = {}
        for key in ds.camera_keys:
            self.arrays[key] = self._load_or_build(key)
        if self.arrays:
            self._claim()

    def _load_or_build(self, key: str) -> np.memmap:
        h, w, c = self.ds.features[key]["shape"]
        shape = (self.ds.num_frames, h, w, c)
        path = self.dir / f"{key}.u8"
        done = self.dir / f"{key}.done"
        if not done.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            # A temporary file of its own: two runs may build the same cache at once (two trainings on
            # one machine, workers of a cluster); each replaces the file with identical bytes. Its name
            # says who writes it, so that the files of builders killed mid-decode can be removed.
            remove_orphans(self.dir)
            tmp = self.dir / f".{key}.u8.{_HOST}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            # Decoding is the one slow part of a first run (minutes for a 150 k-frame dataset): show it.
            with Progress(
                TextColumn(f"decoding {key} into the frame cache"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("episodes"),
                TimeRemainingColumn(),
                transient=True,
            ) as progress:
                for ep in progress.track(self.ds.episodes):
                    frames = self.ds.episode_frames(ep["episode_index"], key)
                    arr[ep["dataset_from_index"] : ep["dataset_to_index"]] = frames
            arr.flush()
            del arr
            os.replace(tmp, path)
            atomic_write_text(done, json.dumps({"shape": shape}))
        return np.load(path, mmap_mode="r")

    def _claim(self) -> None:
        """Record this dataset folder in the cache's `source.json` (identical copies share one cache, so
        it is a list) and, the first time, prune the caches of this folder's earlier versions."""
        root = str(Path(self.ds.root).resolve())
        roots = _cache_roots(self.dir)
        if root in roots:
            return
        _write_roots(self.dir, roots + [root])
        removed = prune_stale_caches(self.dir, root)
        if removed:
            Console(stderr=True).print(
                f"frame cache: removed {len(removed)} stale cache(s) of {root} (the dataset changed since)"
            )


_HOST = socket.gethostname().replace(".", "-") or "host"


def remove_orphans(cache: Path) -> list[Path]:
    """Remove the temporary files of builders that died mid-decode: written on this machine by a process
    that no longer exists. Files of other machines (a cache on a shared disk) and of live processes stay."""
    removed = []
    for f in cache.glob(".*.tmp"):
        parts = f.name.split(".")  # "", key..., "u8", host, pid, suffix, "tmp"
        if len(parts) < 6 or parts[-4] != _HOST or not parts[-3].isdigit() or _alive(int(parts[-3])):
            continue
        f.unlink(missing_ok=True)
        removed.append(f)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process, or not a pid we can judge: keep its file
    return True


def _cache_roots(cache: Path) -> list[str]:
    try:
        return list(json.loads((cache / "source.json").read_text())["roots"])
    except (OSError, ValueError, KeyError, TypeError):
        return []  # none recorded (built by an older version) or unreadable


def _write_roots(cache: Path, roots: list[str]) -> None:
    atomic_write_text(cache / "source.json", json.dumps({"roots": roots}))


def prune_stale_caches(current: Path, root: str) -> list[Path]:
    """Forget `root` in the other cache folders beside `current`: it has changed since (its fingerprint
    is now `current`'s), so they can no longer serve it. A folder left serving no dataset folder whose
    files still match it is removed. Folders without a `source.json` (built by older versions) are left
    alone, their origin unknown. A process still reading a removed cache keeps its memory maps."""
    removed = []
    for other in current.parent.iterdir():
        roots = _cache_roots(other) if other != current and other.is_dir() else []
        if root not in roots:
            continue
        alive = [
            r for r in roots if r != root and Path(r).is_dir() and dataset_fingerprint(Path(r)) == other.name
        ]
        if alive:
            _write_roots(other, alive)
        else:
            shutil.rmtree(other, ignore_errors=True)
            removed.append(other)
    return removed


class TrainingDataset(Dataset):
    """Samples: images per camera (uint8, C x H x W), state, an action chunk with its pad mask, task."""

    def __init__(
        self,
        root: str | Path,
        chunk_size: int = 16,
        cache_dir: Path | None = None,
        cameras: list[str] | None = None,
        augment: bool = False,
        seed: int = 0,
    ):
        self.ds = LeRobotDataset.open(root)
        # Augmenting inside __getitems__ lets DataLoader workers spread it over the cores.
        self.augment = augment
        self.seed = seed
        self._generator: torch.Generator | None = None
        self.chunk_size = int(chunk_size)
        if self.chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self.cameras = list(cameras) if cameras is not None else list(self.ds.camera_keys)
        unknown = set(self.cameras) - set(self.ds.camera_keys)
        if unknown:
            raise ValueError(f"unknown cameras {sorted(unknown)}; this dataset has {self.ds.camera_keys}")
        cols = [self.ds.episode_data(e["episode_index"]) for e in self.ds.episodes]
        self.state = torch.from_numpy(np.concatenate([c[OBS_STATE] for c in cols]).astype(np.float32))
        self.action = torch.from_numpy(np.concatenate([c[ACTION] for c in cols]).astype(np.float32))
        self.task_index = np.concatenate([c["task_index"] for c in cols]).astype(np.int64)
        # For each frame, the last global index of its episode (where action chunks are clamped).
        self.episode_end = np.concatenate(
            [np.full(e["length"], e["dataset_to_index"] - 1, np.int64) for e in self.ds.episodes]
        )
        self.frames = FrameCache(self.ds, cache_dir).arrays if self.cameras else {}
        self._offsets = torch.arange(self.chunk_size)

    def __len__(self) -> int:
        return self.ds.num_frames

    def __getitem__(self, i: int) -> dict[str, Any]:
        i = int(i)
        end = int(self.episode_end[i])
        idx = torch.clamp(i + self._offsets, max=end)
        sample: dict[str, Any] = {
            OBS_STATE: self.state[i],
            ACTION: self.action[idx],
            "action_is_pad": (i + self._offsets) > end,
            "task": self.ds.tasks[int(self.task_index[i])],
            "index": i,
        }
        for key in self.cameras:
            sample[key] = torch.from_numpy(np.array(self.frames[key][i])).permute(2, 0, 1)
        return sample

    def __getitems__(self, indices: list[int]) -> dict[str, Any]:
        """A whole batch in a few vectorised reads (the DataLoader calls this when it exists): much
        faster than collating samples one by one. Use `collate` as the DataLoader's collate_fn."""
        i = torch.as_tensor(indices, dtype=torch.long)
        end = torch.from_numpy(self.episode_end[i.numpy()])
        query = i[:, None] + self._offsets[None, :]
        idx = torch.minimum(query, end[:, None])
        batch: dict[str, Any] = {
            OBS_STATE: self.state[i],
            ACTION: self.action[idx],
            "action_is_pad": query > end[:, None],
            "task": [self.ds.tasks[int(t)] for t in self.task_index[i.numpy()]],
            "index": i,
        }
        order = np.argsort(i.numpy())  # sorted reads are sequential on the memory map
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        for key in self.cameras:
            frames = self.frames[key][i.numpy()[order]][inverse]
            batch[key] = (
                torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()
            )  # channels-first memory: later ops run ~2x faster
        if self.augment:
            if self._generator is None:  # one stream per worker process
                info = torch.utils.data.get_worker_info()
                self._generator = torch.Generator().manual_seed(self.seed * 1000 + (info.id if info else 0))
            batch = ImageAugment(self.cameras)(batch, self._generator)
        return batch


def collate(batch: Any) -> dict[str, Any]:
    """DataLoader collate_fn: batches from `TrainingDataset.__getitems__` are already collated."""
    if isinstance(batch, dict):
        return batch
    return torch.utils.data.default_collate(batch)
