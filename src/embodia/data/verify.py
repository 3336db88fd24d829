"""Read a whole dataset and report every file that is corrupt or disagrees with the metadata.

`LeRobotDataset.open` checks the metadata (info.json, tasks, episodes, totals) and that every file it
points at exists, but reads no frame data; a truncated data parquet or a damaged mp4 then surfaces only
when training reaches that episode. `verify(root)` reads everything, one file at a time and never more
than a batch of rows or a single frame at once:

- every parquet file in full, every column (meta/episodes, the data files), with the row counts
  against the metadata: each data file must hold exactly the rows of its episodes, whose `index`,
  `episode_index`, `frame_index` and `timestamp` columns must be the ranges meta/episodes gives, and
  every column must have its feature's shape;
- every frame of every mp4, decoded: each episode needs one frame at each of its timestamps
  (from_timestamp + i / fps), exactly `length` of them in its segment, at the feature's size, and the
  container must hold as many frames as the decoder returns.

MP4 has no checksums, so a damaged frame that the decoder accepts (it conceals errors it cannot see) is
not found; anything the decoder rejects, and any missing, extra or misplaced frame, is.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from embodia.data.format import DatasetError, data_keys
from embodia.data.reader import (
    TIMESTAMP_TOLERANCE_S,
    LeRobotDataset,
    _column_to_numpy,
    _decode_images,
    _match_timestamps,
)

BATCH_ROWS = 4096
# Columns whose values meta/episodes fixes row by row.
_INDEX_COLUMNS = ("index", "episode_index", "frame_index", "timestamp")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file."""

    file: Path
    what: str

    def __str__(self) -> str:
        return f"{self.file}: {self.what}"


def _problem(path: Path, exc: Exception) -> Problem:
    """A DatasetError (whose message starts with the file it names) as a Problem of `path`."""
    text = str(exc)
    prefix = f"{path}: "
    return Problem(path, text[len(prefix) :] if text.startswith(prefix) else text)


def verify(root: str | Path, progress: Callable[[str], None] | None = None) -> list[Problem]:
    """Every problem found by reading the dataset at `root` in full (empty when it is sound).
    `progress`, if given, is called with each file's path before that file is read."""
    try:
        ds = LeRobotDataset.open(root)
    except DatasetError as exc:  # the metadata itself: nothing else can be checked against it
        text = str(exc)
        file, sep, what = text.partition(": ")
        named = sep and file.startswith(str(Path(root)))  # the message starts with the file it names
        return [Problem(Path(file), what) if named else Problem(Path(root), text)]
    note = progress or (lambda _: None)
    problems: list[Problem] = []
    if ds.version == "v3.0":
        for path in sorted((ds.root / "meta" / "episodes").glob("chunk-*/file-*.parquet")):
            note(str(path))
            problems += _verify_parquet(path, lambda _batch, _start: [])
    by_file: dict[str, list[dict]] = defaultdict(list)
    for ep in ds.episodes:
        by_file[ep["data_file"]].append(ep)
    for rel, episodes in by_file.items():
        note(str(ds.root / rel))
        problems += _verify_data_file(ds, ds.root / rel, episodes)
    for key in ds.camera_keys:
        if ds.features[key]["dtype"] != "video":
            continue  # images in the data parquet were decoded with its rows
        segments: dict[str, list[dict]] = defaultdict(list)
        for ep in ds.episodes:
            segments[ep["videos"][key]["file"]].append(ep)
        for rel, episodes in segments.items():
            note(str(ds.root / rel))
            problems += _verify_video(ds, key, ds.root / rel, episodes)
    return problems


# -- parquet -------------------------------------------------------------------------------------------


def _verify_parquet(path: Path, check: Callable[[pa.RecordBatch, int], list[str]]) -> list[Problem]:
    """Read every row of every column of `path`, batch by batch, calling `check(batch, first_row)`;
    the rows read must be as many as the footer says."""
    rows = 0
    try:
        pf = pq.ParquetFile(path)
        declared = pf.metadata.num_rows
        found: list[str] = []
        for batch in pf.iter_batches(batch_size=BATCH_ROWS):
            found += check(batch, rows)
            rows += batch.num_rows
    except (pa.ArrowException, OSError) as exc:
        where = f" after {rows} rows" if rows else ""
        return [Problem(path, f"unreadable parquet{where} ({exc})")]
    except DatasetError as exc:
        return [_problem(path, exc)]
    out = [Problem(path, what) for what in dict.fromkeys(found)]  # one line per distinct finding
    if rows != declared:
        out.append(Problem(path, f"{rows} rows read, the file's footer says {declared}"))
    return out


