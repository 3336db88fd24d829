"""Read LeRobotDataset v3.0 (and v2.1) datasets from disk, without LeRobot.

`LeRobotDataset.open(root)` validates the metadata eagerly (info.json, tasks, episodes, totals, that every
referenced data and video file exists) and reads frame data lazily, one episode at a time:

    ds = LeRobotDataset.open("datasets/metaworld")
    ds.episode_data(0)["action"]                          # (T, 4) float32
    ds.episode_frames(0, "observation.images.corner")     # (T, H, W, 3) uint8

v2.1 datasets (one parquet and one mp4 per episode, jsonl metadata) are normalised into the same episode
shape as v3.0, so everything past `open` is version-agnostic.

Only parquet, JSON and media files are read; nothing is unpickled and nothing on disk is modified.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from embodia.data.format import (
    CODEBASE_VERSION,
    INFO_PATH,
    STATS_PATH,
    TASKS_PATH,
    V21,
    DatasetError,
    data_keys,
    read_json,
)
from embodia.data.stats import aggregate
from embodia.hub import resolve_folder

SUPPORTED_VERSIONS = (CODEBASE_VERSION, V21)
# LeRobot accepts a decoded frame when its pts is within this many seconds of the requested timestamp.
TIMESTAMP_TOLERANCE_S = 1e-4
V21_EPISODES_PATH = "meta/episodes.jsonl"
V21_TASKS_PATH = "meta/tasks.jsonl"
V21_EPISODES_STATS_PATH = "meta/episodes_stats.jsonl"
_VIDEO_FIELDS = ("chunk_index", "file_index", "from_timestamp", "to_timestamp")
# Episode fields kept as they are in v3's episodes parquet (v2.1 episodes get the same ones).
_EPISODE_KEYS = ("episode_index", "length", "tasks", "dataset_from_index", "dataset_to_index")


class LeRobotDataset:
    """A LeRobotDataset on disk (embodia's reader, not LeRobot's class). Build it with `open`.

    `episodes` holds one dict per episode, in episode_index order, with the same keys for v3.0 and v2.1:
    episode_index, length, tasks, dataset_from_index, dataset_to_index (global frame range, end exclusive),
    data_file (path relative to root) and videos = {camera_key: {file, from_timestamp, to_timestamp}}.
    """

    def __init__(
        self,
        root: Path,
        info: dict,
        tasks: list[str],
        episodes: list[dict],
        stats: dict[str, dict[str, np.ndarray]],
    ) -> None:
        self.root = root
        self.info = info
        self.version: str = info["codebase_version"]
        self.fps = int(info["fps"])
        self.robot_type: str | None = info.get("robot_type")
        self.features: dict = info["features"]
        self.camera_keys = [k for k, f in self.features.items() if f["dtype"] in ("video", "image")]
        self.tasks = tasks
        self.episodes = episodes
        self.stats = stats
        self._position = {ep["episode_index"]: i for i, ep in enumerate(episodes)}
        # Global index where each episode starts, for frame(index) -> episode by bisection.
        self._starts = [ep["dataset_from_index"] for ep in episodes]
        # A v3 data file holds consecutive episodes, so an episode's first row in its file is its global
        # start minus the file's first global index.
        self._file_start: dict[str, int] = {}
        for ep in episodes:
            start = self._file_start.get(ep["data_file"], ep["dataset_from_index"])
            self._file_start[ep["data_file"]] = min(start, ep["dataset_from_index"])
        # The last row groups read, keyed by (file, its size and mtime, groups, columns). Writers (LeRobot's and ours) may put a
        # whole file in one row group, so reading episode after episode without this decodes the file once
        # per episode: 55 s for the 1,726 episodes of one 154 k-row file, 1.3 s with it.
        self._last_read: tuple[tuple, pa.Table] | None = None

    @classmethod
    def open(cls, root: str | Path) -> LeRobotDataset:
        """Validate and load a dataset's metadata; frame data and video stay on disk until asked for."""
        # A local folder, else a Hub dataset id (embodia.hub: a path always wins; `./owner/name` is a path)
        found = resolve_folder(root, "dataset")
        if found is None or not found.is_dir():
            raise DatasetError(f"{root}: dataset root not found")
        root = found
        info_path = root / INFO_PATH
        info = read_json(info_path)
        if not isinstance(info, dict):
            raise DatasetError(f"{info_path}: expected a JSON object")
        version = info.get("codebase_version")
        if version not in SUPPORTED_VERSIONS:
            raise DatasetError(
                f"{info_path}: unsupported codebase_version {version!r} "
                f"(supported: {', '.join(SUPPORTED_VERSIONS)})"
            )
        for key in ("fps", "features", "data_path", "total_episodes", "total_frames"):
            if key not in info:
                raise DatasetError(f"{info_path}: missing key {key!r}")
        features = info["features"]
        if not isinstance(features, dict) or not all(
            isinstance(f, dict) and "dtype" in f and "shape" in f for f in features.values()
        ):
            raise DatasetError(f"{info_path}: features must map each key to {{dtype, shape, ...}}")
        videos = [k for k, f in features.items() if f["dtype"] == "video"]
        if videos and not info.get("video_path"):
            raise DatasetError(f"{info_path}: video features {videos} but no video_path")

        if version == CODEBASE_VERSION:
            tasks, episodes, sources = _load_v3(root, info, videos)
            stats = _load_stats(root / STATS_PATH)
        else:
            tasks, episodes, sources = _load_v21(root, info, videos)
            stats = _load_v21_stats(root)
        _check_episodes(info_path, info, episodes, sources)
        _check_files_exist(root, episodes, info_path)
        return cls(root, info, tasks, episodes, stats)

    # -- sizes -------------------------------------------------------------------------------------

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def num_frames(self) -> int:
        return self.episodes[-1]["dataset_to_index"] if self.episodes else 0

    def __len__(self) -> int:
        return self.num_frames

    def __repr__(self) -> str:
        return (
            f"LeRobotDataset({str(self.root)!r}, version={self.version}, episodes={self.num_episodes}, "
            f"frames={self.num_frames}, fps={self.fps}, cameras={self.camera_keys})"
        )

    def episode(self, episode_index: int) -> dict:
        """The metadata dict of one episode, by episode_index."""
        try:
            return self.episodes[self._position[episode_index]]
        except KeyError:
            raise IndexError(f"{self.root}: no episode {episode_index}") from None

    # -- frame data ----------------------------------------------------------------------------------

    def episode_data(self, episode_index: int) -> dict[str, np.ndarray]:
        """Every non-camera column of one episode: vectors as (T, d), scalars as (T,).

        Reads only the row groups that hold the episode and checks the rows against the metadata, so a
        data file that disagrees with meta/episodes fails here with the file named.
        """
        ep = self.episode(episode_index)
        keys = data_keys(self.features)
        table = self._episode_rows(ep, keys)
        path = self.root / ep["data_file"]
        out = {k: _column_to_numpy(k, table.column(k), self.features[k], path) for k in keys}
        expected = np.arange(ep["dataset_from_index"], ep["dataset_to_index"])
        if "index" in out and not np.array_equal(out["index"], expected):
            raise DatasetError(
                f"{path}: rows for episode {episode_index} have index {out['index'][0]}..{out['index'][-1]}, "
                f"metadata says {expected[0]}..{expected[-1]}"
            )
        if "episode_index" in out and not np.all(out["episode_index"] == episode_index):
            found = sorted(set(out["episode_index"].tolist()))
            raise DatasetError(f"{path}: rows for episode {episode_index} have episode_index {found}")
        return out

    def episode_frames(self, episode_index: int, camera_key: str) -> np.ndarray:
        """All frames of one episode from one camera, (T, H, W, 3) uint8.

        Frame i is the one shown at from_timestamp + i / fps in the episode's video segment; only that
        segment is decoded (seek to the keyframe before it, stop after its last frame).
        """
        ep = self.episode(episode_index)
        if camera_key not in self.camera_keys:
            raise KeyError(f"{camera_key!r} is not a camera of {self.root} (cameras: {self.camera_keys})")
        if self.features[camera_key]["dtype"] == "image":
            table = self._episode_rows(ep, [camera_key])
            return _decode_images(table.column(camera_key), self.root / ep["data_file"])
        video = ep["videos"][camera_key]
        timestamps = video["from_timestamp"] + np.arange(ep["length"]) / self.fps
        return _decode_video(self.root / video["file"], timestamps)

    def frame(self, index: int) -> dict[str, Any]:
        """One frame by global index: every data column, its task string and each camera's image.

        Slow (it reads the whole episode's rows and decodes from the nearest keyframe); meant for
        inspection, not for training loops.
        """
        if not 0 <= index < self.num_frames:
            raise IndexError(f"{self.root}: frame {index} out of range (0..{self.num_frames - 1})")
        ep = self.episodes[bisect.bisect_right(self._starts, index) - 1]
        row = index - ep["dataset_from_index"]
        data = self.episode_data(ep["episode_index"])
        out: dict[str, Any] = {k: v[row] for k, v in data.items()}
        if "task_index" in out and 0 <= int(out["task_index"]) < len(self.tasks):
            out["task"] = self.tasks[int(out["task_index"])]
        for key in self.camera_keys:
            if self.features[key]["dtype"] == "image":
                table = self._episode_rows(ep, [key]).slice(row, 1)
                out[key] = _decode_images(table.column(key), self.root / ep["data_file"])[0]
            else:
                video = ep["videos"][key]
                ts = np.array([video["from_timestamp"] + row / self.fps])
                out[key] = _decode_video(self.root / video["file"], ts)[0]
        return out

    def _episode_rows(self, ep: dict, columns: list[str]) -> pa.Table:
        """The episode's rows of its data file (only the row groups that overlap them)."""
        path = self.root / ep["data_file"]
        first = ep["dataset_from_index"] - self._file_start[ep["data_file"]]
        last = first + ep["length"]
        with _parquet_errors(path):
            pf = pq.ParquetFile(path)
            missing = [c for c in columns if c not in pf.schema_arrow.names]
            if missing:
                raise DatasetError(f"{path}: missing column(s) {missing}")
            if pf.metadata.num_rows < last:
                raise DatasetError(
                    f"{path}: episode {ep['episode_index']} needs rows {first}..{last - 1}, "
                    f"file has {pf.metadata.num_rows} rows"
                )
            groups, group_start, offset = [], 0, None
            for g in range(pf.metadata.num_row_groups):
                n = pf.metadata.row_group(g).num_rows
                if group_start < last and group_start + n > first:
                    groups.append(g)
                    offset = group_start if offset is None else offset
                group_start += n
            st = path.stat()
            key = (str(path), st.st_size, st.st_mtime_ns, tuple(groups), tuple(columns))
            last = self._last_read  # one read of the attribute: the viewer reads from several threads
            if last is not None and last[0] == key:
                table = last[1]
            else:
                table = pf.read_row_groups(groups, columns=columns)
                self._last_read = (key, table)
        return table.slice(first - (offset or 0), ep["length"])


