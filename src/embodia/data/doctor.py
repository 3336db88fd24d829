"""`embodia doctor data`: find the data bugs that make a policy converge and then fail.

    diag = diagnose("datasets/pick")            # reads every row once, decodes every video once
    diag.severity                                # "PASS" | "WARN" | "FAIL"
    diag.write("out/")                           # doctor.json + report.html (plots of flagged episodes)
    write_fixed(diag, "datasets/pick_fixed")     # drops FAIL episodes, trims idle ends

The checks themselves live in `embodia.data.doctor_checks` (thresholds and their reasons there),
`embodia.data.doctor_motion` (the action and state checks) and `embodia.data.doctor_camera` (the image
checks); `CHECKS` below lists them in report order. `embodia.data.doctor_report` holds the result
(`Diagnosis`) and writes the console table, doctor.json and report.html. This module reads the
dataset into a `Scan`: every episode's columns (one read per data file; rows the reader would refuse,
such as broken `index` columns, are still read so they can be reported) and, per camera, one
sequential decode of each video file that yields per-frame gray level, frame difference
and sharpness, plus which grid frames are missing. Then it runs the checks that apply to the dataset's
action kind (joint_abs or ee_delta, from the embodiment registry, the feature names, or `action_kind`).

Nothing in the input dataset is ever written.
"""

from __future__ import annotations

import bisect
import re
import shutil
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow.parquet as pq

from embodia.data import doctor_camera as dcam
from embodia.data import doctor_checks as dc
from embodia.data import doctor_motion as dm
from embodia.data import stats as st
from embodia.data import units as du
from embodia.data.doctor_checks import FAIL, SKIP, CamTrace, Check, EpisodeScan, Scan
from embodia.data.doctor_report import CheckResult, Diagnosis
from embodia.data.format import INDEX_FEATURES, DatasetError, data_keys
from embodia.data.reader import TIMESTAMP_TOLERANCE_S, LeRobotDataset, _column_to_numpy
from embodia.robots.spec import EMBODIMENTS, EmbodimentSpec

ANALYSIS_MAX_SIDE = 256  # larger frames are downscaled before the per-frame image measures
KINDS = ("joint_abs", "ee_delta")
_DELTA_NAME = re.compile(r"(^d[xyz]$|delta|vel|twist|^d_)", re.IGNORECASE)


# ---- what kind of robot ----------------------------------------------------------------------------


def infer_embodiment(
    ds: LeRobotDataset, action_kind: str | None = None
) -> tuple[str, EmbodimentSpec | None, str]:
    """(action kind, matching embodiment or None, how the kind was decided)."""
    if action_kind is not None and action_kind not in KINDS:
        raise ValueError(f"action kind must be one of {KINDS}, got {action_kind!r}")
    act = ds.features.get("action", {})
    dim = int(np.prod(act.get("shape", [0])))
    matches = [s for s in EMBODIMENTS.values() if s.robot_type == ds.robot_type and s.action_dim == dim]
    spec = matches[0] if len(matches) == 1 else None
    if action_kind:
        return action_kind, spec if spec and spec.action_kind == action_kind else None, "given"
    if spec:
        return spec.action_kind, spec, f"embodiment {spec.name!r} (robot_type {ds.robot_type!r})"
    names = [str(n) for n in (act.get("names") or [])]
    state_names = [str(n) for n in (ds.features.get("observation.state", {}).get("names") or [])]
    if names and any(_DELTA_NAME.search(n) for n in names):
        return "ee_delta", None, f"action names {names}"
    if names and names == state_names:
        return "joint_abs", None, "action names equal state names"
    return "joint_abs", None, "default (no embodiment or telling names; pass --action-kind to override)"


def _gripper(ds: LeRobotDataset, spec: EmbodimentSpec | None, key: str) -> int | None:
    if spec is not None:
        return spec.gripper.action_index if key == "action" else spec.gripper.state_index
    names = ds.features.get(key, {}).get("names") or []
    hits = [i for i, n in enumerate(names) if "grip" in str(n).lower()]
    return hits[0] if hits else None


