"""Export a LeRobotDataset v3.0 as v2.1, the layout LeRobot 0.1-0.3 (and so openpi) reads.

    export_v21("datasets/tabletop", "datasets/tabletop_v21")

v2.1 on disk, as LeRobot 0.3.x writes and reads it (`lerobot/datasets/utils.py`, `lerobot_dataset.py`,
`compute_stats.py` at tag v0.3.3; openpi pins a LeRobot commit with the same loader):

    meta/info.json                   codebase_version "v2.1", totals incl. total_videos and total_chunks,
                                     chunks_size = episodes per chunk folder, per-episode path templates
    meta/episodes.jsonl              {"episode_index", "tasks": [str], "length"} per line
    meta/tasks.jsonl                 {"task_index", "task"} per line
    meta/episodes_stats.jsonl        {"episode_index", "stats": {feature: {min, max, mean, std, count}}}
    data/chunk-CCC/episode_EEEEEE.parquet              one file per episode, global `index`
    videos/chunk-CCC/<camera>/episode_EEEEEE.mp4       one file per episode and camera, starting at t=0

Per-episode stats follow LeRobot 0.3's `compute_episode_stats`: reductions over frames, scalars kept as
shape (1,); cameras over a sample of frames (`_sample_count`), per channel, shaped (3, 1, 1) and scaled
to [0, 1], with count = frames sampled. There is no meta/stats.json: LeRobot 0.3 aggregates the episode
stats itself.

Videos are cut from v3's shared mp4s by stream copy (no re-encode, same codec): every episode of a v3
file was encoded on its own and so starts on a keyframe. Each cut is decoded back and its frame times
checked against the episode's timestamps; a cut that does not check out is re-encoded from the frames
embodia's reader decodes. The export is built in `OUT.partial` and renamed to OUT at the end.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from embodia.data.format import (
    CHUNKS_SIZE,
    CODEBASE_VERSION,
    INFO_PATH,
    V21,
    DatasetError,
    arrow_schema,
    data_keys,
    read_json,
    video_encoding_of,
    video_keys,
)
from embodia.data.reader import (
    TIMESTAMP_TOLERANCE_S,
    V21_EPISODES_PATH,
    V21_EPISODES_STATS_PATH,
    V21_TASKS_PATH,
    LeRobotDataset,
)
from embodia.data.video import encode_episode, extract_segment

V21_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V21_VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
# LeRobot 0.3 samples camera frames for stats (estimate_num_samples): all of a short episode, else
# len**0.75 clamped to [100, 10000]; frames wider or taller than 300 px are strided down to ~150 px.
_MIN_SAMPLES, _MAX_SAMPLES, _SAMPLE_POWER = 100, 10_000, 0.75
_DOWNSAMPLE_ABOVE, _DOWNSAMPLE_TO = 300, 150

Progress = Callable[[int, int], None]


def export_v21(src: str | Path, out: str | Path, progress: Progress | None = None) -> Path:
    """Write the v3.0 dataset at `src` as a new v2.1 dataset at `out`; returns `out`.

    Refuses (ValueError, before writing anything) a source that is not v3.0, an `out` that exists and
    is not an empty folder, and an `out` inside `src`. `progress(done, total)` is called per episode."""
    src, out = Path(src), Path(out)
    ds = _open_source(src)
    _check_target(src, out)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # left by an interrupted export
    partial.mkdir(parents=True)
    try:
        stats_lines = []
        for n, ep in enumerate(ds.episodes):
            stats_lines.append(_export_episode(ds, ep, partial))
            if progress is not None:
                progress(n + 1, ds.num_episodes)
        _write_metadata(ds, partial, stats_lines)
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out


# -- checks ------------------------------------------------------------------------------------------


def _open_source(src: Path) -> LeRobotDataset:
    """The source, opened with embodia's reader once its info.json says v3.0."""
    info = read_json(src / INFO_PATH) if (src / INFO_PATH).is_file() else None
    version = info.get("codebase_version") if isinstance(info, dict) else None
    if version != CODEBASE_VERSION:
        found = f"no {INFO_PATH}" if info is None else f"codebase_version {version!r}"
        already = " (already v2.1: use it as it is)" if version == V21 else ""
        raise DatasetError(f"{src}: export-v21 reads a {CODEBASE_VERSION} dataset, found {found}{already}")
    ds = LeRobotDataset.open(src)
    images = [k for k in ds.camera_keys if ds.features[k]["dtype"] == "image"]
    if images:
        raise DatasetError(
            f"{src}: image features stored in the data files ({images}) are not exported; only video cameras"
        )
    indices = [ep["episode_index"] for ep in ds.episodes]
    if indices != list(range(len(indices))):
        raise DatasetError(
            f"{src}: episode_index must run 0..{len(indices) - 1} for v2.1 (LeRobot 0.3 indexes episodes "
            f"by position), found {indices[:10]}{' ...' if len(indices) > 10 else ''}"
        )
    return ds


