"""Smoothness measures at chunk boundaries, the runner closed-loop on the tabletop (directly and
through the policy server), and the chunking benchmark's mechanics on the tiny policy (no success
assertions: the policy is untrained)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from embodia.policy.runner import ChunkRunner, fetch_from
from embodia.serve.chunking import boundary_jerk, run_chunked_episode


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
