"""Dataset editing: info, delete episodes, split, merge, recompute stats.

Every operation writes a new dataset (the input is never modified) by copying the chosen episodes:
data columns are re-indexed, task indices remapped, and videos stream-copied segment by segment, so
an edit never re-encodes (and never degrades) a frame. Per-episode stats are recomputed, images from
the decoded segment, so the output's `stats.json` always agrees with its data.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from embodia.data import stats as st
from embodia.data.format import INDEX_FEATURES, DatasetError, data_keys, write_json
from embodia.data.reader import LeRobotDataset
from embodia.data.video import extract_segment
from embodia.data.writer import DatasetWriter


def info(root: str | Path) -> dict[str, Any]:
    ds = LeRobotDataset.open(root)
    lengths = [e["length"] for e in ds.episodes]
    return {
        "root": str(ds.root),
        "version": ds.version,
        "robot_type": ds.robot_type,
        "fps": ds.fps,
        "episodes": ds.num_episodes,
        "frames": ds.num_frames,
        "seconds": ds.num_frames / ds.fps,
        "episode_length": {"min": min(lengths), "max": max(lengths), "mean": float(np.mean(lengths))}
        if lengths
        else None,
        "cameras": ds.camera_keys,
        "tasks": {t: sum(t in e["tasks"] for e in ds.episodes) for t in ds.tasks},
        "features": {k: {"dtype": f["dtype"], "shape": f["shape"]} for k, f in ds.features.items()},
    }


def _check_out(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        raise DatasetError(f"{out}: already exists and is not empty; choose a new output folder")


def copy_episodes(
    selection: list[tuple[LeRobotDataset, int]],
    out: str | Path,
    transform: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None,
    robot_type: str | None = None,
    info_extra: dict[str, Any] | None = None,
) -> Path:
    """Write the selected (dataset, episode_index) pairs, in order, as a new dataset at `out`.
    `transform` maps each episode's data columns to new ones (same keys and shapes; e.g. a change of
    units), `robot_type` replaces the source's, and `info_extra` adds keys to meta/info.json."""
    out = Path(out)
    _check_out(out)
    if not selection:
        raise ValueError("no episodes selected: the output would be empty")
    first = selection[0][0]
    for ds, _ in selection:
        if ds.fps != first.fps or _schema(ds) != _schema(first):
            raise DatasetError(
                f"{ds.root}: features or fps differ from {first.root} (fps {ds.fps} vs {first.fps}); "
                "only datasets with the same features and fps can be combined"
            )
    if first.version != "v3.0":
        raise DatasetError(f"{first.root}: editing needs a v3.0 dataset, this is {first.version}")
    features = dict(first.features)
    # Episodes committed 50 at a time: one rewrite of each growing video file per 50 episodes.
    writer = DatasetWriter.create(
        out, features, fps=first.fps, robot_type=robot_type or first.robot_type or "unknown", commit_every=50
    )
    writer.info.update(info_extra or {})  # written with the first commit
    tmp = Path(tempfile.mkdtemp(prefix="embodia-edit-"))
    try:
        for ds, ep_index in selection:
            ep = ds.episode(ep_index)
            data = ds.episode_data(ep_index)
            columns = {k: v for k, v in data.items() if k in data_keys(features) and k not in INDEX_FEATURES}
            if transform is not None:
                columns = transform(columns)
            frame_tasks = [ds.tasks[int(t)] for t in data["task_index"]]
            videos: dict[str, Path] = {}
            image_stats = {}
            for key in ds.camera_keys:
                seg = ep["videos"][key]
                path = tmp / f"{key}.mp4"
                n = extract_segment(ds.root / seg["file"], seg["from_timestamp"], seg["to_timestamp"], path)
                if n != ep["length"]:
                    raise DatasetError(
                        f"{ds.root / seg['file']}: episode {ep_index} has {n} frames, metadata says {ep['length']}"
                    )
                videos[key] = path
                image_stats[key] = st.image_stats(ds.episode_frames(ep_index, key))
            writer.write_episode(columns, frame_tasks, videos, image_stats)
        writer.flush()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _schema(ds: LeRobotDataset) -> dict:
    return {k: (f["dtype"], list(f["shape"])) for k, f in ds.features.items()}


def delete_episodes(root: str | Path, episodes: list[int], out: str | Path) -> Path:
    ds = LeRobotDataset.open(root)
    unknown = sorted(set(episodes) - {e["episode_index"] for e in ds.episodes})
    if unknown:
        raise ValueError(f"episodes {unknown} are not in {ds.root} (it has 0..{ds.num_episodes - 1})")
    keep = [e["episode_index"] for e in ds.episodes if e["episode_index"] not in set(episodes)]
    return copy_episodes([(ds, e) for e in keep], out)


def split(
    root: str | Path, fractions: dict[str, float], out_dir: str | Path, seed: int = 0
) -> dict[str, Path]:
    """Shuffle episodes with `seed` and cut them into named datasets `out_dir/<name>` by fraction."""
    if not fractions or any(f <= 0 for f in fractions.values()) or abs(sum(fractions.values()) - 1) > 1e-6:
        raise ValueError(f"split fractions must be positive and sum to 1, got {fractions}")
    ds = LeRobotDataset.open(root)
    order = np.random.default_rng(seed).permutation(ds.num_episodes).tolist()
    names = list(fractions)
    counts = [int(round(fractions[n] * ds.num_episodes)) for n in names[:-1]]
    counts.append(ds.num_episodes - sum(counts))
    if any(c <= 0 for c in counts):
        raise ValueError(f"{ds.num_episodes} episodes are too few for the split {fractions}")
    out: dict[str, Path] = {}
    start = 0
    for name, count in zip(names, counts, strict=True):
        chosen = sorted(order[start : start + count])
        out[name] = copy_episodes([(ds, e) for e in chosen], Path(out_dir) / name)
        start += count
    return out


def merge(roots: list[str | Path], out: str | Path) -> Path:
    if len(roots) < 2:
        raise ValueError("merge needs at least two datasets")
    selection = []
    for r in roots:
        ds = LeRobotDataset.open(r)
        selection += [(ds, e["episode_index"]) for e in ds.episodes]
    return copy_episodes(selection, out)


def recompute_stats(root: str | Path, out: str | Path | None = None) -> Path:
    """Recompute stats from the data. With `out`: a copy with every episode's stats and `stats.json`
    recomputed. Without: in place, rewriting only `meta/stats.json` (atomically) -- the file training
    reads; the per-episode stats columns of the episode metadata are left as they are."""
    ds = LeRobotDataset.open(root)
    if out is not None:
        return copy_episodes([(ds, e["episode_index"]) for e in ds.episodes], out)
    per_episode = []
    for e in ds.episodes:
        data = ds.episode_data(e["episode_index"])
        s = {k: st.vector_stats(v) for k, v in data.items() if k in data_keys(ds.features)}
        for key in ds.camera_keys:
            s[key] = st.image_stats(ds.episode_frames(e["episode_index"], key))
        per_episode.append(s)
    feats = per_episode[0].keys()
    stats = {f: st.aggregate([p[f] for p in per_episode]) for f in feats}
    write_json(ds.root / "meta/stats.json", st.to_json(stats))
    return ds.root