def _bounds(
    spec: EmbodimentSpec | None, episodes: list[EpisodeScan], units: du.Convention | None = None
) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    acts = [e.action for e in episodes if e.action is not None and len(e.action)]
    if not acts:
        return None, None, "none"
    if units is not None and units.name == du.RANGE and acts[0].shape[1] == 6:
        # LeRobot clamps each motor to its calibrated range: +-100 (gripper 0..100) are the real bounds.
        lo, hi = np.array([-100.0] * 5 + [0.0]), np.full(6, 100.0)
        return lo, hi, "LeRobot -100..100 units, see the units check"
    x = np.concatenate(acts).astype(np.float64)
    x = x[np.all(np.isfinite(x), axis=1)]
    if not len(x):
        return None, None, "none"
    lo, hi = x.min(0), x.max(0)
    if spec is not None and spec.action_dim == x.shape[1]:
        slo, shi = spec.action_bounds()
        tol = 0.01 * (shi - slo)
        # Only when the data lives in the spec's units (a real SO-101 dataset in degrees would not).
        if np.all(lo >= slo - tol) and np.all(hi <= shi + tol):
            return slo, shi, f"{spec.name} spec"
    return lo, hi, "observed min/max"


# ---- reading -----------------------------------------------------------------------------------------


def _read_columns(ds: LeRobotDataset, progress=None) -> list[EpisodeScan]:
    """Every episode's data columns, one read per data file. Rows are sliced by the metadata's global
    range, as the reader does, but without its index validation (that is a check here)."""
    keys = data_keys(ds.features)
    by_file: dict[str, list[dict]] = defaultdict(list)
    for ep in ds.episodes:
        by_file[ep["data_file"]].append(ep)
    out: dict[int, EpisodeScan] = {}
    task = progress.add_task("reading episodes", total=len(ds.episodes)) if progress else None
    for rel, eps in by_file.items():
        path = ds.root / rel
        first = min(e["dataset_from_index"] for e in eps)
        try:
            schema = pq.read_schema(path)
            table = pq.read_table(path, columns=[k for k in keys if k in schema.names])
            error = None
        except Exception as exc:  # noqa: BLE001 - any unreadable file becomes evidence
            table, error = None, f"{path}: unreadable parquet ({exc})"
        for ep in eps:
            e = EpisodeScan(ep["episode_index"], int(ep["length"]), list(ep["tasks"]), {}, error)
            if table is not None:
                start = ep["dataset_from_index"] - first
                if start + e.length > table.num_rows:
                    e.error = f"{path}: needs rows {start}..{start + e.length - 1}, file has {table.num_rows}"
                else:
                    rows = table.slice(start, e.length)
                    for k in rows.column_names:
                        try:
                            e.columns[k] = _column_to_numpy(k, rows.column(k), ds.features[k], path)
                        except DatasetError as exc:
                            e.error = str(exc)
            for k in ("action", "observation.state"):
                if k in e.columns:
                    e.columns[k] = e.columns[k].reshape(e.length, -1).astype(np.float64)
            out[e.index] = e
            if progress:
                progress.advance(task)
    return [out[ep["episode_index"]] for ep in ds.episodes]


_GRAY = np.array([0.299, 0.587, 0.114], np.float32)


def _frame_measures(rgb: np.ndarray) -> tuple[np.ndarray, ...]:
    """Gray images, their mean, their sharpness and the RGB mean (0..1). Sharpness is the Laplacian's
    variance over the image's variance: contrast cancels, so a close-up of a plain table and a busy
    scene compare (raw Laplacian variance varied 2x between clean wrist-camera episodes)."""
    gray = rgb.astype(np.float32) @ _GRAY
    lap = (
        4 * gray[:, 1:-1, 1:-1]
        - gray[:, :-2, 1:-1]
        - gray[:, 2:, 1:-1]
        - gray[:, 1:-1, :-2]
        - gray[:, 1:-1, 2:]
    )
    var = gray.var(axis=(1, 2))
    sharp = np.where(var > 1.0, lap.var(axis=(1, 2)) / np.maximum(var, 1.0), np.nan)  # flat frames: undefined
    return gray, gray.mean(axis=(1, 2)), sharp, rgb.reshape(len(rgb), -1, 3).mean(axis=1) / 255.0


