"""Plant one data defect per doctor check into copies of a clean dataset, then see whether the doctor
finds each one, in the right episode and frames.

    python benchmarks/plant_defects.py --src CLEAN_DATASET --out planted [--defects idle_start,...]

Each defect is planted close to its check's threshold (a 0.6 s idle start against 0.5 s, one 10 sigma
spike against 8 sigma, mean gray 40 against 50, ...) into ONE episode of an otherwise untouched copy,
so a detection is evidence the threshold sits where it claims, and silence on the clean copy is
evidence it does not fire on good data. Copies are written with embodia's `DatasetWriter`; episodes
whose frames are unchanged are stream-copied (no re-encode), the tampered ones re-encoded. Metadata
defects (timestamps, indices, stats.json) are edited into the written copy afterwards.

Prints one row per defect (detected? right episode? right frames? severity) and exits 1 if any defect
goes unnoticed. The test suite (tests/data/test_doctor.py) imports `plant` and `DEFECTS` from here.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from embodia.data import doctor_checks as dc
from embodia.data import doctor_motion as dm
from embodia.data.doctor import diagnose
from embodia.data.doctor_report import Diagnosis
from embodia.data.format import INDEX_FEATURES, STAT_NAMES, data_keys
from embodia.data.reader import LeRobotDataset
from embodia.data.video import extract_segment
from embodia.data.writer import DatasetWriter

_GRAY = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass
class Planted:
    defect: str
    check: str
    episode: int | None  # None: a dataset-wide defect
    frames: tuple[int, int] | None  # inclusive range the evidence must overlap
    description: str
    root: Path


@dataclass
class _Ep:
    """One episode of the copy: its columns and per-frame tasks, and the source episode whose video
    segments are stream-copied for every camera not given new `frames`."""

    src: int
    columns: dict[str, np.ndarray]
    tasks: list[str]
    frames: dict[str, np.ndarray] = field(default_factory=dict)
    drop_last_frame: set[str] = field(default_factory=set)


class _Copy:
    """A clean dataset loaded for tampering, and the writer of the tampered copy."""

    def __init__(self, src: Path):
        self.ds = LeRobotDataset.open(src)
        self.fps = self.ds.fps
        self.clean = diagnose(src, video=False, checks=["actions.jumps", "actions.clipping"])
        self.scan = self.clean.scan
        keys = [k for k in data_keys(self.ds.features) if k not in INDEX_FEATURES]
        self.eps: list[_Ep] = []
        for e in self.ds.episodes:
            data = self.ds.episode_data(e["episode_index"])
            tasks = [self.ds.tasks[int(t)] for t in data["task_index"]]
            self.eps.append(_Ep(e["episode_index"], {k: data[k].copy() for k in keys}, tasks))
        self.features = dict(self.ds.features)
        self.renamed: dict[str, str] = {}

    def frames(self, ep: _Ep, key: str) -> np.ndarray:
        if key not in ep.frames:
            ep.frames[key] = self.ds.episode_frames(ep.src, key).copy()
        return ep.frames[key]

    def write(self, out: Path) -> Path:
        image_stats = _source_image_stats(self.ds)
        segments = _segments(self.ds)
        # Size limits of 0 put every episode in its own data and video file: appending to one shared
        # mp4 rewrites it per episode, which made planting quadratic in the number of episodes.
        writer = DatasetWriter.create(
            out, self.features, fps=self.fps, robot_type=self.ds.robot_type or "unknown",
            data_files_size_in_mb=0, video_files_size_in_mb=0,
        )  # fmt: skip
        tmp = Path(tempfile.mkdtemp(prefix="plant-"))
        try:
            for ep in self.eps:
                videos, stats = {}, {}
                for key in self.ds.camera_keys:
                    name = self.renamed.get(key, key)
                    if key in ep.frames:
                        videos[name] = ep.frames[key]
                        continue
                    videos[name] = segments[(ep.src, key)]
                    if key in ep.drop_last_frame:
                        videos[name] = tmp / "short.mp4"
                        extract_segment(
                            segments[(ep.src, key)], 0.0, (len(ep.tasks) - 1) / self.fps, videos[name]
                        )
                    stats[name] = image_stats[(ep.src, key)]
                writer.write_episode(ep.columns, ep.tasks, videos, stats)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return out

    # -- helpers for choosing where to plant ----------------------------------------------------------

    def busiest(self, ep: _Ep, n: int) -> int:
        """Start of the n-frame window where the state moves most (away from the episode's ends)."""
        s = ep.columns["observation.state"]
        speed = np.abs(np.diff(s, axis=0) / self.scan.s_range).max(axis=1)
        margin = max(2, len(s) // 10)
        sums = np.convolve(speed, np.ones(n), mode="valid")
        lo, hi = margin, max(margin + 1, len(sums) - margin)
        return int(lo + np.argmax(sums[lo:hi]))


_SEGMENT_CACHE: dict[Path, dict[tuple[int, str], Path]] = {}


def _segments(ds: LeRobotDataset) -> dict[tuple[int, str], Path]:
    """Every (episode, camera) video segment of `ds` as a standalone mp4, split in one demux pass per
    file and cached per dataset: `extract_segment` per episode re-reads the whole file each time, which
    made planting quadratic in the number of episodes."""
    import av

    if ds.root in _SEGMENT_CACHE:
        return _SEGMENT_CACHE[ds.root]
    folder = Path(tempfile.mkdtemp(prefix="plant-segments-"))
    out: dict[tuple[int, str], Path] = {}
    for key in ds.camera_keys:
        by_file: dict[str, list[tuple[float, float, int]]] = {}
        for e in ds.episodes:
            v = e["videos"][key]
            by_file.setdefault(v["file"], []).append(
                (v["from_timestamp"], v["to_timestamp"], e["episode_index"])
            )
        for rel, segs in by_file.items():
            with av.open(str(ds.root / rel)) as inp:
                stream = inp.streams.video[0]
                sinks = {}
                for start, _, ep in segs:
                    out[(ep, key)] = folder / f"{ep}-{len(out)}.mp4"
                    dst = av.open(str(out[(ep, key)]), mode="w")
                    ostream = dst.add_stream_from_template(stream, opaque=True)
                    ostream.time_base = stream.time_base
                    sinks[ep] = (dst, ostream, start)
                tb = float(stream.time_base)
                for packet in inp.demux(stream):
                    if packet.pts is None or packet.size == 0:
                        continue
                    t = packet.pts * tb
                    hit = [ep for a, b, ep in segs if a - 1e-4 <= t < b - 1e-4]
                    if not hit:
                        continue
                    dst, ostream, start = sinks[hit[0]]
                    dts = packet.dts if packet.dts is not None else packet.pts
                    packet.pts, packet.dts = round((t - start) / tb), round((dts * tb - start) / tb)
                    packet.stream = ostream
                    dst.mux(packet)
                for dst, _, _ in sinks.values():
                    dst.close()
    _SEGMENT_CACHE[ds.root] = out
    return out


def _source_image_stats(ds: LeRobotDataset) -> dict[tuple[int, str], dict[str, np.ndarray]]:
    """Per-episode image stats as the source's episode metadata stores them (decoded when absent)."""
    out = {}
    tables = [pq.read_table(p) for p in sorted((ds.root / "meta/episodes").rglob("*.parquet"))]
    rows = {r["episode_index"]: r for t in tables for r in t.to_pylist()}
    from embodia.data import stats as st

    for e in ds.episodes:
        i = e["episode_index"]
        for key in ds.camera_keys:
            names = [f"stats/{key}/{n}" for n in STAT_NAMES]
            if all(n in rows[i] for n in names):
                out[(i, key)] = {n: np.asarray(rows[i][f"stats/{key}/{n}"]) for n in STAT_NAMES}
            else:
                out[(i, key)] = st.image_stats(ds.episode_frames(i, key))
    return out


def _edit_rows(root: Path, episode: int, column: str, fn: Callable[[np.ndarray], np.ndarray]) -> None:
    """Rewrite one column of one episode's rows in the written copy's data parquet."""
    ds = LeRobotDataset.open(root)
    ep = ds.episode(episode)
    path = root / ep["data_file"]
    table = pq.read_table(path)
    first = min(e["dataset_from_index"] for e in ds.episodes if e["data_file"] == ep["data_file"])
    values = table.column(column).to_numpy().copy()
    a = ep["dataset_from_index"] - first
    values[a : a + ep["length"]] = fn(values[a : a + ep["length"]])
    i = table.schema.get_field_index(column)
    table = table.set_column(i, table.schema.field(i), pa.array(values, table.schema.field(i).type))
    pq.write_table(table, path)


# ---- the defects -----------------------------------------------------------------------------------
# Each takes the loaded copy and the episode to tamper with, edits it in place and returns
# (frames the evidence must overlap or None, description, post-write edit or None).

Post = Callable[[Path], None] | None


def _timestamps(fn, what):
    def plant(c: _Copy, k: int):
        n = len(c.eps[k].tasks)
        f = n // 2
        return (
            (max(f - 1, 0), f + 1),
            what,
            lambda root: _edit_rows(root, k, "timestamp", lambda t: fn(t, f, c.fps)),
        )

    return plant


def _backwards(t, f, fps):
    t[f], t[f + 1] = t[f + 1], t[f]
    return t


def _gap(t, f, fps):
    t[f:] += np.float32(0.6 / fps)  # a 1.6 frame-period step against the 1.5 threshold
    return t


def _drift(t, f, fps):
    return (np.arange(len(t)) / fps * 1.12).astype(t.dtype)  # fps / 1.12: 10.7 % off, threshold 10 %


def frame_index_skip(c, k):
    f = len(c.eps[k].tasks) // 2

    def post(root: Path) -> None:
        _edit_rows(root, k, "frame_index", lambda x: np.where(np.arange(len(x)) >= f, x + 1, x))

    return (f, f), "frame_index skips a number half way", post


def missing_video_frame(c, k):
    ep = c.eps[k]
    ep.drop_last_frame.add(c.ds.camera_keys[0])
    n = len(ep.tasks)
    return (n - 1, n - 1), f"{c.ds.camera_keys[0]} lacks the episode's last frame", None


def _truncate(c, ep, n):
    ep.columns = {key: v[:n] for key, v in ep.columns.items()}
    ep.tasks = ep.tasks[:n]
    for key in c.ds.camera_keys:
        ep.frames[key] = c.frames(ep, key)[:n]


def short_episode(c, k):
    median = np.median([len(e.tasks) for e in c.eps])
    # Under both limits (with room: cutting this episode lowers the median the doctor sees).
    n = min(max(dc.SHORT_FAIL_FRAMES, c.fps) - 1, math.floor(0.9 * dc.SHORT_FRACTION * median))
    _truncate(c, c.eps[k], n)
    return (
        (0, n - 1),
        f"episode cut to {n} frames (under fps = {c.fps} and half the median {median:.0f})",
        None,
    )


def long_episode(c, k):
    lengths = np.array([len(e.tasks) for e in c.eps])
    q1, q3 = np.percentile(lengths, [25, 75])
    iqr = max(q3 - q1, dc.IQR_FLOOR * float(np.median(lengths)))
    target = math.ceil(1.1 * (q3 + dc.TUKEY_K * iqr))
    ep, j = c.eps[k], k + 1
    for key in c.ds.camera_keys:
        c.frames(ep, key)
    while len(ep.tasks) < target:  # two demonstrations saved as one
        other = c.eps[j % len(c.eps)]
        ep.columns = {key: np.concatenate([v, other.columns[key]]) for key, v in ep.columns.items()}
        ep.tasks = ep.tasks + [ep.tasks[-1]] * len(other.tasks)
        for key in c.ds.camera_keys:
            ep.frames[key] = np.concatenate([ep.frames[key], c.frames(other, key)])
        j += 1
    _truncate(c, ep, target)
    return (0, target - 1), f"{target} frames, 10 % past the upper Tukey fence", None


def near_duplicate(c, k):
    src, j = c.eps[k], (k + 1) % len(c.eps)
    rng = np.random.default_rng(0)
    cols = {key: v.copy() for key, v in src.columns.items()}
    for key, r in (("action", c.scan.a_range), ("observation.state", c.scan.s_range)):
        cols[key] = (cols[key] + rng.normal(0, 1e-3, cols[key].shape) * r).astype(cols[key].dtype)
    c.eps[j] = _Ep(src.src, cols, list(src.tasks))
    return None, f"episode {j} replaced by a copy of {k} with 0.1 % noise", None


def task_imbalance(c, k):
    common = c.eps[0 if k else 1].tasks[0]
    rare = next((e.tasks[0] for e in c.eps if e.tasks[0] != common), common + " slowly")
    for i, ep in enumerate(c.eps):
        ep.tasks = [rare if i == k else common] * len(ep.tasks)
    return None, f"{len(c.eps) - 1} episodes of one task, 1 of another ({len(c.eps) - 1}x)", None


def generic_task(c, k):
    c.eps[k].tasks = ["task1"] * len(c.eps[k].tasks)
    return None, "task string 'task1'", None


def camera_name(c, k):
    key = c.ds.camera_keys[-1]
    new = key.rsplit(".", 1)[-1] + "_cam"
    c.renamed[key] = new
    c.features = {new if name == key else name: f for name, f in c.features.items()}
    return None, f"camera {key!r} renamed {new!r}", None


def idle_start(c, k):
    ep, n = c.eps[k], round(0.6 * c.fps)  # 0.6 s against the 0.5 s threshold
    ep.columns = {key: np.concatenate([np.repeat(v[:1], n, axis=0), v]) for key, v in ep.columns.items()}
    ep.tasks = ep.tasks[:1] * n + ep.tasks
    for key in c.ds.camera_keys:
        fr = c.frames(ep, key)
        ep.frames[key] = np.concatenate([np.repeat(fr[:1], n, axis=0), fr])
    return (0, n - 1), f"{n} still frames ({n / c.fps:.2f} s) prepended", None


def frozen_action(c, k):
    ep = c.eps[k]
    n = max(math.ceil(dc.FROZEN_FRACTION * len(ep.tasks)), math.ceil(dc.FROZEN_SECONDS * c.fps)) + 2
    f = c.busiest(ep, n)
    ep.columns["action"][f : f + n] = ep.columns["action"][f]
    return (f, f + n - 1), f"action held for {n} frames while the state moves", None


def action_spike(c, k):
    key, dims, sig = dm.jump_sigmas(c.scan)
    d = max(dims, key=lambda i: sig[i])
    ep = c.eps[k]
    f = len(ep.tasks) // 2
    ep.columns[key][f, d] += 10 * sig[d]  # 10 sigma against the 8 sigma threshold
    return (f, f), f"{key}[{d}] +10 sigma at one frame", None


def clipped_actions(c, k):
    ep, s = c.eps[k], c.scan
    a = ep.columns["action"]
    dims = s.motion_dims("action")
    if s.kind == "ee_delta":
        n = math.ceil(0.55 * len(a))
        a[:n, dims] = np.where(a[:n, dims] >= 0, s.action_high[dims], s.action_low[dims])
    else:
        d = max(dims, key=lambda i: np.ptp(a[:, i]) / (s.action_high[i] - s.action_low[i]))
        a[:, d] = np.minimum(a[:, d] + s.action_high[d] - np.quantile(a[:, d], 0.45), s.action_high[d])
    return None, "55 % of frames at an action bound", None


def stuck_state(c, k):
    ep = c.eps[k]
    d = max(c.scan.paired(), key=lambda i: np.ptp(ep.columns["action"][:, i]) / c.scan.a_range[i])
    ep.columns["observation.state"][:, d] = ep.columns["observation.state"][0, d]
    return (0, len(ep.tasks) - 1), f"state[{d}] constant for the whole episode", None


def gripper_chatter(c, k):
    g = c.scan.grip_action
    a = c.eps[k].columns["action"]
    grip = np.concatenate([e.columns["action"][:, g] for e in c.eps])
    lo, hi = np.quantile(grip, 0.01), np.quantile(grip, 0.99)  # the dataset's open and closed commands
    level = a[:, g] > (lo + hi) / 2
    best = max(dc.runs(level) + dc.runs(~level), key=lambda r: r[1] - r[0])  # longest steady stretch
    n = round(0.2 * c.fps)  # 0.2 s reversal against 0.25 s
    f = (best[0] + best[1]) // 2
    a[f : f + n, g] = lo if level[f] else hi
    return (f, f + n), f"gripper command flips for {n} frames ({n / c.fps:.2f} s)", None


def action_lag(c, k):
    ep = c.eps[k]
    n = math.ceil(dc.LAG_DEVIATION_S * c.fps) + 1
    a = ep.columns["action"]
    ep.columns["action"] = np.concatenate([np.repeat(a[:1], n, axis=0), a[:-n]])
    return None, f"actions recorded {n} frames late", None


def calibration_offset(c, k):
    if c.scan.kind != "joint_abs":
        raise ValueError("calibration offsets are planted into joint_abs datasets only")
    ep, d = c.eps[k], c.scan.paired()[0]
    ep.columns["observation.state"][:, d] -= 0.04 * c.scan.s_range[d]  # 4 % against 3 %
    return None, f"state[{d}] offset by 4 % of its range", None


def dark_camera(c, k):
    key = c.ds.camera_keys[0]
    # The check's threshold is min(50, half the camera's median gray); plant 80 % of it (40 for a
    # camera brighter than 100), using the per-episode channel means of the source's stats.
    stats = _source_image_stats(c.ds)
    grays = [255 * float(np.asarray(stats[(e.src, key)]["mean"]).reshape(-1)[:3] @ _GRAY) for e in c.eps]
    target = 0.8 * min(dc.BLACK_GRAY, dc.BLACK_RELATIVE * float(np.median(grays)))
    fr = c.frames(c.eps[k], key).astype(np.float32)
    c.eps[k].frames[key] = np.clip(fr * (target / (fr @ _GRAY).mean()), 0, 255).astype(np.uint8)
    return (0, len(fr) - 1), f"{key} darkened to mean gray {target:.0f}", None


def frozen_camera(c, k):
    key, ep = c.ds.camera_keys[0], c.eps[k]
    n = math.ceil(dc.FROZEN_SECONDS * c.fps) + 2
    f = c.busiest(ep, n)
    fr = c.frames(ep, key)
    fr[f : f + n] = fr[f]
    return (
        (f + 1, f + n - 1),
        f"{key} repeats one image for {n} frames ({n / c.fps:.2f} s) while the arm moves",
        None,
    )


def blurred_camera(c, k):
    from embodia.data.doctor import _frame_measures

    key = c.ds.camera_keys[-1]
    fr = c.frames(c.eps[k], key).astype(np.float32)
    p = np.pad(fr, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    box = sum(p[:, i : i + fr.shape[1], j : j + fr.shape[2]] for i in range(3) for j in range(3)) / 9
    sharp = float(np.nanmedian(_frame_measures(fr.astype(np.uint8))[2]))
    # Mix in just enough of a 3x3 box blur to bring the doctor's sharpness to 40 % of this episode's
    # own (threshold 50 %); re-encoding softens it a little more.
    for alpha in np.linspace(0.1, 1.0, 19):
        mixed = np.clip(fr + alpha * (box - fr), 0, 255).astype(np.uint8)
        ratio = float(np.nanmedian(_frame_measures(mixed)[2])) / sharp
        if ratio <= 0.4:
            break
    c.eps[k].frames[key] = mixed
    return (0, len(fr) - 1), f"{key} blurred to {ratio:.0%} of its sharpness", None


def stale_stats(c, k):
    def post(root: Path) -> None:
        path = root / "meta/stats.json"
        stats = json.loads(path.read_text())
        stats["action"]["mean"][0] += 0.12 * stats["action"]["std"][0]  # 12 % of std against 10 %
        path.write_text(json.dumps(stats, indent=4))

    return None, "stats.json action mean[0] off by 0.12 std", post


def nan_action(c, k):
    f = len(c.eps[k].tasks) // 2
    c.eps[k].columns["action"][f, 0] = np.nan
    return (f, f), "NaN in one action", None


DEFECTS: dict[str, tuple[str, Callable]] = {
    "timestamp_backwards": ("timestamps.monotonic", _timestamps(_backwards, "two timestamps swapped")),
    "timestamp_gap": ("timestamps.gaps", _timestamps(_gap, "timestamps jump by 1.6 frame periods")),
    "fps_drift": ("timestamps.fps_drift", _timestamps(_drift, "timestamps 12 % slower than fps")),
    "frame_index_skip": ("index.contiguity", frame_index_skip),
    "missing_video_frame": ("video.frame_count", missing_video_frame),
    "nan_action": ("actions.finite", nan_action),
    "short_episode": ("episodes.short", short_episode),
    "long_episode": ("episodes.length_outliers", long_episode),
    "near_duplicate": ("episodes.near_duplicates", near_duplicate),
    "task_imbalance": ("tasks.imbalance", task_imbalance),
    "generic_task": ("tasks.strings", generic_task),
    "camera_name": ("cameras.naming", camera_name),
    "idle_start": ("actions.idle_ends", idle_start),
    "frozen_action": ("actions.frozen", frozen_action),
    "action_spike": ("actions.jumps", action_spike),
    "clipped_actions": ("actions.clipping", clipped_actions),
    "stuck_state": ("state.stuck", stuck_state),
    "gripper_chatter": ("gripper.chatter", gripper_chatter),
    "action_lag": ("actions.lag", action_lag),
    "calibration_offset": ("actions.calibration_offset", calibration_offset),
    "dark_camera": ("cameras.black", dark_camera),
    "frozen_camera": ("cameras.frozen", frozen_camera),
    "blurred_camera": ("cameras.blur", blurred_camera),
    "stale_stats": ("stats.agreement", stale_stats),
}
DATASET_WIDE = {"camera_name", "stale_stats"}  # evidence names no episode


def plant(src: str | Path, out: str | Path, defect: str | None, episode: int | None = None) -> Planted:
    """Write a copy of `src` at `out` with `defect` planted into `episode` (default: the middle one).
    `defect=None` writes an untampered copy through the same path (the control)."""
    if defect is not None and defect not in DEFECTS:
        raise ValueError(f"unknown defect {defect!r}; defects: {sorted(DEFECTS)}")
    check, fn = DEFECTS[defect] if defect else ("", lambda c, k: (None, "clean copy", None))
    copy = _Copy(Path(src))
    k = len(copy.eps) // 2 if episode is None else episode
    frames, description, post = fn(copy, k)
    copy.write(Path(out))
    if post is not None:
        post(Path(out))
    return Planted(
        defect or "none", check, None if defect in DATASET_WIDE else k, frames, description, Path(out)
    )


def detected(diag: Diagnosis, planted: Planted) -> dict:
    """Did the planted defect's check flag it, in the right episode and frames?"""
    r = diag.result(planted.check)
    hits = [
        f
        for f in r.findings
        if planted.episode is None or f.episode == planted.episode or planted.episode in f.related
    ]
    frames_ok = planted.frames is None or any(
        a <= planted.frames[1] and planted.frames[0] <= b for f in hits for a, b in f.frames
    )
    return {"severity": r.severity, "episode_ok": bool(hits), "frames_ok": bool(hits) and frames_ok,
            "evidence": hits[0].message if hits else r.summary}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", required=True, help="a clean dataset (e.g. from `embodia record tabletop`)")
    p.add_argument("--out", required=True, help="folder for the planted copies (one per defect)")
    p.add_argument("--defects", default=",".join(DEFECTS), help="comma-separated subset")
    p.add_argument(
        "--episode", type=int, default=None, help="episode to tamper with (default: the middle one)"
    )
    args = p.parse_args(argv)
    out = Path(args.out)
    t0 = time.perf_counter()
    clean = diagnose(args.src)
    print(f"clean {args.src}: {clean.counts} in {clean.wall_s:.1f} s")
    missed = 0
    names = args.defects.split(",")
    for name in list(names):
        try:
            planted = plant(args.src, out / name, name, args.episode)
        except ValueError as exc:  # a defect that does not exist for this action kind
            print(f"n/a    {name:20s} {exc}")
            names.remove(name)
            continue
        diag = diagnose(planted.root)
        res = detected(diag, planted)
        ok = res["severity"] in (dc.WARN, dc.FAIL) and res["episode_ok"] and res["frames_ok"]
        missed += not ok
        print(f"{'ok ' if ok else 'MISSED'} {name:20s} -> {planted.check:28s} {res['severity']:4s} "
              f"episode {planted.episode} {planted.description}: {res['evidence']}")  # fmt: skip
    print(f"{len(names) - missed} of {len(names)} detected "
          f"({clean.counts[dc.FAIL]} FAIL on the clean copy) in {time.perf_counter() - t0:.0f} s")  # fmt: skip
    return 1 if missed or clean.counts[dc.FAIL] else 0


if __name__ == "__main__":
    sys.exit(main())