# -- metadata loading --------------------------------------------------------------------------------


@contextmanager
def _parquet_errors(path: Path) -> Iterator[None]:
    """Turn pyarrow's errors for a corrupt file into a DatasetError that names it."""
    try:
        yield
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"{path}: unreadable parquet ({exc})") from None


def _read_table(path: Path, columns: list[str] | None = None) -> pa.Table:
    if not path.is_file():
        raise DatasetError(f"{path}: missing")
    with _parquet_errors(path):
        return pq.read_table(path, columns=columns)


def _load_v3_tasks(path: Path) -> list[str]:
    table = _read_table(path)
    # LeRobot writes tasks with pandas, the task string being the DataFrame index, which pyarrow stores
    # as a column named after the index (`__index_level_0__` when unnamed, as in LeRobot's files). Taking
    # "the column besides task_index" covers both without parsing pandas metadata.
    others = [c for c in table.column_names if c != "task_index"]
    if "task_index" not in table.column_names or len(others) != 1:
        raise DatasetError(
            f"{path}: expected task_index and one column of task strings (columns: {table.column_names})"
        )
    return _tasks_by_index(path, table.column("task_index").to_pylist(), table.column(others[0]).to_pylist())


def _tasks_by_index(path: Path, indices: list[Any], names: list[Any]) -> list[str]:
    """Tasks as a list whose position is task_index, which must run 0..n-1."""
    by_index = dict(zip(indices, names, strict=True))
    if sorted(by_index) != list(range(len(indices))):
        raise DatasetError(f"{path}: task_index values {sorted(by_index)} are not 0..{len(indices) - 1}")
    return [str(by_index[i]) for i in range(len(indices))]


