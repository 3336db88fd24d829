"""The data doctor's image checks: black frames, a frozen camera and blur.

They work on the per-frame traces (gray level, frame difference, sharpness) that `embodia.data.doctor`
decodes once per video into the `Scan` of `embodia.data.doctor_checks`, which also holds their
thresholds (one calibrated table for every check) and the shared helpers. The registry that orders and
describes all checks is `embodia.data.doctor.CHECKS`.
"""

from __future__ import annotations

import numpy as np

from embodia.data.doctor_checks import (
    BLACK_FAIL_FRACTION,
    BLACK_GRAY,
    BLACK_RELATIVE,
    BLUR_FAIL,
    BLUR_WARN,
    CAM_FROZEN_ABS,
    CAM_FROZEN_RELATIVE,
    FAIL,
    FROZEN_SECONDS,
    IDLE_SPEED,
    WARN,
    Outcome,
    Scan,
    fmt_frames,
    max_speed,
    runs,
)

__all__ = ["check_black", "check_blur", "check_camera_frozen"]


def _camera_refs(scan: Scan, key: str, attr: str) -> float:
    per_ep = [
        np.nanmedian(getattr(e.cams[key], attr)) for e in scan.episodes if key in e.cams and e.length > 1
    ]
    per_ep = [v for v in per_ep if np.isfinite(v)]
    return float(np.median(per_ep)) if per_ep else float("nan")


def check_black(scan: Scan) -> Outcome:
    out = Outcome()
    notes = []
    for key in scan.camera_keys:
        thr = min(BLACK_GRAY, BLACK_RELATIVE * _camera_refs(scan, key, "gray"))
        notes.append(f"{key.rsplit('.', 1)[-1]} < {thr:.0f}")
        for e in scan.episodes:
            cam = e.cams.get(key)
            if cam is None:
                continue
            dark = cam.gray < thr
            out.scores[e.index] = min(
                out.scores.get(e.index, np.inf), float(np.nanmin(cam.gray, initial=255))
            )
            if dark.any():
                frac = float(dark.mean())
                sev = FAIL if frac >= BLACK_FAIL_FRACTION else WARN
                r = runs(dark)
                msg = f"{key}: {int(dark.sum())} black frame(s) (mean gray {np.nanmean(cam.gray[dark]):.0f}), {fmt_frames(scan, r)}"
                out.add(sev, msg, e.index, r, frac)
    out.note = "black when mean gray " + ", ".join(notes)
    return out


def check_camera_frozen(scan: Scan) -> Outcome:
    out = Outcome()
    dims = list(range(len(scan.s_range))) if scan.s_range is not None else []
    for key in scan.camera_keys:
        thr = max(CAM_FROZEN_RELATIVE * _camera_refs(scan, key, "diff"), CAM_FROZEN_ABS)
        for e in scan.episodes:
            cam = e.cams.get(key)
            if cam is None or e.length < 2:
                continue
            still = cam.diff[1:] < thr  # transition t-1 -> t
            if e.state is not None and dims:
                still &= max_speed(e.state, scan.s_range, dims, scan.fps) >= IDLE_SPEED
            best = 0
            for a, b in runs(still):
                f0, f1 = a, b + 1
                n = f1 - f0 + 1
                best = max(best, n)
                if scan.seconds(n) >= FROZEN_SECONDS:
                    sev = FAIL if n / e.length >= 0.5 else WARN
                    msg = f"{key}: image unchanged for {scan.seconds(n):.2f} s while the robot moves, {fmt_frames(scan, [(f0, f1)])}"
                    out.add(sev, msg, e.index, [(f0, f1)], scan.seconds(n))
            out.scores[e.index] = max(out.scores.get(e.index, 0.0), scan.seconds(best))
    out.note = f"longest still-while-moving run {max(out.scores.values(), default=0):.2f} s"
    return out


def check_blur(scan: Scan) -> Outcome:
    out = Outcome()
    lowest = np.inf
    for key in scan.camera_keys:
        ref = _camera_refs(scan, key, "sharp")
        if not ref > 0:
            continue
        for e in scan.episodes:
            cam = e.cams.get(key)
            if cam is None or not np.isfinite(cam.sharp).any():
                continue
            ratio = float(np.nanmedian(cam.sharp) / ref)
            lowest = min(lowest, ratio)
            out.scores[e.index] = min(out.scores.get(e.index, np.inf), ratio)
            if ratio < BLUR_WARN:
                sev = FAIL if ratio < BLUR_FAIL else WARN
                blurry = cam.sharp < BLUR_WARN * ref
                msg = f"{key}: sharpness {ratio:.0%} of the camera's median episode, {fmt_frames(scan, runs(blurry))}"
                out.add(sev, msg, e.index, runs(blurry), ratio)
    out.note = f"least sharp episode at {lowest:.0%} of its camera's median" if np.isfinite(lowest) else ""
    return out