def _check_target(src: Path, out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out}: already exists and is not an empty folder; pick a new one")
    if out.resolve().is_relative_to(src.resolve()):
        raise ValueError(f"{out}: inside the source dataset {src}; pick a folder outside it")


# -- one episode -------------------------------------------------------------------------------------


def _export_episode(ds: LeRobotDataset, ep: dict, root: Path) -> dict:
    """Write one episode's parquet and mp4s; returns its episodes_stats.jsonl line."""
    e = ep["episode_index"]
    chunk = e // CHUNKS_SIZE
    data = ds.episode_data(e)
    path = root / V21_DATA_PATH.format(episode_chunk=chunk, episode_index=e)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(_episode_table(ds.features, data), path)
    stats = {k: _vector_stats(data[k]) for k in data_keys(ds.features)}
    timestamps = data["timestamp"] if "timestamp" in data else np.arange(ep["length"]) / ds.fps
    for key in video_keys(ds.features):
        target = root / V21_VIDEO_PATH.format(episode_chunk=chunk, video_key=key, episode_index=e)
        target.parent.mkdir(parents=True, exist_ok=True)
        stats[key] = _export_video(ds, ep, key, target, np.asarray(timestamps, np.float64))
    # In the order of the features, as LeRobot writes them.
    order = [k for k in ds.features if k in stats]
    return {"episode_index": e, "stats": {k: _jsonable(stats[k]) for k in order}}


def _episode_table(features: dict, data: dict[str, np.ndarray]) -> pa.Table:
    """The episode's rows with v2.1's parquet schema: the same Arrow columns as v3 and the `datasets`
    feature metadata as `datasets` 2.x/3.x wrote it (vectors as `Sequence` with a length)."""
    schema = arrow_schema(features)
    arrays = []
    for field in schema:
        v = data[field.name]
        if pa.types.is_fixed_size_list(field.type):
            flat = pa.array(np.ascontiguousarray(v).reshape(-1), field.type.value_type)
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, v.shape[1]))
        else:
            arrays.append(pa.array(v.reshape(len(v)), field.type))
    hf: dict[str, Any] = {}
    for field in schema:
        f = features[field.name]
        value = {"dtype": f["dtype"], "_type": "Value"}
        hf[field.name] = (
            value
            if list(f["shape"]) == [1]
            else {"feature": value, "length": int(f["shape"][0]), "_type": "Sequence"}
        )
    meta = {b"huggingface": json.dumps({"info": {"features": hf}}).encode()}
    return pa.Table.from_arrays(arrays, schema=schema.with_metadata(meta))


def _export_video(ds: LeRobotDataset, ep: dict, key: str, target: Path, timestamps: np.ndarray) -> dict:
    """Cut the episode's segment of `key` into `target` (stream copy, else re-encode); returns the
    camera's v2.1 stats, computed on the frames decoded back from `target`."""
    video = ep["videos"][key]
    source = ds.root / video["file"]
    try:
        extract_segment(source, video["from_timestamp"], video["to_timestamp"], target)
        return _check_and_sample(target, timestamps)
    except (DatasetError, av.FFmpegError, OSError):
        pass  # not a clean cut at keyframes: decode the segment and encode it anew
    frames = ds.episode_frames(ep["episode_index"], key)
    encode_episode(frames, target, ds.fps, video_encoding_of(ds.features[key]))
    return _check_and_sample(target, timestamps)