def _load_v3(root: Path, info: dict, videos: list[str]) -> tuple[list[str], list[dict], dict[int, Path]]:
    tasks = _load_v3_tasks(root / TASKS_PATH)
    files = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not files:
        raise DatasetError(
            f"{root / 'meta' / 'episodes'}: no episode metadata files (chunk-*/file-*.parquet)"
        )
    # Per-episode stats columns are skipped: they are the bulk of these files and the reader has no use
    # for them (the dataset-wide stats are in meta/stats.json).
    needed = [*_EPISODE_KEYS, "data/chunk_index", "data/file_index"] + [
        f"videos/{k}/{f}" for k in videos for f in _VIDEO_FIELDS
    ]
    episodes, sources = [], {}
    for path in files:
        with _parquet_errors(path):
            names = pq.read_schema(path).names
        missing = [c for c in needed if c not in names]
        if missing:
            raise DatasetError(f"{path}: missing column(s) {missing}")
        for row in _read_table(path, needed).to_pylist():
            episodes.append(_v3_episode(root / INFO_PATH, info, row, videos))
            sources[row["episode_index"]] = path
    episodes.sort(key=lambda ep: ep["episode_index"])
    return tasks, episodes, sources


def _format_path(info_path: Path, template: str, **fields: Any) -> str:
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError) as exc:
        raise DatasetError(f"{info_path}: cannot fill path template {template!r} ({exc!r})") from None