class _CamAccumulator:
    """Collects decoded frames of one camera into per-episode traces, in chunks to bound memory."""

    def __init__(self, episodes: dict[int, EpisodeScan], key: str):
        self.episodes, self.key = episodes, key
        self.traces: dict[int, dict[str, np.ndarray]] = {}
        self.buffer: list[tuple[int, int, np.ndarray]] = []  # (episode, frame, rgb)
        self.prev: dict[int, tuple[int, np.ndarray]] = {}  # episode -> (frame, last gray)

    def trace(self, ep: int) -> dict[str, np.ndarray]:
        if ep not in self.traces:
            n = self.episodes[ep].length
            self.traces[ep] = {
                "gray": np.full(n, np.nan), "diff": np.full(n, np.nan), "sharp": np.full(n, np.nan),
                "rgb": np.full((n, 3), np.nan), "seen": np.zeros(n, bool), "extra": np.zeros(1, int),
            }  # fmt: skip
        return self.traces[ep]

    def add(self, ep: int, idx: int, rgb: np.ndarray) -> None:
        tr = self.trace(ep)
        if not 0 <= idx < len(tr["seen"]) or tr["seen"][idx]:
            tr["extra"][0] += 1
            return
        tr["seen"][idx] = True
        self.buffer.append((ep, idx, rgb))
        if len(self.buffer) >= 128:
            self.flush()

    def flush(self) -> None:
        groups: dict[int, list[tuple[int, np.ndarray]]] = defaultdict(list)
        for ep, idx, rgb in self.buffer:
            groups[ep].append((idx, rgb))
        self.buffer = []
        for ep, items in groups.items():
            idx = np.array([i for i, _ in items])
            gray, mean, sharp, rgbm = _frame_measures(np.stack([f for _, f in items]))
            tr = self.trace(ep)
            tr["gray"][idx], tr["sharp"][idx], tr["rgb"][idx] = mean, sharp, rgbm
            # Differences only between consecutive grid frames (a missing frame leaves a NaN).
            last = self.prev.get(ep)
            if last is not None and last[0] == idx[0] - 1:
                tr["diff"][idx[0]] = float(np.abs(gray[0] - last[1]).mean())
            consecutive = np.flatnonzero(np.diff(idx) == 1)
            if consecutive.size:
                d = np.abs(gray[consecutive + 1] - gray[consecutive]).mean(axis=(1, 2))
                tr["diff"][idx[consecutive + 1]] = d
            self.prev[ep] = (int(idx[-1]), gray[-1].copy())  # a view would keep the whole chunk alive

    def finish(self, errors: dict[int, str]) -> None:
        self.flush()
        for ep, e in self.episodes.items():
            tr = self.trace(ep)
            rgb = tr["rgb"][tr["seen"]]
            e.cams[self.key] = CamTrace(
                gray=tr["gray"], diff=tr["diff"], sharp=tr["sharp"],
                rgb_mean=rgb.mean(0) if len(rgb) else np.full(3, np.nan),
                missing=np.flatnonzero(~tr["seen"]).tolist(), extra=int(tr["extra"][0]), error=errors.get(ep),
            )  # fmt: skip


