"""The data doctor's checks: each takes the scanned dataset (`Scan`) and returns findings.

A check never reads the dataset itself: `embodia.data.doctor` reads every episode's columns once and
decodes every video once into per-frame traces (gray level, frame difference, sharpness), and the
checks work on those arrays. Each check states its threshold in `Check.threshold`; the numbers are
the module constants below, for every check. This module holds the data model, the helpers and the
timestamp, episode, task, camera-naming and stats.json checks; the action and state checks are in
`embodia.data.doctor_motion` and the image checks in `embodia.data.doctor_camera`; the registry is
`embodia.data.doctor.CHECKS`.

Calibration: clean data must pass with a margin. Largest values seen on clean data (537 tabletop episodes
of the base recipe's first recording, `base_train` in `embodia.recipes.base`; 20 recorded Meta-World MT10
episodes; the 3-episode dataset LeRobot itself wrote) against the threshold: jumps 2.0 sigma (tabletop
action) / 1.0 sigma (Meta-World state) vs 8; idle ends 0.27 s vs 0.5 s; frozen action runs 0.24 s vs
0.5 s; clipping 28 % vs 50 %; calibration offset 1.2 % of range vs 3 %; lag within 2 frames of the median
vs 0.1 s; frozen image 0.13 s vs 0.5 s; sharpness 60 % of the camera median vs 50 %; gripper dwell 2.3 s
vs 0.25 s; nearest episode 2.1 % of range apart vs 0.5 %. `benchmarks/plant_defects.py` plants each
defect just past its threshold and checks that it is found.

Durations are in seconds (converted with the dataset's fps); "range" of a dimension is its robust
spread over the whole dataset (q99 - q01), so thresholds hold for radians, degrees or metres alike.
Frame ranges in findings are inclusive: (10, 29) means frames 10..29 of the episode.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"
_RANK = {SKIP: -1, PASS: 0, WARN: 1, FAIL: 2}

# ---- thresholds (see each check's `threshold` text) ------------------------------------------------
GAP_FACTOR = 1.5  # a timestamp step above 1.5 / fps is a gap (a dropped frame is 2 / fps)
FPS_DRIFT = 0.10  # observed frame rate more than 10 % off the declared fps
SHORT_FAIL_FRAMES = 5  # fewer frames than this cannot fill even a short action chunk
SHORT_FRACTION = 0.5  # under 1 s is only "short" when also under half the median episode
TUKEY_K = 1.5
IQR_FLOOR = 0.2  # IQR at least 20 % of the median length: one family of near-equal lengths (2.4-3.0 s)
# otherwise fenced out a 3.07 s episode of a clean dataset
MIN_EPISODES_FOR_STATS = 8  # fences and medians over fewer episodes are noise
DUPLICATE_RMS = 0.005  # RMS distance (in units of each dimension's range) of near-duplicates
DUPLICATE_POINTS = 64
IMBALANCE_RATIO = 10.0
IMBALANCE_MIN_MEDIAN = 5  # below this many episodes per task, task strings are instruction variants
TASK_MIN_CHARS, TASK_MIN_WORDS = 8, 2
GENERIC_TASK = re.compile(
    r"^\s*(task|demo|episode|test|default|untitled|sample|example|none|null|todo|dummy|data)?[\s_#.-]*\d*\s*$",
    re.IGNORECASE,
)
CAMERA_KEY = re.compile(r"^observation\.images\.[A-Za-z0-9][A-Za-z0-9_.-]*$")
IDLE_SPEED = 0.05  # ranges per second below which a dimension counts as not moving
IDLE_SECONDS = 0.5
FROZEN_FRACTION, FROZEN_SECONDS, FROZEN_FAIL_FRACTION = 0.05, 0.5, 0.25
FROZEN_STATE_MOVE = 0.05  # joint_abs: the state moved this fraction of its range under a frozen action
JUMP_SIGMA = 8.0
CLIP_TOL = 0.005  # within 0.5 % of the bound's span counts as at the bound
CLIP_WARN, CLIP_FAIL = 0.50, 0.99
STUCK_SECONDS, STUCK_FRACTION, STUCK_ACTION_MOVE = 0.5, 0.05, 0.05
CHATTER_SECONDS, CHATTER_FAIL_EVENTS = 0.25, 3
LAG_DEVIATION_S, LAG_MAX_S, LAG_MIN_CORR = 0.1, 0.5, 0.3
OFFSET_WARN, OFFSET_FAIL = 0.03, 0.10
BLACK_GRAY, BLACK_RELATIVE, BLACK_FAIL_FRACTION = 50.0, 0.5, 0.5
CAM_FROZEN_RELATIVE, CAM_FROZEN_ABS = 0.05, 0.05
BLUR_WARN, BLUR_FAIL = 0.5, 0.25
STATS_MEAN_WARN, STATS_MEAN_FAIL = 0.02, 0.10  # |mean difference| / std
STATS_STD_WARN, STATS_STD_FAIL = 0.02, 0.10  # |std ratio - 1|
# min / max difference / range. Quantiles are not compared: datasets (LeRobot's too) store the count-
# weighted mean of per-episode quantiles, which for multi-modal data is far from the true quantile.
STATS_RANGE_WARN, STATS_RANGE_FAIL = 0.01, 0.10
STATS_IMAGE_WARN, STATS_IMAGE_FAIL = 0.05, 0.15  # per-channel mean on the 0..1 scale
MAX_RANGES = 20  # frame ranges kept per finding


@dataclass
class Finding:
    """One piece of evidence. `episode` None means dataset-wide; `related` lists other episodes it
    involves (a duplicate's twin, the episodes of a rare task); `frames` are inclusive ranges."""

    severity: str
    message: str
    episode: int | None = None
    frames: list[tuple[int, int]] = field(default_factory=list)
    value: float | None = None
    related: list[int] = field(default_factory=list)


@dataclass
class Outcome:
    findings: list[Finding] = field(default_factory=list)
    scores: dict[int, float] = field(default_factory=dict)  # per-episode score for histograms
    note: str = ""  # shown when nothing is flagged (e.g. "max 0.13 s")
    skipped: str | None = None  # why the check does not apply

    def add(self, sev: str, msg: str, ep=None, frames=(), value=None, related=()) -> None:
        frames = [(int(a), int(b)) for a, b in list(frames)[:MAX_RANGES]]
        self.findings.append(
            Finding(sev, msg, ep, frames, None if value is None else float(value), list(related))
        )


@dataclass(frozen=True)
class Check:
    name: str
    group: str
    title: str
    threshold: str
    fn: Callable[..., Outcome]
    kinds: tuple[str, ...] = ("joint_abs", "ee_delta")
    needs_video: bool = False
    score_label: str = ""
    score_threshold: float | None = None


@dataclass
class CamTrace:
    """Per-frame traces of one camera in one episode (NaN where a frame is missing)."""

    gray: np.ndarray  # mean gray level 0..255
    diff: np.ndarray  # mean |gray_t - gray_t-1|; NaN at frame 0
    sharp: np.ndarray  # variance of the Laplacian / variance of the image (contrast-free sharpness)
    rgb_mean: np.ndarray  # (3,) mean over decoded frames, 0..1
    missing: list[int] = field(default_factory=list)
    extra: int = 0
    error: str | None = None


@dataclass
class EpisodeScan:
    index: int
    length: int
    tasks: list[str]
    columns: dict[str, np.ndarray]
    error: str | None = None
    cams: dict[str, CamTrace] = field(default_factory=dict)

    @property
    def action(self) -> np.ndarray | None:
        return self.columns.get("action")

    @property
    def state(self) -> np.ndarray | None:
        return self.columns.get("observation.state")


@dataclass
class Scan:
    """Everything the checks need, read once."""

    fps: int
    features: dict
    tasks: list[str]
    stats: dict
    camera_keys: list[str]
    episodes: list[EpisodeScan]
    kind: str
    grip_action: int | None
    grip_state: int | None
    action_low: np.ndarray | None
    action_high: np.ndarray | None
    bounds_source: str
    video_scanned: bool
    a_range: np.ndarray | None = None
    s_range: np.ndarray | None = None
    units: object = None  # embodia.data.units.Convention of state and action, set by doctor.diagnose

    def __post_init__(self) -> None:
        self.a_range = robust_range([e.action for e in self.episodes])
        self.s_range = robust_range([e.state for e in self.episodes])

    def seconds(self, frames: float) -> float:
        return frames / self.fps

    def motion_dims(self, which: str) -> list[int]:
        """Action or state dimensions other than the gripper."""
        rng = self.a_range if which == "action" else self.s_range
        grip = self.grip_action if which == "action" else self.grip_state
        return [] if rng is None else [d for d in range(len(rng)) if d != grip]

    def paired(self) -> list[int]:
        """Non-gripper dimensions where action d drives state d (same count of action and state dims)."""
        if self.a_range is None or self.s_range is None or len(self.a_range) != len(self.s_range):
            return []
        return [d for d in self.motion_dims("action") if d != self.grip_state]

    def with_data(self) -> list[EpisodeScan]:
        return [e for e in self.episodes if e.action is not None and e.length > 1]

    def name(self, key: str, d: int) -> str:
        names = self.features.get(key, {}).get("names")
        if isinstance(names, list) and d < len(names) and isinstance(names[d], str):
            return f"{key}[{names[d]}]"
        return f"{key}[{d}]"


# ---- helpers ---------------------------------------------------------------------------------------


def robust_range(arrays: list[np.ndarray | None]) -> np.ndarray | None:
    """Per-dimension spread (q99 - q01) of the rows of `arrays` together (finite rows only), falling
    back to max - min, then to 1, for dimensions whose spread is 0."""
    present = [a for a in arrays if a is not None and len(a)]
    if not present:
        return None
    x = np.concatenate(present).astype(np.float64)
    x = x[np.all(np.isfinite(x), axis=1)]
    if not len(x):
        return np.ones(present[0].shape[1])
    spread = np.quantile(x, 0.99, axis=0) - np.quantile(x, 0.01, axis=0)
    full = x.max(0) - x.min(0)
    return np.where(spread > 0, spread, np.where(full > 0, full, 1.0))


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (start, end) index ranges where `mask` is true."""
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return []
    edges = np.diff(np.concatenate([[0], m.view(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def max_speed(x: np.ndarray, rng: np.ndarray, dims: list[int], fps: int) -> np.ndarray:
    """Per transition t-1 -> t (length T-1): the largest per-dimension speed, in ranges per second."""
    if not dims:
        return np.zeros(max(len(x) - 1, 0))
    return (np.abs(np.diff(x[:, dims], axis=0)) / rng[dims] * fps).max(axis=1)


def fmt_frames(scan: Scan, rngs: list[tuple[int, int]], limit: int = 3) -> str:
    parts = [
        f"{a}-{b} ({scan.seconds(a):.2f}-{scan.seconds(b + 1):.2f} s)"
        if b > a
        else f"{a} ({scan.seconds(a):.2f} s)"
        for a, b in rngs[:limit]
    ]
    more = f" +{len(rngs) - limit} more" if len(rngs) > limit else ""
    return "frames " + ", ".join(parts) + more


def worst(severities) -> str:
    return max(severities, key=_RANK.__getitem__, default=PASS)


# ---- timestamps and indices ------------------------------------------------------------------------


def check_monotonic(scan: Scan) -> Outcome:
    out = Outcome(note="every episode's timestamps increase")
    for e in scan.episodes:
        ts = e.columns.get("timestamp")
        if ts is None or len(ts) < 2:
            continue
        bad = np.flatnonzero(np.diff(ts.astype(np.float64)) <= 0) + 1
        if bad.size:
            r = runs(np.isin(np.arange(len(ts)), bad))
            msg = f"timestamp does not increase at {bad.size} frame(s): {fmt_frames(scan, r)}"
            out.add(FAIL, msg, e.index, r, float(bad.size))
    return out


def check_gaps(scan: Scan) -> Outcome:
    out = Outcome()
    worst_gap = 0.0
    for e in scan.episodes:
        ts = e.columns.get("timestamp")
        if ts is None or len(ts) < 2:
            continue
        dt = np.diff(ts.astype(np.float64))
        ratio = dt * scan.fps
        out.scores[e.index] = float(ratio.max())
        worst_gap = max(worst_gap, float(ratio.max()))
        bad = np.flatnonzero(ratio > GAP_FACTOR)
        if bad.size:
            r = [(int(j), int(j) + 1) for j in bad]
            msg = f"{bad.size} gap(s), largest {dt.max():.4f} s (frame period {1 / scan.fps:.4f} s) at {fmt_frames(scan, r)}"
            out.add(FAIL, msg, e.index, r, float(dt.max()))
    out.note = f"largest step {worst_gap:.2f} frame periods"
    return out


def check_fps_drift(scan: Scan) -> Outcome:
    out = Outcome()
    drifts = []
    for e in scan.episodes:
        ts = e.columns.get("timestamp")
        if ts is None or len(ts) < 3:
            continue
        dt = np.diff(ts.astype(np.float64))
        period = float(np.median(dt))
        observed = 1.0 / period if period > 0 else float("inf")
        drift = abs(observed - scan.fps) / scan.fps
        drifts.append(drift)
        out.scores[e.index] = drift
        if drift > FPS_DRIFT:
            msg = f"timestamps advance at {observed:.2f} fps, declared {scan.fps} ({drift:.0%} off)"
            out.add(FAIL, msg, e.index, [(0, e.length - 1)], drift)
    out.note = f"largest drift {max(drifts, default=0):.1%}"
    return out


def check_indices(scan: Scan) -> Outcome:
    out = Outcome(note="frame_index, index and episode_index are contiguous")
    start = 0
    for e in scan.episodes:
        if e.error:
            out.add(FAIL, f"rows unreadable: {e.error}", e.index)
        expect = {
            "frame_index": np.arange(e.length),
            "index": start + np.arange(e.length),
            "episode_index": np.full(e.length, e.index),
        }
        start += e.length
        for key, want in expect.items():
            have = e.columns.get(key)
            if have is None:
                continue
            if len(have) != len(want):
                msg = f"{key} has {len(have)} rows, the episode {len(want)}"
                out.add(FAIL, msg, e.index)
                continue
            bad = have.astype(np.int64) != want
            if bad.any():
                r = runs(bad)
                first = int(np.flatnonzero(bad)[0])
                msg = f"{key} is {int(have[first])} at frame {first}, expected {int(want[first])} ({fmt_frames(scan, r)})"
                out.add(FAIL, msg, e.index, r, float(bad.sum()))
    return out


def check_video_frames(scan: Scan) -> Outcome:
    out = Outcome(note="each camera has exactly one frame per row")
    for e in scan.episodes:
        for key, cam in e.cams.items():
            if cam.error:
                out.add(FAIL, f"{key}: {cam.error}", e.index)
            if cam.missing:
                r = runs(np.isin(np.arange(e.length), cam.missing))
                msg = f"{key}: video has {e.length - len(cam.missing)} frames for {e.length} rows; no frame at {fmt_frames(scan, r)}"
                out.add(FAIL, msg, e.index, r, float(len(cam.missing)))
            if cam.extra:
                msg = f"{key}: {cam.extra} video frame(s) off the 1/fps grid or duplicated inside the episode's segment"
                out.add(FAIL, msg, e.index, value=float(cam.extra))
    return out


def check_finite(scan: Scan) -> Outcome:
    out = Outcome(note="no NaN or inf in action or state")
    for e in scan.episodes:
        for key in ("action", "observation.state"):
            x = e.columns.get(key)
            if x is None:
                continue
            bad = ~np.all(np.isfinite(x), axis=1)
            if bad.any():
                r = runs(bad)
                msg = f"{key} has NaN/inf in {int(bad.sum())} frame(s): {fmt_frames(scan, r)}"
                out.add(FAIL, msg, e.index, r, float(bad.sum()))
    return out


# ---- episodes and tasks ----------------------------------------------------------------------------


def check_short(scan: Scan) -> Outcome:
    lengths = [e.length for e in scan.episodes]
    median = float(np.median(lengths)) if lengths else 0.0
    out = Outcome(
        note=f"shortest {min(lengths, default=0)} frames ({scan.seconds(min(lengths, default=0)):.2f} s)"
    )
    limit = max(SHORT_FAIL_FRAMES, scan.fps)
    for e in scan.episodes:
        out.scores[e.index] = scan.seconds(e.length)
        if e.length < SHORT_FAIL_FRAMES:
            msg = f"{e.length} frames: too few for any action chunk"
            out.add(FAIL, msg, e.index, [(0, e.length - 1)], float(e.length))
        elif e.length < limit and e.length < SHORT_FRACTION * median:
            msg = f"{e.length} frames ({scan.seconds(e.length):.2f} s), under 1 s and under half the median ({median:.0f})"
            out.add(WARN, msg, e.index, [(0, e.length - 1)], float(e.length))
    return out


def check_length_outliers(scan: Scan) -> Outcome:
    lengths = np.array([e.length for e in scan.episodes], dtype=np.float64)
    if len(lengths) < MIN_EPISODES_FOR_STATS:
        return Outcome(skipped=f"needs at least {MIN_EPISODES_FOR_STATS} episodes")
    q1, q3 = np.percentile(lengths, [25, 75])
    iqr = max(q3 - q1, IQR_FLOOR * float(np.median(lengths)))
    lo, hi = q1 - TUKEY_K * iqr, q3 + TUKEY_K * iqr
    out = Outcome(note=f"fences {max(lo, 0):.0f}-{hi:.0f} frames")
    for e in scan.episodes:
        out.scores[e.index] = scan.seconds(e.length)
        if e.length < lo or e.length > hi:
            side = "shorter" if e.length < lo else "longer"
            msg = f"{e.length} frames ({scan.seconds(e.length):.2f} s), {side} than the fence {lo if e.length < lo else hi:.0f}"
            out.add(WARN, msg, e.index, [(0, e.length - 1)], float(e.length))
    return out


def _signature(scan: Scan, e: EpisodeScan) -> np.ndarray:
    parts = [(e.action, scan.a_range)] + ([(e.state, scan.s_range)] if e.state is not None else [])
    x = np.concatenate([np.nan_to_num(v / r) for v, r in parts], axis=1)
    t = np.linspace(0, len(x) - 1, DUPLICATE_POINTS)
    return np.stack([np.interp(t, np.arange(len(x)), x[:, d]) for d in range(x.shape[1])], axis=1).ravel()


def check_duplicates(scan: Scan) -> Outcome:
    eps = scan.with_data()
    if len(eps) < 2:
        return Outcome(skipped="needs two episodes with actions")
    sig = np.stack([_signature(scan, e) for e in eps])
    lengths = np.array([e.length for e in eps], dtype=np.float64)
    dims = sig.shape[1]
    sq = (sig**2).sum(1)
    out = Outcome()
    nearest = np.full(len(eps), np.inf)
    for i0 in range(0, len(eps), 256):  # blocks keep memory bounded for many episodes
        block = sig[i0 : i0 + 256]
        d2 = sq[i0 : i0 + 256, None] + sq[None, :] - 2 * block @ sig.T
        rms = np.sqrt(np.maximum(d2, 0) / dims)
        for k in range(len(block)):
            i = i0 + k
            rms[k, i] = np.inf
            nearest[i] = rms[k].min()
            for j in np.flatnonzero(rms[k] < DUPLICATE_RMS):
                if j > i and abs(lengths[i] - lengths[j]) <= 0.05 * max(lengths[i], lengths[j]):
                    a, b = eps[i], eps[j]
                    msg = f"episodes {a.index} and {b.index} are near-duplicates (RMS difference {rms[k, j]:.2%} of range)"
                    out.add(WARN, msg, b.index, [(0, b.length - 1)], rms[k, j], [a.index])
    out.scores = {e.index: float(v) for e, v in zip(eps, nearest, strict=True)}
    out.note = f"closest pair {nearest.min():.1%} of range apart"
    return out


def check_imbalance(scan: Scan) -> Outcome:
    counts = Counter(t for e in scan.episodes for t in dict.fromkeys(e.tasks))
    if len(counts) < 2:
        return Outcome(skipped="one task")
    median = float(np.median(list(counts.values())))
    most, n_most = counts.most_common(1)[0]
    ratio = n_most / min(counts.values())
    if median < IMBALANCE_MIN_MEDIAN:
        return Outcome(
            note=f"{len(counts)} task strings, median {median:.0f} episodes each: instruction variants, ratio not judged"
        )
    out = Outcome(note=f"{len(counts)} tasks, {ratio:.1f}x between most and least frequent")
    for task, n in sorted(counts.items(), key=lambda kv: kv[1]):
        if n_most / n > IMBALANCE_RATIO:
            eps = [e.index for e in scan.episodes if task in e.tasks]
            msg = f"task {task!r} has {n} episode(s), {n_most / n:.0f}x fewer than {most!r} ({n_most})"
            out.add(WARN, msg, None, value=n_most / n, related=eps)
    return out


def check_task_strings(scan: Scan) -> Outcome:
    out = Outcome(note=f"{len(scan.tasks)} task strings look like instructions")
    used = {t for e in scan.episodes for t in e.tasks}
    for task in sorted(used):
        eps = [e.index for e in scan.episodes if task in e.tasks]
        text = task.strip()
        if not text:
            sev, why = FAIL, "empty"
        elif GENERIC_TASK.match(text):
            sev, why = FAIL, "generic placeholder, not an instruction"
        elif len(text) < TASK_MIN_CHARS or len(text.split()) < TASK_MIN_WORDS:
            sev, why = WARN, f"too short (< {TASK_MIN_WORDS} words or < {TASK_MIN_CHARS} characters)"
        else:
            continue
        msg = f"task {task!r}: {why}; used by {len(eps)} episode(s)"
        out.add(sev, msg, eps[0] if len(eps) == 1 else None, related=eps)
    return out


def check_camera_names(scan: Scan) -> Outcome:
    if not scan.camera_keys:
        return Outcome(skipped="no cameras")
    out = Outcome(note=", ".join(scan.camera_keys))
    for key in scan.camera_keys:
        if not CAMERA_KEY.match(key):
            msg = f"camera {key!r} is not named observation.images.<name>; policies look cameras up by that prefix"
            out.add(WARN, msg)
    return out


# ---- stats.json ------------------------------------------------------------------------------------


def _compare_vector(scan: Scan, key: str, st: dict, x: np.ndarray) -> list[Finding]:
    """Findings where stats.json disagrees with the data of one feature (worst dimension per stat)."""
    x = x.reshape(len(x), -1).astype(np.float64)
    x = x[np.all(np.isfinite(x), axis=1)]
    if not len(x):
        return []
    data = {"mean": x.mean(0), "std": x.std(0), "min": x.min(0), "max": x.max(0)}
    rng = np.maximum(np.ptp(x, axis=0), 1e-12)
    # mean in units of std; std as a ratio; min/max in units of range (std ~ 0: everything by range)
    scale = {"mean": np.where(data["std"] > 1e-9 * rng, data["std"], rng), "min": rng, "max": rng}
    scale["std"] = scale["mean"]
    limits = {"mean": (STATS_MEAN_WARN, STATS_MEAN_FAIL), "std": (STATS_STD_WARN, STATS_STD_FAIL),
              "min": (STATS_RANGE_WARN, STATS_RANGE_FAIL), "max": (STATS_RANGE_WARN, STATS_RANGE_FAIL)}  # fmt: skip
    out = []
    for name, (warn, fail) in limits.items():
        have = np.asarray(st.get(name, []), dtype=np.float64).reshape(-1)
        if have.size != x.shape[1]:
            continue
        err = np.abs(have - data[name]) / scale[name]
        d = int(np.argmax(err))
        if err[d] > warn:
            msg = f"{scan.name(key, d)} {name} is {have[d]:.5g} in stats.json, the data gives {data[name][d]:.5g}"
            out.append(Finding(FAIL if err[d] > fail else WARN, msg, value=float(err[d])))
    count = int(np.asarray(st.get("count", [len(x)])).reshape(-1)[0])
    if count != len(x):
        out.append(Finding(WARN, f"{key} count is {count} in stats.json, the data has {len(x)} frames"))
    return out


def check_stats(scan: Scan) -> Outcome:
    if not scan.stats:
        return Outcome(findings=[Finding(WARN, "meta/stats.json is missing: training cannot normalise")])
    out = Outcome(note="stats.json matches the data")
    keys = [k for k in ("action", "observation.state") if k in scan.features]
    keys += [
        k
        for k, f in scan.features.items()
        if k not in keys and f["dtype"].startswith("float") and k != "timestamp"
    ]
    for key in keys:
        if key not in scan.stats:
            sev = FAIL if key in ("action", "observation.state") else WARN
            out.findings.append(Finding(sev, f"{key} has no entry in stats.json"))
            continue
        present = [e.columns[key] for e in scan.episodes if e.columns.get(key) is not None]
        if present:
            out.findings += _compare_vector(scan, key, scan.stats[key], np.concatenate(present))
    for key in scan.camera_keys if scan.video_scanned else []:
        st = scan.stats.get(key, {})
        if "mean" not in st:
            out.findings.append(Finding(WARN, f"{key} has no mean in stats.json"))
            continue
        means = [
            (e.cams[key].rgb_mean, e.length)
            for e in scan.episodes
            if key in e.cams and np.isfinite(e.cams[key].rgb_mean).all()
        ]
        if not means:
            continue
        data = np.average(np.stack([m for m, _ in means]), axis=0, weights=[n for _, n in means])
        have = np.asarray(st["mean"], dtype=np.float64).reshape(-1)[:3]
        err = float(np.abs(have - data).max()) if have.size == 3 else np.inf
        if err > STATS_IMAGE_WARN:
            sev = FAIL if err > STATS_IMAGE_FAIL else WARN
            msg = f"{key} channel means are {np.round(have, 3).tolist()} in stats.json, the frames give {np.round(data, 3).tolist()}"
            out.findings.append(Finding(sev, msg, value=err))
    return out