def _v3_episode(info_path: Path, info: dict, row: dict, videos: list[str]) -> dict:
    ep = {k: row[k] for k in _EPISODE_KEYS}
    ep["data_file"] = _format_path(
        info_path, info["data_path"], chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]
    )
    ep["videos"] = {
        k: {
            "file": _format_path(
                info_path,
                info["video_path"],
                video_key=k,
                chunk_index=row[f"videos/{k}/chunk_index"],
                file_index=row[f"videos/{k}/file_index"],
            ),
            "from_timestamp": float(row[f"videos/{k}/from_timestamp"]),
            "to_timestamp": float(row[f"videos/{k}/to_timestamp"]),
        }
        for k in videos
    }
    return ep


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise DatasetError(f"{path}: missing")
    rows = []
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not valid UTF-8 ({exc})") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: line {n} is not valid JSON ({exc})") from None
        if not isinstance(row, dict):
            raise DatasetError(f"{path}: line {n} is not a JSON object")
        rows.append(row)
    return rows


def _load_v21(root: Path, info: dict, videos: list[str]) -> tuple[list[str], list[dict], dict[int, Path]]:
    tasks_path = root / V21_TASKS_PATH
    try:
        rows = _read_jsonl(tasks_path)
        tasks = _tasks_by_index(tasks_path, [r["task_index"] for r in rows], [r["task"] for r in rows])
    except KeyError as exc:
        raise DatasetError(f"{tasks_path}: a line lacks {exc}") from None
    episodes_path = root / V21_EPISODES_PATH
    info_path = root / INFO_PATH
    chunks_size = int(info.get("chunks_size", 1000))
    fps = int(info["fps"])
    episodes: list[dict] = []
    try:
        rows = sorted(_read_jsonl(episodes_path), key=lambda r: r["episode_index"])
        start = 0
        for r in rows:
            e, length = int(r["episode_index"]), int(r["length"])
            chunk = e // chunks_size
            ep: dict[str, Any] = {
                "episode_index": e,
                "length": length,
                "tasks": list(r["tasks"]),
                # v2.1 has no global ranges on disk: frames are numbered in episode order.
                "dataset_from_index": start,
                "dataset_to_index": start + length,
                "data_file": _format_path(info_path, info["data_path"], episode_chunk=chunk, episode_index=e),
            }
            # One mp4 per episode and camera, starting at t = 0.
            ep["videos"] = {
                k: {
                    "file": _format_path(
                        info_path, info["video_path"], episode_chunk=chunk, video_key=k, episode_index=e
                    ),
                    "from_timestamp": 0.0,
                    "to_timestamp": length / fps,
                }
                for k in videos
            }
            episodes.append(ep)
            start += length
    except KeyError as exc:
        raise DatasetError(f"{episodes_path}: an episode lacks {exc}") from None
    return tasks, episodes, dict.fromkeys((ep["episode_index"] for ep in episodes), episodes_path)