def _decode_file(
    path: Path,
    segments: list[tuple[float, float, int]],
    fps: int,
    acc: _CamAccumulator,
    errors,
    progress,
    task,
) -> None:
    """Decode one video file front to back once; assign each frame to the episode whose segment holds
    it and to the nearest 1/fps grid slot (off-grid or repeated frames count as extra)."""
    segments = sorted(segments)
    starts = [s for s, _, _ in segments]
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            tb = stream.time_base
            scale = max(stream.codec_context.width, stream.codec_context.height) / ANALYSIS_MAX_SIDE
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                t = float(frame.pts * tb)
                k = bisect.bisect_right(starts, t + TIMESTAMP_TOLERANCE_S) - 1
                if k < 0 or t >= segments[k][1] - TIMESTAMP_TOLERANCE_S:
                    continue  # between episodes (an uncommitted tail, or a gap)
                start, _, ep = segments[k]
                idx = round((t - start) * fps)
                if abs(t - (start + idx / fps)) > TIMESTAMP_TOLERANCE_S:
                    acc.trace(ep)["extra"][0] += 1
                    continue
                if scale > 1:
                    frame = frame.reformat(
                        width=round(frame.width / scale) // 2 * 2, height=round(frame.height / scale) // 2 * 2
                    )
                acc.add(ep, idx, frame.to_ndarray(format="rgb24"))
                if progress:
                    progress.advance(task)
    except (av.FFmpegError, OSError) as exc:
        for _, _, ep in segments:
            errors.setdefault(ep, f"{path}: corrupt or truncated video ({exc})")


def _scan_videos(ds: LeRobotDataset, episodes: list[EpisodeScan], progress=None) -> None:
    by_index = {e.index: e for e in episodes}
    for key in ds.camera_keys:
        acc = _CamAccumulator(by_index, key)
        errors: dict[int, str] = {}
        task = (
            progress.add_task(f"decoding {key}", total=sum(e.length for e in episodes)) if progress else None
        )
        if ds.features[key]["dtype"] == "image":  # PNG/JPEG cells in the parquet: decode per episode
            for e in episodes:
                try:
                    for i, rgb in enumerate(ds.episode_frames(e.index, key)):
                        acc.add(e.index, i, rgb)
                except DatasetError as exc:
                    errors[e.index] = str(exc)
                if progress:
                    progress.advance(task, e.length)
        else:
            files: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
            for ep in ds.episodes:
                v = ep["videos"][key]
                files[v["file"]].append((v["from_timestamp"], v["to_timestamp"], ep["episode_index"]))
            for rel, segments in files.items():
                _decode_file(ds.root / rel, segments, ds.fps, acc, errors, progress, task)
        acc.finish(errors)


# ---- the checks, in report order (thresholds and their reasons in doctor_checks) -------------------