def _expected_columns(ds: LeRobotDataset, episodes: list[dict]) -> dict[str, np.ndarray]:
    """The index columns a data file holding `episodes` (consecutive, in order) must have."""
    lengths = [ep["length"] for ep in episodes]
    start = min(ep["dataset_from_index"] for ep in episodes)
    frame_index = np.concatenate([np.arange(n) for n in lengths])
    return {
        "index": np.arange(start, start + sum(lengths)),
        "episode_index": np.repeat([ep["episode_index"] for ep in episodes], lengths),
        "frame_index": frame_index,
        "timestamp": frame_index / ds.fps,
    }


def _verify_data_file(ds: LeRobotDataset, path: Path, episodes: list[dict]) -> list[Problem]:
    expected = _expected_columns(ds, episodes)
    n_expected = len(expected["index"])
    names = ", ".join(str(ep["episode_index"]) for ep in episodes[:5]) + (
        ", ..." if len(episodes) > 5 else ""
    )
    keys = data_keys(ds.features)
    images = [k for k in ds.camera_keys if ds.features[k]["dtype"] == "image"]

    reported: set[str] = set()  # the first disagreement of each column is enough

    def check(batch: pa.RecordBatch, first: int) -> list[str]:
        found = [f"missing column {k}" for k in keys + images if k not in batch.schema.names]
        end = min(first + batch.num_rows, n_expected)
        for k in keys:
            if k not in batch.schema.names:
                continue
            values = _column_to_numpy(k, pa.chunked_array([batch.column(k)]), ds.features[k], path)
            if k not in _INDEX_COLUMNS or end <= first or k in reported:
                continue
            have, want = values[: end - first], expected[k][first:end]
            tol = TIMESTAMP_TOLERANCE_S if k == "timestamp" else 0
            bad = np.flatnonzero(np.abs(have.astype(np.float64) - want) > tol)
            if len(bad):
                reported.add(k)
                i = int(bad[0])
                found.append(
                    f"column {k}: row {first + i} holds {have[i]}, meta/episodes implies {want[i]:g}"
                )
        for k in images:
            if k in batch.schema.names:
                _decode_images(pa.chunked_array([batch.column(k)]), path)
        return found

    problems = _verify_parquet(path, check)
    try:
        rows = pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowException, OSError):
        return problems  # already reported as unreadable
    if rows != n_expected:
        problems.append(
            Problem(path, f"has {rows} rows, but episodes {names} in meta/episodes have {n_expected} frames")
        )
    return problems


# -- video ---------------------------------------------------------------------------------------------


def _decode_times(path: Path, shape: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
    """Decode every frame (one at a time, none kept); returns their presentation times and findings."""
    times: list[float] = []
    found: list[str] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            declared = stream.frames
            for frame in container.decode(stream):
                if (frame.height, frame.width) != shape and not found:
                    found.append(
                        f"frame {len(times)} is {frame.height}x{frame.width}, the feature says {shape[0]}x{shape[1]}"
                    )
                if frame.pts is not None:
                    times.append(float(frame.pts * stream.time_base))
    except (av.FFmpegError, OSError, IndexError) as exc:
        at = f" at t={times[-1]:.4f}s" if times else ""
        found.append(f"corrupt or truncated video: decoding failed after {len(times)} frames{at} ({exc})")
        return np.array(times), found
    if declared and declared != len(times):
        found.append(f"the container lists {declared} frames, {len(times)} decoded")
    return np.array(times), found


def _verify_video(ds: LeRobotDataset, key: str, path: Path, episodes: list[dict]) -> list[Problem]:
    shape = tuple(int(s) for s in ds.features[key]["shape"][:2])
    times, found = _decode_times(path, shape)
    problems = [Problem(path, what) for what in found]
    if found and found[-1].startswith("corrupt"):
        return problems  # every episode after the failure would be reported missing too
    for ep in episodes:
        seg = ep["videos"][key]
        wanted = seg["from_timestamp"] + np.arange(ep["length"]) / ds.fps
        label = f"episode {ep['episode_index']} ({key})"
        try:
            _match_timestamps(path, wanted, times)
        except DatasetError as exc:
            problems.append(Problem(path, f"{label}: {_problem(path, exc).what}"))
            continue
        lo, hi = wanted[0] - TIMESTAMP_TOLERANCE_S, wanted[-1] + TIMESTAMP_TOLERANCE_S
        n = int(np.count_nonzero((times >= lo) & (times <= hi)))
        if n != ep["length"]:
            problems.append(Problem(path, f"{label}: {n} frames in its segment, length is {ep['length']}"))
        end = seg["from_timestamp"] + ep["length"] / ds.fps
        if abs(seg["to_timestamp"] - end) > 0.5 / ds.fps:
            problems.append(
                Problem(
                    path,
                    f"{label}: to_timestamp {seg['to_timestamp']:.4f}s, from_timestamp + length / fps is {end:.4f}s",
                )
            )
    return problems