def _check_episodes(info_path: Path, info: dict, episodes: list[dict], sources: dict[int, Path]) -> None:
    """Totals in info.json against the episode metadata, and the episodes' frame ranges against each other.

    `sources` maps each episode_index to the metadata file it came from, so errors name that file."""
    files = sorted(set(sources.values()))
    episodes_path = files[0] if len(files) == 1 else files[0].parent.parent
    if info["total_episodes"] != len(episodes):
        raise DatasetError(
            f"{info_path}: total_episodes is {info['total_episodes']} but {episodes_path} "
            f"lists {len(episodes)} episodes"
        )
    frames = sum(ep["length"] for ep in episodes)
    if info["total_frames"] != frames:
        raise DatasetError(
            f"{info_path}: total_frames is {info['total_frames']} but the episodes in {episodes_path} "
            f"have {frames} frames"
        )
    if len(sources) != len(episodes):
        raise DatasetError(f"{episodes_path}: duplicate episode_index values")
    # Frames are numbered consecutively across episodes; frame(index) and the row offsets within a data
    # file rely on it.
    start = 0
    for ep in episodes:
        end = start + ep["length"]
        if ep["length"] < 1 or (ep["dataset_from_index"], ep["dataset_to_index"]) != (start, end):
            raise DatasetError(
                f"{sources[ep['episode_index']]}: episode {ep['episode_index']} (length {ep['length']}) spans dataset "
                f"indices {ep['dataset_from_index']}..{ep['dataset_to_index']}, expected {start}..{end}"
            )
        start = end


def _check_files_exist(root: Path, episodes: list[dict], info_path: Path) -> None:
    """Every file the metadata points at must exist; contents are checked when read."""
    seen: set[str] = set()
    for ep in episodes:
        files = [ep["data_file"]] + [v["file"] for v in ep["videos"].values()]
        for rel in files:
            if rel in seen:
                continue
            seen.add(rel)
            if not (root / rel).is_file():
                raise DatasetError(
                    f"{root / rel}: missing (referenced by episode {ep['episode_index']}; paths from {info_path})"
                )


# -- stats ---------------------------------------------------------------------------------------------


def _stats_to_numpy(path: Path, raw: Any) -> dict[str, dict[str, np.ndarray]]:
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise DatasetError(f"{path}: expected {{feature: {{stat: values}}}}")
    return {key: {name: np.asarray(v) for name, v in feats.items()} for key, feats in raw.items()}


def _load_stats(path: Path) -> dict[str, dict[str, np.ndarray]]:
    # Like LeRobot, a dataset without stats.json still loads (stats are only needed for normalisation).
    return _stats_to_numpy(path, read_json(path)) if path.is_file() else {}