CHECKS: list[Check] = [
    Check("units", "units", "embodiment's units", "an SO-101 dataset in embodia's radians, not LeRobot's "
          "degrees or -100..100 (FAIL; WARN on weak evidence)", du.check_units),
    Check("timestamps.monotonic", "timestamps", "timestamps increase", "every step > 0", dc.check_monotonic),
    Check("timestamps.gaps", "timestamps", "no timestamp gaps", f"step <= {dc.GAP_FACTOR} / fps", dc.check_gaps,
          score_label="largest step (frame periods)", score_threshold=dc.GAP_FACTOR),
    Check("timestamps.fps_drift", "timestamps", "frame rate matches fps", f"median step within {dc.FPS_DRIFT:.0%} of 1 / fps",
          dc.check_fps_drift, score_label="fps drift", score_threshold=dc.FPS_DRIFT),
    Check("index.contiguity", "timestamps", "indices contiguous", "frame_index 0..T-1, index and episode_index match metadata", dc.check_indices),
    Check("video.frame_count", "timestamps", "video frames match rows", "one decoded frame per row and camera",
          dc.check_video_frames, needs_video=True),
    Check("actions.finite", "actions", "no NaN / inf", "all values finite", dc.check_finite),
    Check("episodes.short", "episodes", "no short episodes",
          f"FAIL < {dc.SHORT_FAIL_FRAMES} frames; WARN < max(5, fps) frames and < {dc.SHORT_FRACTION:.0%} of the median",
          dc.check_short, score_label="episode length (s)"),
    Check("episodes.length_outliers", "episodes", "no length outliers", f"Tukey fences, {dc.TUKEY_K} IQR (IQR >= {dc.IQR_FLOOR:.0%} of median)", dc.check_length_outliers,
          score_label="episode length (s)"),
    Check("episodes.near_duplicates", "episodes", "no near-duplicate episodes",
          f"RMS difference < {dc.DUPLICATE_RMS:.1%} of range (action + state, {dc.DUPLICATE_POINTS} points)", dc.check_duplicates,
          score_label="RMS distance to nearest episode (of range)", score_threshold=dc.DUPLICATE_RMS),
    Check("tasks.imbalance", "tasks", "tasks balanced", f"most / least frequent task <= {dc.IMBALANCE_RATIO:.0f}x", dc.check_imbalance),
    Check("tasks.strings", "tasks", "task strings are instructions",
          f"FAIL empty or generic ('task1'); WARN < {dc.TASK_MIN_WORDS} words or < {dc.TASK_MIN_CHARS} chars", dc.check_task_strings),
    Check("cameras.naming", "cameras", "camera keys", "observation.images.<name>", dc.check_camera_names),
    Check("actions.idle_ends", "actions", "no idle start / end", f"<= {dc.IDLE_SECONDS} s without motion (< {dc.IDLE_SPEED} ranges/s)",
          dm.check_idle, score_label="longest idle end (s)", score_threshold=dc.IDLE_SECONDS),
    Check("actions.frozen", "actions", "no frozen action runs",
          f">= {dc.FROZEN_FRACTION:.0%} of the episode and (>= {dc.FROZEN_SECONDS} s or the state moves); FAIL >= {dc.FROZEN_FAIL_FRACTION:.0%}",
          dm.check_frozen_actions, score_label="longest frozen run (fraction of episode)", score_threshold=dc.FROZEN_FRACTION),
    Check("actions.jumps", "actions", "no jumps",
          f"|delta - local median| <= {dc.JUMP_SIGMA:.0f} robust sigma (joint_abs: action; ee_delta: state)",
          dm.check_jumps, score_label="largest jump (sigma)", score_threshold=dc.JUMP_SIGMA),
    Check("actions.clipping", "actions", "actions not clipped at bounds",
          f"WARN > {dc.CLIP_WARN:.0%}, FAIL > {dc.CLIP_FAIL:.0%} of frames at a bound (ee_delta: on every axis)",
          dm.check_clipping, score_label="fraction of frames at bound", score_threshold=dc.CLIP_WARN),
    Check("state.stuck", "actions", "no stuck dimensions",
          f"state constant >= {dc.STUCK_SECONDS} s and {dc.STUCK_FRACTION:.0%} of the episode while the action drives it",
          dm.check_stuck),
    Check("gripper.chatter", "actions", "no gripper chatter", f"open/close reversal within {dc.CHATTER_SECONDS} s; FAIL >= {dc.CHATTER_FAIL_EVENTS}",
          dm.check_chatter, score_label="gripper reversals"),
    Check("actions.lag", "actions", "state follows action", f"lag within {dc.LAG_DEVIATION_S} s of the median; FAIL if the state leads",
          dm.check_lag, score_label="state-action lag (s)"),
    Check("actions.calibration_offset", "actions", "no calibration offset",
          f"median action - state (lag-aligned) within {dc.OFFSET_WARN:.0%} of range of the dataset median; FAIL > {dc.OFFSET_FAIL:.0%}",
          dm.check_offset, kinds=("joint_abs",), score_label="offset deviation (of range)", score_threshold=dc.OFFSET_WARN),
    Check("cameras.black", "cameras", "no black frames",
          f"mean gray < min({dc.BLACK_GRAY:.0f}, {dc.BLACK_RELATIVE:.0%} of camera median); FAIL >= {dc.BLACK_FAIL_FRACTION:.0%} of episode",
          dcam.check_black, needs_video=True, score_label="darkest frame (gray)", score_threshold=dc.BLACK_GRAY),
    Check("cameras.frozen", "cameras", "no frozen camera",
          f"image change < {dc.CAM_FROZEN_RELATIVE:.0%} of camera median for >= {dc.FROZEN_SECONDS} s while the state moves",
          dcam.check_camera_frozen, needs_video=True, score_label="longest frozen-image run (s)", score_threshold=dc.FROZEN_SECONDS),
    Check("cameras.blur", "cameras", "no blurred camera",
          f"Laplacian variance / image variance < {dc.BLUR_WARN:.0%} (FAIL {dc.BLUR_FAIL:.0%}) of the camera's median episode",
          dcam.check_blur, needs_video=True, score_label="sharpness vs camera median", score_threshold=dc.BLUR_WARN),
    Check("stats.agreement", "stats", "stats.json matches data",
          f"mean within {dc.STATS_MEAN_WARN:.0%} std (FAIL {dc.STATS_MEAN_FAIL:.0%}), std within {dc.STATS_STD_WARN:.0%}, min/max within {dc.STATS_RANGE_WARN:.0%} of range",
          dc.check_stats),
]  # fmt: skip


