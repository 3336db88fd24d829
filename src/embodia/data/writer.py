"""Write LeRobotDataset v3.0 datasets, episode by episode, crash-safe.

Each commit is a small transaction. Everything is first written beside its target under a temporary
name, then renamed into place in this order: videos, data parquet, episodes parquet, tasks, stats, and
last `meta/info.json`, whose totals are the commit point. A reader (and `resume`) trusts only what
info.json counts, so a `kill -9` at any moment loses at most the episodes not yet committed, and whatever
they had already renamed into place is ignored and overwritten by the next commit.

A commit rewrites the current video and data files whole (an mp4 cannot be appended to in place), so
its cost grows with the file. `commit_every=N` commits N saved episodes together: one rewrite per N
episodes instead of one per episode (recording 1,700 Meta-World episodes into one 150 MB video file
spent ~5 s per episode rewriting it). Episodes waiting for their commit live in `.staging/` as encoded
mp4s; `flush()` (or leaving a `with` block) commits them.

Files rotate like LeRobot's: a new data (video) file starts when the current one would pass
`data_files_size_in_mb` (`video_files_size_in_mb`), with at most 1000 files per chunk folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from embodia.data import stats as st
from embodia.data.format import (
    CHUNKS_SIZE,
    CODEBASE_VERSION,
    DATA_FILES_SIZE_MB,
    DATA_PATH,
    EPISODES_PATH,
    INDEX_FEATURES,
    INFO_PATH,
    STAT_NAMES,
    STATS_PATH,
    TASKS_PATH,
    VIDEO_FILES_SIZE_MB,
    VIDEO_PATH,
    DatasetError,
    arrow_schema,
    chunk_file,
    data_keys,
    read_json,
    video_encoding_of,
    video_keys,
    write_json,
)
from embodia.data.video import append_episodes, encode_episode
from embodia.runs import publish_mode

TASK = "task"

# LeRobot reads tasks.parquet with pandas and expects the task string as the (unnamed) index; pandas
# only restores an index from this schema metadata, so write it as pandas would.
_TASKS_PANDAS_METADATA = {
    b"pandas": json.dumps(
        {
            "index_columns": ["__index_level_0__"],
            "column_indexes": [
                {
                    "name": None,
                    "field_name": None,
                    "pandas_type": "unicode",
                    "numpy_type": "object",
                    "metadata": {"encoding": "UTF-8"},
                }
            ],
            "columns": [
                {
                    "name": "task_index",
                    "field_name": "task_index",
                    "pandas_type": "int64",
                    "numpy_type": "int64",
                    "metadata": None,
                },
                {
                    "name": None,
                    "field_name": "__index_level_0__",
                    "pandas_type": "unicode",
                    "numpy_type": "object",
                    "metadata": None,
                },
            ],
            "attributes": {},
            "creator": {"library": "pyarrow", "version": pa.__version__},
        }
    ).encode()
}


def _write_parquet_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        publish_mode(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


@dataclass
class _Staged:
    """A saved episode waiting for its commit: its columns, tasks, encoded videos and stats."""

    cols: dict[str, np.ndarray]
    length: int
    task_names: list[str]
    videos: dict[str, Path]
    stats: dict[str, dict[str, np.ndarray]]


class DatasetWriter:
    """Append episodes to a LeRobotDataset v3.0 folder.

    >>> with DatasetWriter.create(root, features, fps=30, robot_type="so101_follower") as w:
    ...     for frame in episode: w.add_frame(frame)     # dict: feature arrays + "task"
    ...     w.save_episode()
    """

    def __init__(self, root: Path, info: dict, episodes: list[dict], tasks: list[str], commit_every: int = 1):
        if commit_every < 1:
            raise ValueError(f"commit_every must be >= 1, got {commit_every}")
        self.root = root
        self.info = info
        self.features: dict = info["features"]
        self.fps: int = int(info["fps"])
        self.episodes = episodes  # committed episode rows
        self.tasks = tasks
        self.commit_every = commit_every
        self._buffer: list[dict[str, Any]] = []
        self._staged: list[_Staged] = []
        self._staging = root / ".staging"
        shutil.rmtree(self._staging, ignore_errors=True)  # left by a crash: never committed

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.flush()  # episodes saved before an error are complete: keep them

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(
        cls,
        root: str | Path,
        features: dict,
        fps: int,
        robot_type: str,
        data_files_size_in_mb: int = DATA_FILES_SIZE_MB,
        video_files_size_in_mb: int = VIDEO_FILES_SIZE_MB,
        commit_every: int = 1,
    ) -> DatasetWriter:
        root = Path(root)
        if root.exists() and any(root.iterdir()):
            raise DatasetError(f"{root}: already exists and is not empty; pick a new folder or resume it")
        for key in video_keys(features):
            video_encoding_of(features[key])  # refuse an encoding we cannot write before writing anything
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": robot_type,
            "total_episodes": 0,
            "total_frames": 0,
            "total_tasks": 0,
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": data_files_size_in_mb,
            "video_files_size_in_mb": video_files_size_in_mb,
            "fps": fps,
            "splits": {},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if video_keys(features) else None,
            "features": features,
        }
        root.mkdir(parents=True, exist_ok=True)
        write_json(root / INFO_PATH, info)
        return cls(root, info, [], [], commit_every)

    @classmethod
    def resume(cls, root: str | Path, commit_every: int = 1) -> DatasetWriter:
        """Continue a dataset; anything beyond what info.json committed is dropped on the next save."""
        root = Path(root)
        info = read_json(root / INFO_PATH)
        if info.get("codebase_version") != CODEBASE_VERSION:
            raise DatasetError(
                f"{root / INFO_PATH}: can only append to {CODEBASE_VERSION} datasets, found {info.get('codebase_version')!r}"
            )
        n_ep = int(info["total_episodes"])
        episodes: list[dict] = []
        tasks: list[str] = []
        if n_ep:
            ep_files = sorted((root / "meta/episodes").rglob("*.parquet"))
            if len(ep_files) > 1:
                raise DatasetError(
                    f"{root / 'meta/episodes'}: {len(ep_files)} episode-metadata files; appending supports "
                    "datasets whose episode metadata is one file (as embodia writes it). Merge into a new dataset instead."
                )
            ep_path = root / EPISODES_PATH.format(chunk_index=0, file_index=0)
            episodes = pq.read_table(ep_path).to_pylist()[:n_ep]
            if len(episodes) != n_ep:
                raise DatasetError(f"{ep_path}: {len(episodes)} episodes, info.json says {n_ep}")
            table = pq.read_table(root / TASKS_PATH)
            tasks = [str(t) for t in table.column("__index_level_0__").to_pylist()][
                : int(info["total_tasks"])
            ]
        return cls(root, info, episodes, tasks, commit_every)

    # ------------------------------------------------------------------ frames
    def add_frame(self, frame: dict[str, Any]) -> None:
        if TASK not in frame or not isinstance(frame[TASK], str) or not frame[TASK].strip():
            raise ValueError("each frame needs a non-empty 'task' string")
        out: dict[str, Any] = {TASK: frame[TASK]}
        for key in self._user_keys():
            feat = self.features[key]
            if key not in frame:
                raise ValueError(f"frame is missing feature {key!r}; expected {sorted(self._user_keys())}")
            value = np.asarray(frame[key])
            want = tuple(feat["shape"])
            if feat["dtype"] in ("video", "image"):
                if value.shape != want or value.dtype != np.uint8:
                    raise ValueError(f"{key}: expected uint8 {want}, got {value.dtype} {value.shape}")
            else:
                value = value.astype(feat["dtype"]).reshape(-1)
                if value.shape != (int(np.prod(want)),):
                    raise ValueError(f"{key}: expected shape {want}, got {np.asarray(frame[key]).shape}")
                if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
                    raise ValueError(f"{key}: NaN or inf in {value.tolist()}")
            out[key] = value
        self._buffer.append(out)

    def clear_episode(self) -> None:
        self._buffer.clear()

    def _user_keys(self) -> list[str]:
        return [k for k in self.features if k not in INDEX_FEATURES]

    # ------------------------------------------------------------------ commit
    def save_episode(self) -> int:
        """Commit the frames added since the last save as one episode; returns its index."""
        if not self._buffer:
            raise ValueError("no frames added since the last save_episode()")
        frames, self._buffer = self._buffer, []
        columns = {
            k: np.stack([f[k] for f in frames])
            for k in self._user_keys()
            if k not in video_keys(self.features)
        }
        videos = {k: np.stack([f[k] for f in frames]) for k in video_keys(self.features)}
        return self.write_episode(columns, [f[TASK] for f in frames], videos)

    def write_episode(
        self,
        columns: dict[str, np.ndarray],
        frame_tasks: list[str],
        videos: dict[str, np.ndarray | Path],
        image_stats: dict[str, dict[str, np.ndarray]] | None = None,
    ) -> int:
        """Save one episode given whole columns; it is committed now or, with `commit_every` > 1, with
        the next full group (or `flush()`). A video is either uint8 (T, H, W, 3) frames, encoded here,
        or an already encoded standalone mp4 of exactly T frames, appended by stream copy (dataset edits
        use this, so editing never re-encodes); the latter needs its `image_stats`."""
        length = len(frame_tasks)
        if length == 0:
            raise ValueError("an episode needs at least one frame")
        ep = len(self.episodes) + len(self._staged)
        task_names = list(dict.fromkeys(frame_tasks))
        for t in task_names:
            if t not in self.tasks:
                self.tasks.append(t)
        cols = dict(columns)
        cols["task_index"] = np.array([self.tasks.index(t) for t in frame_tasks], np.int64)
        ep_stats: dict[str, dict[str, np.ndarray]] = {}
        staged: dict[str, Path] = {}
        self._staging.mkdir(exist_ok=True)
        for i, key in enumerate(video_keys(self.features)):
            source = videos[key]
            staged[key] = self._staging / f"{ep:06d}-{i}.mp4"
            if isinstance(source, Path):
                ep_stats[key] = (image_stats or {})[key]
                shutil.copyfile(source, staged[key])  # the caller may delete its file once we return
            else:
                ep_stats[key] = st.image_stats(source)
                encode_episode(source, staged[key], self.fps, video_encoding_of(self.features[key]))
        self._staged.append(_Staged(cols, length, task_names, staged, ep_stats))
        if len(self._staged) >= self.commit_every:
            self.flush()
        return ep

    def flush(self) -> None:
        """Commit every saved episode not yet committed: one rewrite of each video and data file, then
        the metadata, with info.json last."""
        if not self._staged:
            return
        staged, self._staged = self._staged, []
        n0, total = len(self.episodes), int(self.info["total_frames"])
        starts = []  # each episode's first global frame index
        try:
            for j, e in enumerate(staged):
                frame_index = np.arange(e.length, dtype=np.int64)
                e.cols["timestamp"] = (frame_index / self.fps).astype(np.float32)
                e.cols["frame_index"] = frame_index
                e.cols["episode_index"] = np.full(e.length, n0 + j, np.int64)
                e.cols["index"] = total + frame_index
                for key in data_keys(self.features):  # the index columns included, as LeRobot does
                    e.stats[key] = st.vector_stats(e.cols[key])
                starts.append(total)
                total += e.length
            video_rows = {key: self._append_videos(key, staged) for key in video_keys(self.features)}
            data_rows = self._write_data(staged)
        finally:
            shutil.rmtree(self._staging, ignore_errors=True)
        rows: list[dict[str, Any]] = []
        for j, (e, start) in enumerate(zip(staged, starts, strict=True)):
            # Column order as LeRobot writes it.
            row = {"episode_index": n0 + j, "tasks": e.task_names, "length": e.length, **data_rows[j]}
            row["dataset_from_index"] = start
            row["dataset_to_index"] = start + e.length
            for key in video_keys(self.features):
                row.update(video_rows[key][j])
            for feat, stats in e.stats.items():
                for name, value in stats.items():
                    row[f"stats/{feat}/{name}"] = np.asarray(value).tolist()
            row["meta/episodes/chunk_index"] = 0
            row["meta/episodes/file_index"] = 0
            rows.append(row)
        self._commit(rows, total)

    def _commit(self, rows: list[dict[str, Any]], total_frames: int) -> None:
        episodes = [*self.episodes, *rows]
        _write_parquet_atomic(
            pa.Table.from_pylist(episodes), self.root / EPISODES_PATH.format(chunk_index=0, file_index=0)
        )
        tasks_table = pa.table(
            {
                "task_index": pa.array(range(len(self.tasks)), pa.int64()),
                "__index_level_0__": pa.array(self.tasks, pa.large_string()),
            }
        ).replace_schema_metadata(_TASKS_PANDAS_METADATA)
        _write_parquet_atomic(tasks_table, self.root / TASKS_PATH)
        write_json(self.root / STATS_PATH, st.to_json(self._dataset_stats(episodes)))
        info = dict(self.info)
        info.update(
            total_episodes=len(episodes),
            total_frames=total_frames,
            total_tasks=len(self.tasks),
            splits={"train": f"0:{len(episodes)}"},
        )
        write_json(self.root / INFO_PATH, info)  # the commit point
        self.info, self.episodes = info, episodes

    def _dataset_stats(self, episodes: list[dict]) -> dict[str, dict[str, np.ndarray]]:
        out = {}
        for feat in [*video_keys(self.features), *data_keys(self.features)]:
            per_ep = [{name: np.asarray(e[f"stats/{feat}/{name}"]) for name in STAT_NAMES} for e in episodes]
            out[feat] = st.aggregate(per_ep)
        return out

    def _current(self, prefix: str) -> tuple[int, int, float]:
        """(chunk, file, committed amount) of the last committed episode's file for `prefix`
        ("data" -> rows, "videos/<key>" -> seconds), or file 0 when nothing is committed."""
        if not self.episodes:
            return 0, 0, 0.0
        last = self.episodes[-1]
        chunk, file = int(last[f"{prefix}/chunk_index"]), int(last[f"{prefix}/file_index"])
        if prefix == "data":
            used = sum(
                e["length"]
                for e in self.episodes
                if (e["data/chunk_index"], e["data/file_index"]) == (chunk, file)
            )
            return chunk, file, float(used)
        return chunk, file, float(last[f"{prefix}/to_timestamp"])

    def _append_videos(self, key: str, staged: list[_Staged]) -> list[dict[str, Any]]:
        """Append each staged episode's `key` video to the current file, starting a new file whenever
        the current one would pass the size limit; one rewrite per file touched."""
        prefix = f"videos/{key}"
        chunk, file, used_s = self._current(prefix)
        limit = int(self.info["video_files_size_in_mb"]) * 1024 * 1024

        def path(chunk: int, file: int) -> Path:
            return self.root / VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)

        target = path(chunk, file)
        size = target.stat().st_size if (self.episodes and target.exists()) else 0
        group: list[_Staged] = []
        rows: list[dict[str, Any]] = []

        def write_group() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            segments = [(e.videos[key], e.length / self.fps) for e in group]
            for e, start in zip(group, append_episodes(target, used_s, segments), strict=True):
                rows.append(
                    {
                        f"{prefix}/chunk_index": chunk,
                        f"{prefix}/file_index": file,
                        f"{prefix}/from_timestamp": start,
                        f"{prefix}/to_timestamp": start + e.length / self.fps,
                    }
                )

        for e in staged:
            seg = e.videos[key].stat().st_size
            if size > 0 and size + seg > limit:
                if group:
                    write_group()
                chunk, file = chunk_file(chunk * CHUNKS_SIZE + file + 1)
                target, used_s, size, group = path(chunk, file), 0.0, 0, []
            group.append(e)
            size += seg
        write_group()
        return rows

    def _write_data(self, staged: list[_Staged]) -> list[dict[str, Any]]:
        """Append the staged episodes' rows to the current data file (a new file when it would pass the
        size limit, judged by the bytes per row already on disk); one write per file touched."""
        schema = arrow_schema(self.features)
        chunk, file, used_rows = self._current("data")
        target = self.root / DATA_PATH.format(chunk_index=chunk, file_index=file)
        parts: list[pa.Table] = []
        bytes_per_row = 0.0
        if self.episodes and target.exists():
            old = pq.read_table(target).slice(0, int(used_rows)).cast(schema)
            parts.append(old)
            bytes_per_row = target.stat().st_size / max(old.num_rows, 1)
        rows_in_file = sum(p.num_rows for p in parts)
        limit = int(self.info["data_files_size_in_mb"]) * 1024 * 1024
        out: list[dict[str, Any]] = []

        def write() -> None:
            table = pa.concat_tables(parts).replace_schema_metadata(schema.metadata)
            _write_parquet_atomic(table, target)

        for e in staged:
            table = _arrow_table(e.cols, schema)
            # A file begun in this group has no size on disk yet: judge it by the in-memory size
            # (an overestimate for compressible data, so the file stays under the limit).
            per_row = bytes_per_row or sum(p.nbytes for p in parts) / max(rows_in_file, 1)
            if rows_in_file and (rows_in_file + e.length) * per_row > limit:
                write()
                chunk, file = chunk_file(chunk * CHUNKS_SIZE + file + 1)
                target = self.root / DATA_PATH.format(chunk_index=chunk, file_index=file)
                parts, rows_in_file, bytes_per_row = [], 0, 0.0
            parts.append(table)
            rows_in_file += e.length
            out.append({"data/chunk_index": chunk, "data/file_index": file})
        write()
        return out


def _arrow_table(cols: dict[str, np.ndarray], schema: pa.Schema) -> pa.Table:
    arrays = []
    for field in schema:
        v = cols[field.name]
        if pa.types.is_fixed_size_list(field.type):
            arrays.append(
                pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1), field.type.value_type), v.shape[1])
            )
        else:
            arrays.append(pa.array(v.reshape(len(v)), field.type))
    return pa.Table.from_arrays(arrays, schema=schema)