def _load_v21_stats(root: Path) -> dict[str, dict[str, np.ndarray]]:
    if (root / STATS_PATH).is_file():
        return _load_stats(root / STATS_PATH)
    path = root / V21_EPISODES_STATS_PATH
    if not path.is_file():
        return {}
    per_episode = []
    for n, row in enumerate(_read_jsonl(path), start=1):
        if "stats" not in row:
            raise DatasetError(f"{path}: line {n} lacks 'stats'")
        per_episode.append(_stats_to_numpy(path, row["stats"]))
    try:
        return aggregate_stats(per_episode)
    except (KeyError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot aggregate per-episode stats ({exc!r})") from None


def aggregate_stats(
    per_episode: Iterable[dict[str, dict[str, np.ndarray]]],
) -> dict[str, dict[str, np.ndarray]]:
    """Dataset stats from per-episode stats, feature by feature (see `embodia.data.stats.aggregate`)."""
    per_episode = list(per_episode)
    out: dict[str, dict[str, np.ndarray]] = {}
    for key in dict.fromkeys(k for stats in per_episode for k in stats):
        out[key] = aggregate([stats[key] for stats in per_episode if key in stats])
    return out


# -- column and media decoding -------------------------------------------------------------------------


def _column_to_numpy(name: str, column: pa.ChunkedArray, feature: dict, path: Path) -> np.ndarray:
    """A data column as (T,) for scalars or (T, *shape) for vectors, in the feature's dtype.

    v3 stores vectors as fixed-size lists, v2.1 (Hugging Face `Sequence`) often as variable lists; both
    are flattened and reshaped to the declared shape, which also catches rows of the wrong length.
    """
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    shape = [int(s) for s in feature["shape"]]
    try:
        if isinstance(array, pa.ListArray | pa.LargeListArray | pa.FixedSizeListArray):
            values = array.flatten().to_numpy(zero_copy_only=False).reshape(len(array), *shape)
        else:
            values = array.to_numpy(zero_copy_only=False)
            values = values if shape == [1] else values.reshape(len(array), *shape)
        # A copy: a zero-copy view would keep the whole row group alive (every episode of the file).
        # TrainingDataset holds every episode's columns at once, so views cost episodes x file size:
        # 23.7 GB, killed by the OOM killer, for 1,726 episodes in one 154 k-row file.
        return values.astype(np.dtype(feature["dtype"]), copy=True)
    except (ValueError, TypeError, pa.ArrowException) as exc:
        raise DatasetError(f"{path}: column {name} does not match its feature {feature} ({exc})") from None


def _decode_video(path: Path, timestamps: np.ndarray) -> np.ndarray:
    """Frames shown at `timestamps` (seconds, ascending), decoding only the span that covers them."""
    first, last = float(timestamps[0]), float(timestamps[-1])
    frames: list[np.ndarray] = []
    times: list[float] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            time_base = stream.time_base
            if time_base is None:
                raise DatasetError(f"{path}: video stream has no time base")
            # Seek lands on the keyframe at or before the target; frames before `first` are decoded only
            # to reach it, and dropped.
            container.seek(max(0, int((first - TIMESTAMP_TOLERANCE_S) / time_base)), stream=stream)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                t = float(frame.pts * time_base)
                if t < first - TIMESTAMP_TOLERANCE_S:
                    continue
                frames.append(frame.to_ndarray(format="rgb24"))
                times.append(t)
                if t >= last - TIMESTAMP_TOLERANCE_S:
                    break
    except (av.FFmpegError, OSError, IndexError) as exc:
        raise DatasetError(f"{path}: corrupt or truncated video ({exc})") from None
    return np.stack([frames[i] for i in _match_timestamps(path, timestamps, np.array(times))])


def _match_timestamps(path: Path, wanted: np.ndarray, have: np.ndarray) -> np.ndarray:
    """For each wanted timestamp, the index of the decoded frame nearest to it, which must be within
    the tolerance (a missing frame means a truncated or mis-indexed video, not something to paper over)."""
    if len(have) == 0:
        raise DatasetError(
            f"{path}: no frames decoded between t={wanted[0]:.4f}s and t={wanted[-1]:.4f}s (truncated video?)"
        )
    order = np.argsort(have, kind="stable")  # decoders emit presentation order, but do not rely on it
    have = have[order]
    right = np.minimum(np.searchsorted(have, wanted), len(have) - 1)
    left = np.maximum(right - 1, 0)
    nearest = np.where(np.abs(have[left] - wanted) <= np.abs(have[right] - wanted), left, right)
    error = np.abs(have[nearest] - wanted)
    bad = np.flatnonzero(error > TIMESTAMP_TOLERANCE_S)
    if len(bad):
        i = bad[0]
        raise DatasetError(
            f"{path}: no frame at t={wanted[i]:.4f}s (nearest decoded frame at t={have[nearest[i]]:.4f}s; "
            f"{len(bad)} of {len(wanted)} frames missing, tolerance {TIMESTAMP_TOLERANCE_S}s; truncated video?)"
        )
    return order[nearest]


def _decode_images(column: pa.ChunkedArray, path: Path) -> np.ndarray:
    """Image features stored in the data parquet ({bytes, path} structs holding PNG or JPEG files),
    decoded with FFmpeg's image decoders so no extra imaging library is needed."""
    images = []
    for i, cell in enumerate(column.to_pylist()):
        data = cell.get("bytes") if isinstance(cell, dict) else None
        if not data:
            raise DatasetError(f"{path}: image in row {i} has no embedded bytes")
        codec = "png" if data[:4] == b"\x89PNG" else "mjpeg"
        try:
            decoded = av.CodecContext.create(codec, "r").decode(av.Packet(data))
        except av.FFmpegError as exc:
            raise DatasetError(f"{path}: undecodable image in row {i} ({exc})") from None
        if not decoded:
            raise DatasetError(f"{path}: undecodable image in row {i}")
        images.append(decoded[0].to_ndarray(format="rgb24"))
    return np.stack(images)