# ---- diagnosis ---------------------------------------------------------------------------------------


def diagnose(
    root: str | Path,
    *,
    video: bool = True,
    action_kind: str | None = None,
    checks: list[str] | None = None,
    progress=None,
) -> Diagnosis:
    """Run the data checks on the dataset at `root` (read-only). `video=False` skips decoding (the
    camera checks are then SKIP); `checks` restricts to the named checks; `progress` is a rich
    Progress to report into. Raises DatasetError when the dataset cannot be opened at all."""
    t0 = time.perf_counter()
    ds = LeRobotDataset.open(root)
    kind, spec, kind_source = infer_embodiment(ds, action_kind)
    wanted = [c for c in CHECKS if checks is None or c.name in checks]
    if checks is not None and len(wanted) != len(set(checks)):
        unknown = sorted(set(checks) - {c.name for c in CHECKS})
        raise ValueError(f"unknown check(s) {unknown}; checks: {[c.name for c in CHECKS]}")
    episodes = _read_columns(ds, progress)
    decode = video and bool(ds.camera_keys) and any(c.needs_video for c in wanted)
    if decode:
        _scan_videos(ds, episodes, progress)
    columns = [e.columns.get(k) for e in episodes for k in ("observation.state", "action")]
    units = du.detect_from(ds.robot_type, ds.features, ds.info, columns)
    lo, hi, source = _bounds(spec, episodes, units)
    scan = Scan(
        fps=ds.fps, features=ds.features, tasks=ds.tasks, stats=_stats_dict(ds), camera_keys=ds.camera_keys,
        episodes=episodes, kind=kind, grip_action=_gripper(ds, spec, "action"),
        grip_state=_gripper(ds, spec, "observation.state"), action_low=lo, action_high=hi,
        bounds_source=source, video_scanned=decode, units=units,
    )  # fmt: skip
    results = [_run(check, scan) for check in wanted]
    return Diagnosis(
        root=str(ds.root), fps=ds.fps, robot_type=ds.robot_type, action_kind=kind, kind_source=kind_source,
        episodes=ds.num_episodes, frames=ds.num_frames, cameras=ds.camera_keys, video_scanned=decode,
        wall_s=time.perf_counter() - t0, results=results, scan=scan,
    )  # fmt: skip


def _stats_dict(ds: LeRobotDataset) -> dict:
    return {k: {n: np.asarray(v).tolist() for n, v in s.items()} for k, s in ds.stats.items()}


