"""The control loop's clock, on a fake clock (no wall-clock time in tests)."""

import numpy as np

from embodia.robots.rate import Rate


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_rate_counts_late_and_missed_ticks():
    clock = FakeClock()
    rate = Rate(100, clock=clock, sleep=clock.sleep)
    clock.now = 0.004
    rate.wait()  # on time: sleeps to 0.010
    assert clock.now == 0.010
    clock.now = 0.045  # the loop took 35 ms; the tick at 0.020 is 25 ms late, 0.030 and 0.040 are lost
    rate.wait()
    stats = rate.stats()
    assert stats["ticks"] == 2 and stats["ticks_missed"] == 2 and stats["late_ticks"] == 1
    assert abs(stats["lateness_ms_max"] - 25.0) < 1e-6
    assert abs(rate.next - 0.050) < 1e-9  # the next tick stays on the grid
    assert np.isfinite(list(stats.values())).all()
    rate.restart()
    assert rate.stats()["ticks"] == 0 and abs(rate.next - 0.055) < 1e-9
