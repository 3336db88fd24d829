"""The control loop's clock."""

import time

import numpy as np

from embodia.robots.rate import Rate


def test_rate_counts_late_and_missed_ticks():
    rate = Rate(100)
    rate.wait()
    time.sleep(0.035)  # the next tick was due 10 ms after the first: 2.5 periods late
    rate.wait()
    stats = rate.stats()
    assert stats["ticks"] == 2 and stats["ticks_missed"] == 2
    assert 20 < stats["lateness_ms_max"] < 60
    assert np.isfinite(list(stats.values())).all()
