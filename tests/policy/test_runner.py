"""The threaded action-chunk runner: its timeline under delay, the three joining strategies, an
`ExecutionConfig`, and how it accounts for waiting on a late chunk."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from embodia.policy.executor import ExecutionConfig
from embodia.policy.runner import ChunkRunner

H, N = 8, 4


class CountingSource:
    """Chunk c holds actions c*100 + i (i = index in the chunk); records every request."""

    def __init__(self):
        self.requests: list[tuple[int, np.ndarray | None, int, str]] = []

    def __call__(self, request):
        obs, pending, delay = request.observation, request.pending, request.delay
        c = len(self.requests)
        self.requests.append(
            (obs["tick"], None if pending is None else pending.copy(), delay, threading.current_thread().name)
        )
        return (c * 100 + np.arange(H, dtype=np.float32))[:, None].repeat(2, axis=1)


def drive(runner: ChunkRunner, ticks: int) -> np.ndarray:
    return np.array([runner.act({"tick": t})[0] for t in range(ticks)])


def test_naive_switching_timeline_with_delay():
    src = CountingSource()
    with ChunkRunner(src, H, N, delay=2, strategy="naive") as runner:
        executed = drive(runner, 13)
        assert executed.tolist() == [0, 1, 2, 3, 102, 103, 104, 105, 202, 203, 204, 205, 302]
        assert runner.switch_ticks == [4, 8, 12] and runner.chunks == 4
    # The first chunk is fetched synchronously; every later one 2 ticks before its switch, in the thread.
    assert [r[0] for r in src.requests[:4]] == [0, 2, 6, 10]
    assert all(r[1] is None and r[2] == 0 for r in src.requests)
    assert src.requests[0][3] == threading.current_thread().name
    assert all(r[3].startswith("chunk-fetch") for r in src.requests[1:])


def test_without_delay_it_is_synchronous_chunking():
    src = CountingSource()
    with ChunkRunner(src, H, N, delay=0) as runner:
        assert drive(runner, 9).tolist() == [0, 1, 2, 3, 100, 101, 102, 103, 200]
    assert [r[0] for r in src.requests] == [0, 4, 8]


def test_guided_sends_the_actions_still_to_run():
    src = CountingSource()
    with ChunkRunner(src, H, N, delay=2, strategy="guided") as runner:
        executed = drive(runner, 9)
    assert executed.tolist() == [0, 1, 2, 3, 102, 103, 104, 105, 202]
    (_, p1, d1, _), (_, p2, d2, _) = src.requests[1], src.requests[2]
    assert d1 == d2 == 2
    np.testing.assert_array_equal(p1[:, 0], [2, 3, 4, 5, 6, 7])  # chunk 0 from the request tick on
    np.testing.assert_array_equal(p2[:, 0], [104, 105, 106, 107])


def test_blend_cross_fades_the_overlap():
    src = CountingSource()
    with ChunkRunner(src, H, N, delay=2, strategy="blend") as runner:
        executed = drive(runner, 8)
    alpha = np.arange(1, 5) / 5  # 4 overlapping actions: old 4..7 vs new 102..105
    np.testing.assert_allclose(
        executed[4:8], (1 - alpha) * np.arange(4, 8) + alpha * np.arange(102, 106), rtol=1e-6
    )


@pytest.mark.parametrize(("n", "delay"), [(4, 5), (6, 3), (4, -1), (9, 0)])
def test_impossible_schedules_are_refused(n, delay):
    with pytest.raises(ValueError, match="must be in"):
        ChunkRunner(CountingSource(), H, n, delay=delay)


def test_unknown_strategy():
    with pytest.raises(ValueError, match="strategy must be one of"):
        ChunkRunner(CountingSource(), H, N, strategy="ensemble")


def test_an_execution_config_sets_the_schedule():
    src = CountingSource()
    config = ExecutionConfig(replan_every=4, join="naive", delay=2)
    with ChunkRunner(src, H, 6, config=config) as runner:  # the config's replan_every wins over 6
        assert drive(runner, 9).tolist() == [0, 1, 2, 3, 102, 103, 104, 105, 202]
        assert (runner.n_action_steps, runner.delay, runner.strategy) == (4, 2, "naive")
    with ChunkRunner(CountingSource(), H, 1, config=ExecutionConfig(ensemble=0.0)) as runner:
        # ACT's ensemble, equal weights: tick t averages chunks 0..t at their index t - c.
        assert drive(runner, 3).tolist() == [0.0, 50.5, 101.0]


def test_a_late_chunk_is_waited_for_and_counted():
    """A fetch slower than the delay's ticks: the switch tick waits, and the runner says how long."""
    release = threading.Event()
    src = CountingSource()

    def slow(request):
        if len(src.requests) >= 1:  # every fetch after the first blocks until released
            release.wait(5)
        return src(request)

    with ChunkRunner(slow, H, N, delay=2) as runner:
        drive(runner, 3)  # tick 2 requested chunk 1 in the thread; it blocks
        assert runner.stalls == 0 and len(runner.fetch_ms) == 1
        timer = threading.Timer(0.05, release.set)
        timer.start()
        assert runner.act({"tick": 3})[0] == 3  # chunk 0's last action: no wait yet
        assert runner.act({"tick": 4})[0] == 102  # the switch: waits for the release
        assert runner.stalls == 1 and runner.stall_s > 0 and len(runner.fetch_ms) == 2
        runner.reset(1)
        assert runner.stalls == 0 and runner.stall_s == 0 and runner.fetch_ms == []
