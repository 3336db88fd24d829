"""The data doctor's action and state checks: idle ends, frozen actions, jumps, clipping, stuck
joints, gripper chatter, state-action lag and calibration offset.

They work on the `Scan` of `embodia.data.doctor_checks`, which also holds their thresholds (one
calibrated table for every check) and the shared helpers. The registry that orders and describes all
checks is `embodia.data.doctor.CHECKS`.

`idle_frames` is the idle test on bare arrays, for callers without a `Scan` (the training doctor's
idle-start check uses it, so both doctors agree on what an idle start is).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from embodia.data.doctor_checks import (
    CHATTER_FAIL_EVENTS,
    CHATTER_SECONDS,
    CLIP_FAIL,
    CLIP_TOL,
    CLIP_WARN,
    FAIL,
    FROZEN_FAIL_FRACTION,
    FROZEN_FRACTION,
    FROZEN_SECONDS,
    FROZEN_STATE_MOVE,
    IDLE_SECONDS,
    IDLE_SPEED,
    JUMP_SIGMA,
    LAG_DEVIATION_S,
    LAG_MAX_S,
    LAG_MIN_CORR,
    OFFSET_FAIL,
    OFFSET_WARN,
    STUCK_ACTION_MOVE,
    STUCK_FRACTION,
    STUCK_SECONDS,
    WARN,
    EpisodeScan,
    Outcome,
    Scan,
    fmt_frames,
    max_speed,
    runs,
)

__all__ = [
    "check_chatter",
    "check_clipping",
    "check_frozen_actions",
    "check_idle",
    "check_jumps",
    "check_lag",
    "check_offset",
    "check_stuck",
    "episode_lag",
    "gripper_switches",
    "idle_ends",
    "idle_frames",
    "jump_scores",
    "jump_sigmas",
    "robust_sigma",
]


def idle_frames(
    action: np.ndarray | None,
    state: np.ndarray | None,
    a_range: np.ndarray | None,
    s_range: np.ndarray | None,
    fps: float,
) -> tuple[int, int]:
    """Frames at the start and at the end of one episode during which neither action nor state changes
    (every dimension slower than IDLE_SPEED ranges per second; ranges as `robust_range` gives them,
    over the whole dataset). `state` may be None; an episode that never moves is idle from the start
    for all its frames."""
    if action is None or len(action) < 2:
        return 0, 0
    moving = max_speed(action, a_range, list(range(len(a_range))), fps) >= IDLE_SPEED
    if state is not None:
        moving |= max_speed(state, s_range, list(range(len(s_range))), fps) >= IDLE_SPEED
    idx = np.flatnonzero(moving)
    if not idx.size:
        return len(action), 0
    return int(idx[0]), int(len(action) - 2 - idx[-1])


def idle_ends(scan: Scan, e: EpisodeScan) -> tuple[int, int]:
    """Frames at the start and at the end during which neither action nor state changes."""
    return idle_frames(e.action, e.state, scan.a_range, scan.s_range, scan.fps)


def check_idle(scan: Scan) -> Outcome:
    out = Outcome()
    for e in scan.with_data():
        start, end = idle_ends(scan, e)
        out.scores[e.index] = scan.seconds(max(start, end))
        for n, where, rng in ((start, "start", (0, start - 1)), (end, "end", (e.length - end, e.length - 1))):
            if scan.seconds(n) > IDLE_SECONDS:
                msg = f"idle {where}: {scan.seconds(n):.2f} s ({n} frames) without motion, {fmt_frames(scan, [rng])}"
                out.add(WARN, msg, e.index, [rng], scan.seconds(n))
    out.note = f"longest idle end {max(out.scores.values(), default=0):.2f} s"
    return out


def check_frozen_actions(scan: Scan) -> Outcome:
    out = Outcome()
    joints = scan.paired() if scan.kind == "joint_abs" else []
    for e in scan.with_data():
        same = np.all(np.abs(np.diff(e.action, axis=0)) <= 1e-7 * scan.a_range, axis=1)
        start, end = idle_ends(scan, e)
        best = 0.0
        for a, b in runs(same):
            f0, f1 = a, b + 1  # transitions a..b hold frames a..b+1 constant
            if f0 < start or f1 > e.length - 1 - end:
                continue  # part of an idle end: reported there
            n = f1 - f0 + 1
            frac = n / e.length
            best = max(best, frac)
            moved = 0.0
            if joints and e.state is not None:
                seg = e.state[f0 : f1 + 1, joints]
                moved = float((np.ptp(seg, axis=0) / scan.s_range[joints]).max())
            if frac >= FROZEN_FRACTION and (scan.seconds(n) >= FROZEN_SECONDS or moved >= FROZEN_STATE_MOVE):
                sev = FAIL if frac >= FROZEN_FAIL_FRACTION else WARN
                extra = f"; the state moved {moved:.0%} of its range" if moved >= FROZEN_STATE_MOVE else ""
                msg = f"action frozen for {scan.seconds(n):.2f} s ({frac:.0%} of the episode){extra}, {fmt_frames(scan, [(f0, f1)])}"
                out.add(sev, msg, e.index, [(f0, f1)], frac)
        out.scores[e.index] = best
    out.note = f"longest frozen run {max(out.scores.values(), default=0):.0%} of an episode"
    return out


def robust_sigma(x: np.ndarray) -> float:
    """1.4826 x median absolute deviation: the standard deviation for Gaussian data, robust to outliers."""
    x = np.asarray(x, dtype=np.float64)
    return float(1.4826 * np.median(np.abs(x - np.median(x)))) if len(x) else 0.0


def _jump_signal(scan: Scan) -> tuple[str, list[int], np.ndarray | None]:
    """joint_abs: the action is a position target and must be continuous. ee_delta: the action is a
    velocity that may switch abruptly (Meta-World's experts do), so the pose (state) is checked."""
    if scan.kind == "joint_abs":
        return "action", scan.motion_dims("action"), scan.a_range
    return "observation.state", scan.motion_dims("state"), scan.s_range


def jump_sigmas(scan: Scan) -> tuple[str, list[int], np.ndarray]:
    """Per-dimension robust sigma of frame-to-frame changes, pooled over the dataset, on frames
    where the dimension moves (so dimensions at rest most of the time do not get a tiny sigma)."""
    key, dims, rng = _jump_signal(scan)
    eps = [e for e in scan.with_data() if e.columns.get(key) is not None]
    if not dims or not eps or rng is None:
        return key, [], np.zeros(0)
    deltas = np.concatenate([np.diff(e.columns[key], axis=0) for e in eps]).astype(np.float64)
    sig = np.zeros(len(rng))
    for d in dims:
        x = deltas[:, d]
        x = x[np.isfinite(x) & (np.abs(x) > 1e-6 * rng[d])]
        sig[d] = robust_sigma(x) if len(x) > 10 else 0.0
    return key, [d for d in dims if sig[d] > 0], sig


def jump_scores(x: np.ndarray, sig: np.ndarray, dims: list[int]) -> np.ndarray:
    """(T-1, len(dims)) |delta - local median of deltas (5 frames)| / sigma."""
    d = np.diff(x[:, dims].astype(np.float64), axis=0)
    padded = np.pad(d, ((2, 2), (0, 0)), mode="edge")
    local = np.median(sliding_window_view(padded, 5, axis=0), axis=-1)
    return np.abs(d - local) / sig[dims]


def check_jumps(scan: Scan) -> Outcome:
    key, dims, sig = jump_sigmas(scan)
    if not dims:
        return Outcome(skipped=f"no moving non-gripper dimension in {key}")
    out = Outcome()
    for e in scan.with_data():
        x = e.columns.get(key)
        if x is None or len(x) < 3:
            continue
        z = np.nan_to_num(jump_scores(x, sig, dims), nan=0.0)
        out.scores[e.index] = float(z.max())
        flagged = z > JUMP_SIGMA
        if flagged.any():
            t, k = np.unravel_index(np.argmax(z), z.shape)
            r = runs(np.concatenate([[False], flagged.any(axis=1)]))  # transition t -> frame t+1
            r = [(max(a - 1, 0), b) for a, b in r]
            d = dims[k]
            step = float(x[t + 1, d] - x[t, d])
            msg = f"{scan.name(key, d)} jumps by {step:+.4g} ({z[t, k]:.1f} sigma) at {fmt_frames(scan, r)}"
            out.add(FAIL, msg, e.index, r, float(z[t, k]))
    out.note = f"largest {max(out.scores.values(), default=0):.1f} sigma in {key}"
    return out


def check_clipping(scan: Scan) -> Outcome:
    if scan.action_low is None:
        return Outcome(skipped="no action bounds")
    lo, hi = scan.action_low, scan.action_high
    dims = [d for d in scan.motion_dims("action") if hi[d] > lo[d]]
    if not dims:
        return Outcome(skipped="no bounded non-gripper action dimension")
    tol = CLIP_TOL * (hi - lo)
    out = Outcome()
    for e in scan.with_data():
        at = (e.action <= lo + tol) | (e.action >= hi - tol)
        if scan.kind == "ee_delta":
            # A delta saturated on one axis is normal for Meta-World-style experts; saturated on every
            # axis, the command's direction is quantised to a diagonal and its magnitude lost.
            groups = [("every translation axis", at[:, dims].all(axis=1))]
        else:
            groups = [(scan.name("action", d), at[:, d]) for d in dims]
        best = 0.0
        for label, mask in groups:
            frac = float(mask.mean())
            best = max(best, frac)
            if frac > CLIP_WARN:
                sev = FAIL if frac > CLIP_FAIL else WARN
                r = runs(mask)
                msg = f"{label} at its bound in {frac:.0%} of frames ({scan.bounds_source} bounds), {fmt_frames(scan, r)}"
                out.add(sev, msg, e.index, r, frac)
        out.scores[e.index] = best
    out.note = f"at most {max(out.scores.values(), default=0):.0%} of an episode at the bounds ({scan.bounds_source})"
    return out


def check_stuck(scan: Scan) -> Outcome:
    out = Outcome()
    for key in ("action", "observation.state"):
        present = [e.columns[key] for e in scan.episodes if e.columns.get(key) is not None]
        if len(present) < 2:
            continue
        x = np.concatenate(present)
        for d in np.flatnonzero(np.ptp(x, axis=0) == 0):
            msg = f"{scan.name(key, d)} is constant ({x[0, d]:.4g}) across the whole dataset"
            out.add(WARN, msg)
    dims = scan.paired()
    if not dims:
        out.note = "no action dimension pairs with a state dimension"
        return out
    longest = 0.0
    for e in scan.with_data():
        if e.state is None:
            continue
        for d in dims:
            flat = np.diff(e.state[:, d]) == 0
            for a, b in runs(flat):
                f0, f1 = a, b + 1
                n = f1 - f0 + 1
                seg = e.action[f0 : f1 + 1, d]
                if scan.kind == "joint_abs":
                    drive = float(np.ptp(seg)) / scan.a_range[d] >= STUCK_ACTION_MOVE
                else:
                    drive = float(np.mean(np.abs(seg) > 0.01 * scan.a_range[d])) >= 0.5
                if not drive:
                    continue
                longest = max(longest, scan.seconds(n))
                if scan.seconds(n) >= STUCK_SECONDS and n / e.length >= STUCK_FRACTION:
                    msg = f"{scan.name('observation.state', d)} stuck at {e.state[f0, d]:.4g} for {scan.seconds(n):.2f} s while the action drives it, {fmt_frames(scan, [(f0, f1)])}"
                    out.add(FAIL, msg, e.index, [(f0, f1)], scan.seconds(n))
    out.note = f"longest driven-but-constant state run {longest:.2f} s"
    return out


def gripper_switches(x: np.ndarray, lo: float, hi: float) -> list[tuple[int, int]]:
    """(frame, new level 0/1) of each switch of a gripper command between `lo` and `hi`; hysteresis
    (30 % / 70 % of the span) keeps a slow ramp from counting as several switches."""
    p = (np.asarray(x, dtype=np.float64) - lo) / (hi - lo)
    level = int(p[0] > 0.5)
    out = []
    for t in range(1, len(p)):
        if level == 0 and p[t] > 0.7:
            level = 1
            out.append((t, 1))
        elif level == 1 and p[t] < 0.3:
            level = 0
            out.append((t, 0))
    return out


def check_chatter(scan: Scan) -> Outcome:
    if scan.grip_action is None:
        return Outcome(skipped="no gripper dimension in the action")
    eps = scan.with_data()
    x = np.concatenate([e.action[:, scan.grip_action] for e in eps]).astype(np.float64)
    lo, hi = np.nanquantile(x, 0.01), np.nanquantile(x, 0.99)  # the dataset's open and closed commands
    if not hi - lo > 0:
        return Outcome(note="gripper command never changes")
    out = Outcome()
    shortest = np.inf
    for e in eps:
        sw = gripper_switches(e.action[:, scan.grip_action], lo, hi)
        events = []
        for (t1, _), (t2, _) in zip(sw, sw[1:], strict=False):
            dwell = scan.seconds(t2 - t1)
            shortest = min(shortest, dwell)
            if dwell < CHATTER_SECONDS:
                events.append((t1, t2))
        out.scores[e.index] = float(len(events))
        if events:
            sev = FAIL if len(events) >= CHATTER_FAIL_EVENTS else WARN
            msg = f"gripper command reverses within {CHATTER_SECONDS} s {len(events)} time(s), {fmt_frames(scan, events)}"
            out.add(sev, msg, e.index, events, float(len(events)))
    out.note = (
        f"shortest open/close dwell {shortest:.2f} s"
        if np.isfinite(shortest)
        else "at most one gripper switch per episode"
    )
    return out


def episode_lag(scan: Scan, e: EpisodeScan, dims: list[int]) -> tuple[int, float]:
    """Frames between an action and the state change it causes, by cross-correlation (lag 1: a[t]
    shows in s[t+1]). joint_abs correlates the change of the target with the change of the state;
    ee_delta correlates the delta itself with the change of the state."""
    a, s = e.action[:, dims].astype(np.float64), e.state[:, dims].astype(np.float64)
    x = np.diff(a, axis=0) if scan.kind == "joint_abs" else a[1:]
    y = np.diff(s, axis=0)
    x, y = x / scan.a_range[dims], y / scan.s_range[dims]
    max_lag = max(3, round(LAG_MAX_S * scan.fps))
    best = (-np.inf, 0)
    for lag in range(-max_lag, max_lag + 1):
        n = len(x) - abs(lag)
        if n < 5:
            continue
        xx, yy = (x[:n], y[lag : lag + n]) if lag >= 0 else (x[-lag:], y[:n])
        xx, yy = xx - xx.mean(0), yy - yy.mean(0)
        den = np.sqrt((xx**2).sum() * (yy**2).sum())
        if den > 0:
            best = max(best, ((xx * yy).sum() / den, lag))
    return best[1], float(best[0])


def check_lag(scan: Scan) -> Outcome:
    dims = scan.paired()
    eps = [e for e in scan.with_data() if e.state is not None and e.length > 10]
    if not dims or not eps:
        return Outcome(skipped="no action dimension pairs with a state dimension")
    lags = {e.index: episode_lag(scan, e, dims) for e in eps}
    good = [lag for lag, c in lags.values() if c >= LAG_MIN_CORR]
    if not good:
        return Outcome(note="no episode correlates action and state changes")
    median = float(np.median(good))
    out = Outcome(note=f"median lag {median:.0f} frames ({scan.seconds(median):.3f} s)")
    if median < 0:
        msg = f"the state changes {-median:.0f} frames before the action that should cause it (whole dataset)"
        out.add(FAIL, msg, value=scan.seconds(median))
    for e in eps:
        lag, c = lags[e.index]
        out.scores[e.index] = scan.seconds(lag)
        if c < LAG_MIN_CORR:
            continue
        dev = scan.seconds(abs(lag - median))
        if dev > LAG_DEVIATION_S or lag < 0:
            sev = FAIL if lag < 0 else WARN
            why = "state leads the action" if lag < 0 else "misaligned"
            msg = f"lag {lag} frames ({scan.seconds(lag):+.3f} s) vs dataset median {median:.0f}: {why} (correlation {c:.2f})"
            out.add(sev, msg, e.index, [(0, e.length - 1)], scan.seconds(lag))
    return out


def check_offset(scan: Scan) -> Outcome:
    dims = scan.paired()
    eps = [e for e in scan.with_data() if e.state is not None and e.length > 10]
    if not dims or not eps:
        return Outcome(skipped="no action dimension pairs with a state dimension")
    lags = [episode_lag(scan, e, dims) for e in eps]
    lag = int(np.clip(np.median([g for g, c in lags if c >= LAG_MIN_CORR] or [0]), 0, 10))
    # Median over all lag-aligned frames: with a[t] paired to s[t + lag], tracking during motion
    # cancels, and the median ignores contacts (pushing a block holds the joint off its target). On
    # 537 clean tabletop episodes this spreads 4x less than restricting to the slowest frames.
    offsets = [np.median(e.action[: e.length - lag, dims] - e.state[lag:, dims], axis=0) for e in eps]
    offsets = np.array(offsets, dtype=np.float64)
    center = np.median(offsets, axis=0)
    rng = scan.s_range[dims]
    out = Outcome()
    for k, d in enumerate(dims):
        if abs(center[k]) / rng[k] > OFFSET_WARN:
            msg = f"{scan.name('action', d)} - state is {center[k]:+.4g} ({abs(center[k]) / rng[k]:.1%} of range) across the dataset"
            out.add(WARN, msg, value=float(center[k]))
    dev = np.abs(offsets - center) / rng
    for e, row, off in zip(eps, dev, offsets, strict=True):
        out.scores[e.index] = float(row.max())
        k = int(np.argmax(row))
        if row[k] > OFFSET_WARN:
            sev = FAIL if row[k] > OFFSET_FAIL else WARN
            d = dims[k]
            msg = f"{scan.name('action', d)} - state is {off[k]:+.4g} (lag-aligned median), dataset median {center[k]:+.4g} (off by {row[k]:.1%} of range)"
            out.add(sev, msg, e.index, [(0, e.length - 1)], float(row[k]))
    out.note = f"largest per-episode deviation {dev.max():.1%} of a joint's range"
    return out
