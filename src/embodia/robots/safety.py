"""The safety layer every action passes through: simulator, policy server and (later) a real arm.

It does three things and nothing clever:
1. rejects malformed input (wrong shape, NaN/inf) with an error that says what was expected;
2. clamps each dimension to the embodiment's action bounds (joint limits for `joint_abs`);
3. limits how far the action may move in one control tick (rate limit), so a policy glitch that jumps
   from one end of a joint's range to the other turns into a bounded move instead of a slam.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embodia.robots.spec import EmbodimentSpec


def validate_action(action, spec: EmbodimentSpec) -> np.ndarray:
    """Return `action` as a float64 vector of the embodiment's action shape, or raise ValueError."""
    try:
        arr = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{spec.name}: action must be numeric with shape ({spec.action_dim},) "
            f"[{', '.join(spec.action_names)}]; could not convert {type(action).__name__}: {exc}"
        ) from None
    if arr.shape != (spec.action_dim,):
        raise ValueError(
            f"{spec.name}: action must have shape ({spec.action_dim},) "
            f"[{', '.join(spec.action_names)}], got shape {arr.shape}"
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        names = [spec.action_names[i] for i in np.flatnonzero(bad)]
        raise ValueError(f"{spec.name}: action contains NaN or inf in {names}: {arr.tolist()}")
    return arr


@dataclass
class SafetyReport:
    clamped_to_bounds: bool = False
    rate_limited: bool = False


class SafetyLayer:
    """Stateful filter: remembers the last command so that it can rate-limit the next one."""

    def __init__(self, spec: EmbodimentSpec):
        self.spec = spec
        self._low, self._high = spec.action_bounds()
        self._max_change = None if spec.max_action_change is None else np.asarray(spec.max_action_change)
        self._last: np.ndarray | None = None
        self.last_report = SafetyReport()

    def reset(self, current: np.ndarray | None = None) -> None:
        """Start a new episode. For `joint_abs`, pass the current joint positions so that the first
        command is rate-limited relative to where the arm really is."""
        self._last = None if current is None else np.asarray(current, np.float64).copy()

    def __call__(self, action) -> np.ndarray:
        arr = validate_action(action, self.spec)
        report = SafetyReport()
        safe = np.clip(arr, self._low, self._high)
        report.clamped_to_bounds = bool(np.any(safe != arr))
        if self._max_change is not None and self._last is not None:
            limited = np.clip(safe, self._last - self._max_change, self._last + self._max_change)
            report.rate_limited = bool(np.any(limited != safe))
            safe = limited
        if self._max_change is not None:
            self._last = safe.copy()
        self.last_report = report
        return safe