def _run(check: Check, scan: Scan) -> CheckResult:
    base = dict(name=check.name, group=check.group, title=check.title, threshold=check.threshold,
                score_label=check.score_label, score_threshold=check.score_threshold)  # fmt: skip
    if scan.kind not in check.kinds:
        return CheckResult(**base, severity=SKIP, summary=f"applies to {', '.join(check.kinds)} actions only")
    if check.needs_video and not scan.video_scanned:
        return CheckResult(**base, severity=SKIP, summary="videos not decoded")
    needs_actions = check.group == "actions" and not scan.with_data()
    outcome = dc.Outcome(skipped="no action column") if needs_actions else check.fn(scan)
    if outcome.skipped:
        return CheckResult(**base, severity=SKIP, summary=outcome.skipped)
    sev = dc.worst(f.severity for f in outcome.findings)
    return CheckResult(
        **base, severity=sev, summary=_summary(outcome), findings=outcome.findings, scores=outcome.scores
    )


def _summary(outcome: dc.Outcome, limit: int = 2) -> str:
    if not outcome.findings:
        return outcome.note
    eps = {f.episode for f in outcome.findings if f.episode is not None}
    head = f"{len(eps)} episode(s); " if eps else ""
    parts = [
        (f"ep {f.episode}: " if f.episode is not None else "") + f.message for f in outcome.findings[:limit]
    ]
    more = f" (+{len(outcome.findings) - limit} more)" if len(outcome.findings) > limit else ""
    return head + "; ".join(parts) + more


# ---- --fix -------------------------------------------------------------------------------------------


@dataclass
class FixResult:
    out: Path
    kept: list[int]
    dropped: list[int]
    trimmed: dict[int, tuple[int, int]]
    unfixed: list[str]  # FAIL checks that dropping episodes cannot fix (dataset-wide findings)


def write_fixed(diag: Diagnosis, out: str | Path, progress=None) -> FixResult:
    """A filtered copy of the diagnosed dataset at `out`: FAIL episodes dropped, idle starts/ends
    trimmed, stats recomputed (which also repairs a stale stats.json). Untrimmed videos are stream-
    copied (no re-encode); trimmed episodes are re-encoded. The input is never modified."""
    from embodia.data.video import extract_segment
    from embodia.data.writer import DatasetWriter

    ds = LeRobotDataset.open(diag.root)
    dropped = diag.fail_episodes()
    kept = [e["episode_index"] for e in ds.episodes if e["episode_index"] not in set(dropped)]
    if not kept:
        raise ValueError("every episode has a FAIL finding: the fixed copy would be empty")
    trims = {e: t for e, t in diag.idle_trims().items() if e in set(kept)}
    unfixed = sorted(
        {
            r.name
            for r in diag.results
            for f in r.findings
            if f.severity == FAIL and f.episode is None and r.name != "stats.agreement"
        }
    )
    user_keys = [k for k in data_keys(ds.features) if k not in INDEX_FEATURES]
    writer = DatasetWriter.create(  # 50 episodes per commit: see DatasetWriter
        out, dict(ds.features), fps=ds.fps, robot_type=ds.robot_type or "unknown", commit_every=50
    )
    tmp = Path(tempfile.mkdtemp(prefix="embodia-doctor-"))
    task = progress.add_task("writing fixed copy", total=len(kept)) if progress else None
    try:
        for ep_index in kept:
            ep = ds.episode(ep_index)
            data = ds.episode_data(ep_index)
            a, b = trims.get(ep_index, (0, 0))
            keep = slice(a, ep["length"] - b)
            columns = {k: data[k][keep] for k in user_keys}
            frame_tasks = [ds.tasks[int(t)] for t in data["task_index"][keep]]
            videos: dict[str, Any] = {}
            image_stats = {}
            for key in ds.camera_keys:
                frames = ds.episode_frames(ep_index, key)
                if a or b:
                    videos[key] = frames[keep]  # re-encoded by the writer
                else:
                    seg = ep["videos"][key]
                    path = tmp / f"{key}.mp4"
                    extract_segment(ds.root / seg["file"], seg["from_timestamp"], seg["to_timestamp"], path)
                    videos[key] = path
                    image_stats[key] = st.image_stats(frames)
            writer.write_episode(columns, frame_tasks, videos, image_stats)
            if progress:
                progress.advance(task)
        writer.flush()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return FixResult(Path(out), kept, dropped, trims, unfixed)
