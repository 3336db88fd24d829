"""The action-chunk runner: its timeline under delay, the three joining strategies, smoothness measures,
and the benchmark's mechanics on the tiny policy (no success assertions: the policy is untrained)."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np
import pytest

from embodia.serve.chunking import ChunkRunner, boundary_jerk, fetch_from, run_chunked_episode

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


def test_boundary_jerk_sees_steps_at_switches():
    t = np.arange(40, dtype=float)
    smooth = np.stack([np.sin(t / 10), np.cos(t / 10)], axis=1)
    stepped = smooth.copy()
    stepped[20:] += 0.5  # a jump at the switch at tick 20
    calm, jumpy = boundary_jerk(smooth, [10, 20, 30]), boundary_jerk(stepped, [10, 20, 30])
    assert jumpy["boundary_jerk"] > 10 * calm["boundary_jerk"]
    assert jumpy["boundary_step"] > 0.15 and jumpy["boundary_max_accel"] >= 0.5
    assert jumpy["interior_jerk"] == pytest.approx(calm["interior_jerk"])


def test_runner_through_the_server_on_the_tabletop(server_url, tiny_policy):
    from embodia.serve.client import Client
    from embodia.sim.tabletop import TabletopEnv

    env = TabletopEnv(image_size=64)
    try:
        with Client(server_url) as client:
            for strategy in ("naive", "blend", "guided"):
                with ChunkRunner(client, tiny_policy.chunk_size, 4, delay=2, strategy=strategy) as runner:
                    ep = run_chunked_episode(runner, env, seed=1, options={"family": "touch"}, max_steps=11)
                assert ep.steps == 11 and ep.actions.shape == (11, 6) and np.all(np.isfinite(ep.actions))
                assert ep.switch_ticks == [4, 8] and ep.chunks == 4  # requested: the 4th at tick 10
    finally:
        env.close()


def test_guided_chunks_continue_what_ran(tiny_policy):
    """Server-guided inpainting: the new chunk's first `delay` actions are the pending ones."""
    seen = []

    def fetch(request):
        chunk = fetch_from(tiny_policy)(request)
        if request.pending is not None:
            seen.append((request.pending[: request.delay], chunk[: request.delay]))
        return chunk

    from embodia.sim.tabletop import TabletopEnv

    env = TabletopEnv(image_size=64)
    try:
        with ChunkRunner(fetch, tiny_policy.chunk_size, 4, delay=2, strategy="guided") as runner:
            run_chunked_episode(runner, env, seed=2, options={"family": "pick"}, max_steps=9)
    finally:
        env.close()
    assert len(seen) == 2
    for want, got in seen:
        np.testing.assert_allclose(got, want, atol=1e-3)


def test_benchmark_runs_end_to_end(tiny_policy_dir, tmp_path):
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "chunking.py"
    spec = importlib.util.spec_from_file_location("chunking_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "r.json"
    args = bench.parse_args(
        [str(tiny_policy_dir), "--episodes", "1", "--delay", "2", "--families", "touch", "--max-steps", "10",
         "--json", str(out)]
    )  # fmt: skip
    results = bench.run(args)
    assert set(results) == {"naive", "blend", "guided"}
    for r in results.values():
        assert r["episodes"] == 1 and r["steps"] == 10 and np.isfinite(r["boundary_jerk"])
    assert out.exists()
