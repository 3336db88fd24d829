"""Wilson intervals against known values, edge cases, and per-group summaries."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from embodia.eval.stats import Rate, mean_rate, summarise, wilson_interval


@pytest.mark.parametrize(
    ("successes", "n", "lo", "hi"),
    [
        # Reference values (z = 1.96), e.g. Brown, Cai & DasGupta (2001) / any statistics package.
        (0, 10, 0.0, 0.2775),
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
        (8, 10, 0.4902, 0.9433),
        (1, 1, 0.2065, 1.0),
        (50, 100, 0.4038, 0.5962),
    ],
)
def test_wilson_known_values(successes, n, lo, hi):
    got = wilson_interval(successes, n, z=1.96)
    assert got == pytest.approx((lo, hi), abs=1e-4)


def test_wilson_edges_and_symmetry():
    assert wilson_interval(0, 0) == (0.0, 1.0)  # no episodes: nothing known
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and 0 < hi < 1  # pinned at 0 exactly, no -1e-17
    assert wilson_interval(10, 10)[1] == 1.0
    for s in range(11):
        lo, hi = wilson_interval(s, 10)
        lo2, hi2 = wilson_interval(10 - s, 10)
        assert lo == pytest.approx(1 - hi2) and hi == pytest.approx(1 - lo2)
        assert 0.0 <= lo <= s / 10 <= hi <= 1.0
    # More episodes, narrower interval.
    assert wilson_interval(50, 100)[1] - wilson_interval(50, 100)[0] < 0.2


@pytest.mark.parametrize(("s", "n"), [(-1, 10), (11, 10), (0, -1)])
def test_wilson_rejects_impossible_counts(s, n):
    with pytest.raises(ValueError, match="successes <= n"):
        wilson_interval(s, n)


def test_summarise_groups_in_first_seen_order():
    eps = [
        SimpleNamespace(task=t, group=g, success=ok)
        for t, g, ok in [("b", "x", True), ("a", "y", False), ("b", "x", False), ("a", "y", False)]
    ]
    tasks = summarise(eps, key=lambda e: e.task)
    assert list(tasks) == ["b", "a"]
    assert (tasks["b"].successes, tasks["b"].n, tasks["b"].rate) == (1, 2, 0.5)
    assert tasks["a"].to_dict()["success_rate"] == 0.0
    assert tasks["a"].to_dict()["ci95"] == list(wilson_interval(0, 2))
    assert mean_rate(tasks.values()) == 0.25
    assert mean_rate([]) is None
    assert Rate.of(0, 0).rate is None and "n/a" in str(Rate.of(0, 0))
