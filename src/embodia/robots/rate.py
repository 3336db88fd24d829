"""A control loop's clock: ticks of 1/fps seconds on the wall clock, and how punctual the loop was."""

from __future__ import annotations

import time

import numpy as np


class Rate:
    """Ticks of 1/fps s on the wall clock. `wait()` sleeps to the next tick and records how late the
    loop arrived there (0 when on time); a loop later than a whole period skips the missed ticks."""

    def __init__(self, fps: float, clock=time.monotonic, sleep=time.sleep):
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self._clock, self._sleep = clock, sleep
        self.period = 1.0 / fps
        self.next = clock() + self.period
        self.lateness: list[float] = []
        self.missed = 0

    def restart(self) -> None:
        """Start counting from now: the next tick is one period away, the statistics are cleared."""
        self.next = self._clock() + self.period
        self.lateness, self.missed = [], 0

    def wait(self) -> None:
        now = self._clock()
        if now < self.next:
            self._sleep(self.next - now)
            self.lateness.append(0.0)
            self.next += self.period
            return
        late = now - self.next
        self.lateness.append(late)
        skipped = int(late // self.period)
        self.missed += skipped
        self.next += (skipped + 1) * self.period

    def stats(self) -> dict[str, float]:
        lat = np.asarray(self.lateness or [0.0]) * 1e3
        return {"ticks": len(self.lateness), "late_ticks": int((lat > 1.0).sum()), "ticks_missed": self.missed,
                "lateness_ms_p50": float(np.percentile(lat, 50)), "lateness_ms_p99": float(np.percentile(lat, 99)),
                "lateness_ms_max": float(lat.max())}  # fmt: skip


class LoopClock:
    """The clock a control loop over `robot` keeps. A robot that paces itself (`robot.rate`, a `Rate` its
    `advance()` waits on: the real arm, the teleoperated simulator) keeps its own, so there is one clock
    and one wait per tick; for any other robot the loop waits on a clock of its own after `advance()`.
    Starts counting when made."""

    def __init__(self, robot):
        own = getattr(robot, "rate", None)
        self.loop_waits = not isinstance(own, Rate)
        self.rate = Rate(robot.spec.fps) if self.loop_waits else own
        self.rate.restart()

    def after_advance(self) -> None:
        if self.loop_waits:
            self.rate.wait()

    def stats(self) -> dict[str, float]:
        return self.rate.stats()
