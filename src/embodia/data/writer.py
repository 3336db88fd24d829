"""Write LeRobotDataset v3.0 datasets, one episode at a time, crash-safe.

Each `save_episode()` is a small transaction. Everything is first written beside its target under a
temporary name, then renamed into place in this order: videos, data parquet, episodes parquet, tasks,
stats, and last `meta/info.json`, whose totals are the commit point. A reader (and `resume`) trusts only
what info.json counts, so a `kill -9` at any moment loses at most the episode being saved, and whatever
that episode had already renamed into place is ignored and overwritten by the next save.

Files rotate like LeRobot's: a new data (video) file starts when the current one would pass
`data_files_size_in_mb` (`video_files_size_in_mb`), with at most 1000 files per chunk folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
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
from embodia.data.video import append_episode, encode_episode

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
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


class DatasetWriter:
    """Append episodes to a LeRobotDataset v3.0 folder.

    >>> w = DatasetWriter.create(root, features, fps=30, robot_type="so101_follower")
    >>> for frame in episode: w.add_frame(frame)     # dict: feature arrays + "task"
    >>> w.save_episode()
    """

    def __init__(self, root: Path, info: dict, episodes: list[dict], tasks: list[str]):
        self.root = root
        self.info = info
        self.features: dict = info["features"]
        self.fps: int = int(info["fps"])
        self.episodes = episodes  # committed episode rows
        self.tasks = tasks
        self._buffer: list[dict[str, Any]] = []
        self._staging = root / ".staging"

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
        return cls(root, info, [], [])

    @classmethod
    def resume(cls, root: str | Path) -> DatasetWriter:
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
        return cls(root, info, episodes, tasks)

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
        """Commit one episode given whole columns. A video is either uint8 (T, H, W, 3) frames, encoded
        here, or an already encoded standalone mp4 of exactly T frames, appended by stream copy (dataset
        edits use this, so editing never re-encodes); the latter needs its `image_stats`."""
        length = len(frame_tasks)
        if length == 0:
            raise ValueError("an episode needs at least one frame")
        ep = len(self.episodes)
        start = int(self.info["total_frames"])
        task_names = list(dict.fromkeys(frame_tasks))
        for t in task_names:
            if t not in self.tasks:
                self.tasks.append(t)
        task_index = np.array([self.tasks.index(t) for t in frame_tasks], np.int64)
        cols = dict(columns)
        frame_index = np.arange(length, dtype=np.int64)
        cols["timestamp"] = (frame_index / self.fps).astype(np.float32)
        cols["frame_index"] = frame_index
        cols["episode_index"] = np.full(length, ep, np.int64)
        cols["index"] = start + frame_index
        cols["task_index"] = task_index

        ep_stats: dict[str, dict[str, np.ndarray]] = {}
        video_rows: dict[str, Any] = {}
        self._staging.mkdir(exist_ok=True)
        try:
            for key in video_keys(self.features):
                source = videos[key]
                if isinstance(source, Path):
                    ep_stats[key] = (image_stats or {})[key]
                    encoded = source
                else:
                    ep_stats[key] = st.image_stats(source)
                    encoded = self._staging / f"{key}.mp4"
                    encode_episode(source, encoded, self.fps, video_encoding_of(self.features[key]))
                video_rows.update(self._append_video(key, encoded, length))
            data_row = self._write_data(cols, length)
        finally:
            shutil.rmtree(self._staging, ignore_errors=True)
        # Column order as LeRobot writes it.
        row: dict[str, Any] = {"episode_index": ep, "tasks": task_names, "length": length, **data_row}
        row["dataset_from_index"] = start
        row["dataset_to_index"] = start + length
        row.update(video_rows)
        for key in data_keys(self.features):
            ep_stats[key] = st.vector_stats(cols[key])
        for feat, s in ep_stats.items():
            for name, value in s.items():
                row[f"stats/{feat}/{name}"] = np.asarray(value).tolist()
        row["meta/episodes/chunk_index"] = 0
        row["meta/episodes/file_index"] = 0

        episodes = [*self.episodes, row]
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
            total_episodes=ep + 1,
            total_frames=start + length,
            total_tasks=len(self.tasks),
            splits={"train": f"0:{ep + 1}"},
        )
        write_json(self.root / INFO_PATH, info)  # the commit point
        self.info, self.episodes = info, episodes
        return ep

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

    def _append_video(self, key: str, encoded: Path, length: int) -> dict[str, Any]:
        prefix = f"videos/{key}"
        chunk, file, used_s = self._current(prefix)
        target = self.root / VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
        limit = int(self.info["video_files_size_in_mb"]) * 1024 * 1024
        if self.episodes and target.exists() and target.stat().st_size + encoded.stat().st_size > limit:
            chunk, file = chunk_file(chunk * CHUNKS_SIZE + file + 1)
            target = self.root / VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
            used_s = 0.0
        target.parent.mkdir(parents=True, exist_ok=True)
        start = append_episode(target, used_s, encoded)
        return {
            f"{prefix}/chunk_index": chunk,
            f"{prefix}/file_index": file,
            f"{prefix}/from_timestamp": start,
            f"{prefix}/to_timestamp": start + length / self.fps,
        }

    def _write_data(self, cols: dict[str, np.ndarray], length: int) -> dict[str, Any]:
        schema = arrow_schema(self.features)
        arrays = []
        for field in schema:
            v = cols[field.name]
            if pa.types.is_fixed_size_list(field.type):
                arrays.append(
                    pa.FixedSizeListArray.from_arrays(
                        pa.array(v.reshape(-1), field.type.value_type), v.shape[1]
                    )
                )
            else:
                arrays.append(pa.array(v.reshape(len(v)), field.type))
        new = pa.Table.from_arrays(arrays, schema=schema)
        chunk, file, used_rows = self._current("data")
        target = self.root / DATA_PATH.format(chunk_index=chunk, file_index=file)
        old = pq.read_table(target).slice(0, int(used_rows)) if (self.episodes and target.exists()) else None
        limit = int(self.info["data_files_size_in_mb"]) * 1024 * 1024
        if old is not None and target.stat().st_size * (1 + length / max(old.num_rows, 1)) > limit:
            chunk, file = chunk_file(chunk * CHUNKS_SIZE + file + 1)
            target = self.root / DATA_PATH.format(chunk_index=chunk, file_index=file)
            old = None
        table = new if old is None else pa.concat_tables([old.cast(schema), new])
        _write_parquet_atomic(table.replace_schema_metadata(schema.metadata), target)
        return {"data/chunk_index": chunk, "data/file_index": file}
