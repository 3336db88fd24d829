"""Teleoperation: a leader drives a follower, one control tick at a time, at the follower's rate.

    report = teleoperate(leader, follower, seconds=30)

`leader` is anything with `get_action() -> radians` (the SO-101 leader arm; a browser keyboard or
gamepad later); `follower` is a `Robot`: the real SO-101 (`embodia.robots.so101_arm.SO101Follower`) or
the simulated one (`SimFollower`, the tabletop scene's arm). Every tick: read the leader, send through
the follower's safety layer, let one period pass (`advance`: the real arm waits, the simulator steps
physics), read the follower, and pace to wall-clock time. The report holds what a person would ask:
how far the follower trails the leader per joint, and how punctual the loop was.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from embodia.robots.spec import OBS_STATE, SO101


class Rate:
    """Ticks of 1/fps s on the wall clock. `wait()` sleeps to the next tick and records how late the
    loop arrived there (0 when on time); a loop later than a whole period skips the missed ticks."""

    def __init__(self, fps: float):
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.period = 1.0 / fps
        self.next = time.monotonic() + self.period
        self.lateness: list[float] = []
        self.missed = 0

    def wait(self) -> None:
        now = time.monotonic()
        if now < self.next:
            time.sleep(self.next - now)
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


@dataclass
class TeleopReport:
    seconds: float
    fps: float
    timing: dict[str, float]
    joints: list[str] = field(default_factory=lambda: list(SO101.action_names))
    # |follower state after the tick - action sent that tick|, per joint, in radians
    tracking_mean: list[float] = field(default_factory=list)
    tracking_p95: list[float] = field(default_factory=list)
    tracking_max: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        rows = [f"{'joint':<20} {'mean':>8} {'p95':>8} {'max':>8}  (degrees)"]
        for j, m, p, x in zip(
            self.joints, self.tracking_mean, self.tracking_p95, self.tracking_max, strict=True
        ):
            rows.append(f"{j:<20} {np.degrees(m):>8.2f} {np.degrees(p):>8.2f} {np.degrees(x):>8.2f}")
        t = self.timing
        rows.append(f"{t['ticks']} ticks at {self.fps:g} Hz in {self.seconds:.1f} s; lateness p50 "
                    f"{t['lateness_ms_p50']:.1f} ms, p99 {t['lateness_ms_p99']:.1f} ms; {t['ticks_missed']} ticks missed")  # fmt: skip
        return "\n".join(rows)


def teleoperate(leader, follower, *, fps: float | None = None, seconds: float | None = None,
                should_stop: Callable[[], bool] | None = None,
                on_tick: Callable[[dict, np.ndarray], None] | None = None) -> TeleopReport:  # fmt: skip
    """Run until `seconds` pass or `should_stop()` is true (Ctrl-C also stops it cleanly). The caller
    connects and disconnects both arms."""
    fps = float(fps or follower.spec.fps)
    rate = Rate(fps)
    errors: list[np.ndarray] = []
    start = time.monotonic()
    try:
        while (seconds is None or time.monotonic() - start < seconds) and not (should_stop and should_stop()):
            action = np.asarray(leader.get_action(), dtype=np.float64)
            sent = follower.send_action(action)
            follower.advance()
            obs = follower.get_observation()
            errors.append(np.abs(np.asarray(obs[OBS_STATE], dtype=np.float64) - sent))
            if on_tick is not None:
                on_tick(obs, sent)
            rate.wait()
    except KeyboardInterrupt:
        pass
    err = np.asarray(errors) if errors else np.zeros((1, len(SO101.action_names)))
    return TeleopReport(
        seconds=time.monotonic() - start, fps=fps, timing=rate.stats(),
        tracking_mean=err.mean(axis=0).tolist(), tracking_p95=np.percentile(err, 95, axis=0).tolist(),
        tracking_max=err.max(axis=0).tolist(),
    )  # fmt: skip


class SimFollower:
    """The tabletop scene's simulated SO-101 as a teleoperation follower (blocks to play with, the
    scene's cameras). The simulator steps one control period per `advance`; `teleoperate` paces it to
    the wall clock."""

    def __init__(self, image_size: int = 96, render: bool = False, seed: int = 0):
        from embodia.sim.tabletop import TabletopEnv

        self.env = TabletopEnv(image_size=image_size, render=render)
        self.seed = seed
        self.spec = self.env.robot.spec

    def connect(self) -> None:
        self.env.reset(seed=self.seed)

    def disconnect(self) -> None:
        self.env.close()

    def get_observation(self) -> dict:
        return self.env.robot.get_observation()

    def send_action(self, action) -> np.ndarray:
        return self.env.robot.send_action(action)

    def advance(self) -> None:
        self.env.robot.advance()

    def __enter__(self) -> SimFollower:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.disconnect()