def _check_and_sample(path: Path, timestamps: np.ndarray) -> dict:
    """Decode `path` whole; every frame must sit at the episode's next timestamp (within LeRobot's
    tolerance). Returns the camera stats of v2.1 from the sampled frames."""
    n = len(timestamps)
    keep = set(_sample_indices(n))
    sampled: list[np.ndarray] = []
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        time_base = Fraction(stream.time_base or 0)
        if time_base == 0:
            raise DatasetError(f"{path}: video stream has no time base")
        for frame in container.decode(stream):
            if frame.pts is None or count >= n:
                raise DatasetError(f"{path}: frame {count} has no time or lies past the episode's {n} frames")
            t = float(frame.pts * time_base)
            if abs(t - timestamps[count]) > TIMESTAMP_TOLERANCE_S:
                raise DatasetError(f"{path}: frame {count} at t={t:.5f}s, expected {timestamps[count]:.5f}s")
            if count in keep:
                sampled.append(frame.to_ndarray(format="rgb24"))
            count += 1
    if count != n:
        raise DatasetError(f"{path}: {count} frames decoded, the episode has {n}")
    return _image_stats(np.stack(sampled))


# -- stats in v2.1's layout ---------------------------------------------------------------------------


def _sample_count(n: int) -> int:
    if n < _MIN_SAMPLES:
        return n
    return max(_MIN_SAMPLES, min(int(n**_SAMPLE_POWER), _MAX_SAMPLES))


def _sample_indices(n: int) -> list[int]:
    return np.round(np.linspace(0, n - 1, _sample_count(n))).astype(int).tolist()


def _vector_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """min/max/mean/std/count over frames; a scalar column keeps a trailing axis of 1, as in v2.1."""
    keepdims = values.ndim == 1
    return {
        "min": np.min(values, axis=0, keepdims=keepdims),
        "max": np.max(values, axis=0, keepdims=keepdims),
        "mean": np.mean(values, axis=0, keepdims=keepdims),
        "std": np.std(values, axis=0, keepdims=keepdims),
        "count": np.array([len(values)]),
    }


def _image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel stats of uint8 (N, H, W, 3) frames scaled to [0, 1], shaped (3, 1, 1)."""
    _, h, w, _ = frames.shape
    if max(h, w) >= _DOWNSAMPLE_ABOVE:
        step = int(w / _DOWNSAMPLE_TO) if w > h else int(h / _DOWNSAMPLE_TO)
        frames = frames[:, ::step, ::step]
    chw = frames.transpose(0, 3, 1, 2)  # as LeRobot samples them: channel first
    axes = (0, 2, 3)
    out = {
        "min": np.min(chw, axis=axes, keepdims=True),
        "max": np.max(chw, axis=axes, keepdims=True),
        "mean": np.mean(chw, axis=axes, keepdims=True),
        "std": np.std(chw, axis=axes, keepdims=True),
    }
    out = {k: np.squeeze(v / 255.0, axis=0) for k, v in out.items()}
    out["count"] = np.array([len(frames)])
    return out


def _jsonable(stats: dict[str, np.ndarray]) -> dict[str, Any]:
    return {k: np.asarray(v).tolist() for k, v in stats.items()}


# -- metadata -----------------------------------------------------------------------------------------


def _write_metadata(ds: LeRobotDataset, root: Path, stats_lines: list[dict]) -> None:
    meta = root / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    episodes = [
        {"episode_index": ep["episode_index"], "tasks": list(ep["tasks"]), "length": ep["length"]}
        for ep in ds.episodes
    ]
    _write_jsonl(root / V21_EPISODES_PATH, episodes)
    _write_jsonl(root / V21_TASKS_PATH, [{"task_index": i, "task": t} for i, t in enumerate(ds.tasks)])
    _write_jsonl(root / V21_EPISODES_STATS_PATH, stats_lines)
    (root / INFO_PATH).write_text(json.dumps(_info(ds), indent=4, ensure_ascii=False) + "\n")


def _info(ds: LeRobotDataset) -> dict[str, Any]:
    """info.json of v2.1, keys in LeRobot's order; features as in the source, less v3's per-feature
    `fps` (which LeRobot's v2.1 -> v3.0 converter adds to non-video features)."""
    features = {}
    for key, feat in ds.features.items():
        feat = dict(feat)
        if feat["dtype"] != "video":
            feat.pop("fps", None)
        features[key] = feat
    n = ds.num_episodes
    videos = video_keys(features)
    return {
        "codebase_version": V21,
        "robot_type": ds.robot_type,
        "total_episodes": n,
        "total_frames": ds.num_frames,
        "total_tasks": len(ds.tasks),
        "total_videos": n * len(videos),
        "total_chunks": math.ceil(n / CHUNKS_SIZE),
        "chunks_size": CHUNKS_SIZE,
        "fps": ds.fps,
        "splits": {"train": f"0:{n}"},
        "data_path": V21_DATA_PATH,
        "video_path": V21_VIDEO_PATH if videos else None,
        "features": features,
    }


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
