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

from embodia.robots.rate import LoopClock, Rate
from embodia.robots.spec import OBS_STATE, SO101


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


def teleoperate(leader, follower, *, seconds: float | None = None,
                should_stop: Callable[[], bool] | None = None,
                on_tick: Callable[[dict, np.ndarray], None] | None = None) -> TeleopReport:  # fmt: skip
    """Run until `seconds` pass or `should_stop()` is true (Ctrl-C also stops it cleanly). The caller
    connects and disconnects both arms."""
    clock = LoopClock(follower)
    fps = 1.0 / clock.rate.period
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
            clock.after_advance()
    except KeyboardInterrupt:
        pass
    err = np.asarray(errors) if errors else np.zeros((1, len(SO101.action_names)))
    return TeleopReport(
        seconds=time.monotonic() - start, fps=fps, timing=clock.stats(),
        tracking_mean=err.mean(axis=0).tolist(), tracking_p95=np.percentile(err, 95, axis=0).tolist(),
        tracking_max=err.max(axis=0).tolist(),
    )  # fmt: skip


class SimFollower:
    """The tabletop scene's simulated SO-101 as a teleoperation follower (blocks to play with, the
    scene's cameras). Each `advance` steps one control period of physics, then waits for the wall clock's
    next tick."""

    def __init__(self, image_size: int = 96, render: bool = False, seed: int = 0):
        from embodia.sim.tabletop import TabletopEnv

        self.env = TabletopEnv(image_size=image_size, render=render)
        self.seed = seed
        self.spec = self.env.robot.spec
        self.rate = Rate(self.spec.fps)  # a person is in the loop: the simulator keeps wall-clock time

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
        self.rate.wait()

    def __enter__(self) -> SimFollower:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.disconnect()
