"""The one chunk executor: its timelines (synchronous, delayed, guided, blended, ensembled), its
per-episode noise seeds, its checks, and batching requests into policy calls."""

from __future__ import annotations

import numpy as np
import pytest

from embodia.policy.executor import (
    ChunkExecutor,
    ExecutionConfig,
    TemporalEnsemble,
    executor_for,
    noise_seed,
    predict,
    rtc_weights,
    step_policy,
)

H = 8


def chunk(c: int, h: int = H) -> np.ndarray:
    """Chunk number c: actions c*100 + i (i = index in the chunk), 2 action dims."""
    return (c * 100 + np.arange(h, dtype=np.float32))[:, None].repeat(2, axis=1)


def drive(ex: ChunkExecutor, ticks: int, lag: int = 0) -> tuple[list[float], list[tuple]]:
    """Run `ticks` ticks; each request is answered `lag` ticks later (immediately with 0) or when due."""
    executed, requests, waiting = [], [], []
    for t in range(ticks):
        while (r := ex.request({"tick": t})) is not None:
            requests.append((t, r))
            waiting.append((t + lag, len(requests) - 1))
        for due, i in list(waiting):
            if due <= t or ex.switch_due:
                ex.receive(chunk(i))
                waiting.remove((due, i))
        executed.append(float(ex.action()[0]))
    return executed, requests


def test_synchronous_chunking_executes_k_then_replans():
    ex = ChunkExecutor(H, 4, ExecutionConfig(replan_every=3))
    executed, requests = drive(ex, 8)
    assert executed == [0, 1, 2, 100, 101, 102, 200, 201]
    assert [t for t, _ in requests] == [0, 3, 6] and ex.chunks == 3 and ex.ticks == 8
    assert ex.switch_ticks == [3, 6]
    assert all(r.pending is None and r.delay == 0 for _, r in requests)
    assert ChunkExecutor(H, 4).k == 4  # default: the policy's n_action_steps


def test_a_delay_requests_ahead_and_skips_the_stale_actions():
    ex = ChunkExecutor(H, 4, ExecutionConfig(delay=2))
    executed, requests = drive(ex, 13, lag=2)
    assert executed == [0, 1, 2, 3, 102, 103, 104, 105, 202, 203, 204, 205, 302]
    assert [t for t, _ in requests] == [0, 2, 6, 10]  # the first at once, then 2 ticks before each switch
    assert ex.switch_ticks == [4, 8, 12]


def test_guided_requests_carry_the_actions_still_to_run():
    ex = ChunkExecutor(H, 4, ExecutionConfig(delay=2, join="guided"))
    _, requests = drive(ex, 9, lag=2)
    (_, first), (_, r1), (_, r2) = requests[:3]
    assert first.pending is None and r1.delay == r2.delay == 2
    np.testing.assert_array_equal(r1.pending[:, 0], [2, 3, 4, 5, 6, 7])  # chunk 0 from the request tick on
    np.testing.assert_array_equal(r2.pending[:, 0], [104, 105, 106, 107])
    sync = ChunkExecutor(H, 4, ExecutionConfig(replan_every=3, join="guided"))
    _, requests = drive(sync, 4)
    np.testing.assert_array_equal(requests[1][1].pending[:, 0], [3, 4, 5, 6, 7])  # the unexecuted rest


def test_blend_cross_fades_the_overlap():
    ex = ChunkExecutor(H, 4, ExecutionConfig(delay=2, join="blend"))
    executed, _ = drive(ex, 8, lag=2)
    alpha = np.arange(1, 5) / 5  # 4 overlapping actions: old 4..7 vs new 102..105
    np.testing.assert_allclose(executed[4:8], (1 - alpha) * np.arange(4, 8) + alpha * np.arange(102, 106))


def test_ensemble_replans_every_tick_and_executes_the_weighted_mean():
    ex = ChunkExecutor(H, 16, ExecutionConfig(ensemble=0.0))
    assert ex.k == 1
    executed, requests = drive(ex, 3)
    assert len(requests) == 3
    # Step t is covered by chunks 0..t, chunk n predicting 100n + (t - n) for it.
    assert executed == pytest.approx([np.mean([100 * n + t - n for n in range(t + 1)]) for t in range(3)])
    ens = TemporalEnsemble(1.0)
    ens.add(np.zeros((4, 1)))
    assert ens.add(np.ones((4, 1)))[0] == pytest.approx(np.exp(-1) / (1 + np.exp(-1)))


def test_noise_seeds_depend_on_episode_and_chunk_only():
    ex = ChunkExecutor(H, 4)
    seeds = []
    for episode_seed in (7, 8, 7):
        ex.reset(episode_seed)
        _, requests = drive(ex, 9)
        seeds.append([r.noise_seed for _, r in requests])
    assert seeds[0] == seeds[2] == [noise_seed(7, c) for c in range(3)]
    assert len(set(seeds[0]) | set(seeds[1])) == 6  # unrelated across episodes and chunks
    assert all(0 <= s < 2**63 for s in seeds[0])  # what the policy server accepts


def test_the_tick_protocol_is_checked():
    ex = ChunkExecutor(H, 4)
    with pytest.raises(RuntimeError, match="no chunk was received"):
        ex.action()
    with pytest.raises(RuntimeError, match="not requested"):
        ex.receive(chunk(0))
    assert ex.request({}) is not None and ex.request({}) is None  # one outstanding request at a time
    with pytest.raises(ValueError, match="NaN"):
        ex.receive(np.full((H, 2), np.nan, np.float32))
    with pytest.raises(ValueError, match="shape"):
        ex.receive(np.zeros((3, 2), np.float32))
    ex.receive(chunk(0))
    for _ in range(4):
        ex.action()
    ex.request({})
    with pytest.raises(RuntimeError, match="was not received"):
        ex.action()


@pytest.mark.parametrize(
    ("settings", "n", "match"),
    [
        ({"replan_every": 9}, 4, r"1..chunk_size \(8\), got 9"),
        ({"delay": 5}, 4, "delay must be in"),
        ({"delay": 3, "replan_every": 6}, 4, "delay must be in"),
        ({"delay": -1}, 4, "delay must be in"),
        ({"join": "guided", "replan_every": 8}, 4, "execute fewer than the chunk's 8"),
        ({"ensemble": 0.01, "replan_every": 4}, 4, "replan_every 1"),
        ({"ensemble": 0.01, "join": "guided"}, 4, "takes no join"),
        ({"ensemble": -1.0}, 4, ">= 0"),
        ({"join": "rtc"}, 4, "join must be one of"),
    ],
)
def test_impossible_settings_are_refused(settings, n, match):
    with pytest.raises(ValueError, match=match):
        ChunkExecutor(H, n, ExecutionConfig(**settings))


def test_rtc_weights():
    w = rtc_weights(8, 6, 2)
    assert w.shape == (8,) and w[:2].tolist() == [1, 1] and w[6:].tolist() == [0, 0]
    assert np.all(np.diff(w[2:6]) < 0) and 0 < w[5] < w[2] < 1
    with pytest.raises(ValueError, match="delay must be in 0..6"):
        rtc_weights(8, 6, 7)


class _Recorder:
    chunk_size, n_action_steps, embodiment, checkpoint_hash = H, 4, "so101", ""

    def __init__(self, seeded: bool = True):
        self.calls = []
        self.seeded = seeded

    def predict_chunk(self, observations, pending=None, delay=0, noise_seed=None):
        self.calls.append((len(observations), None if pending is None else pending.shape, delay, noise_seed))
        return np.stack([chunk(o["i"]) for o in observations])

    def reset(self):
        pass


class _Scripted:
    chunk_size, n_action_steps = H, 4

    def predict_chunk(self, observations):
        return np.stack([chunk(o["i"]) for o in observations])


def test_predict_batches_requests_by_kind_and_keeps_their_order():
    policy = _Recorder()
    free = [ChunkExecutor(H, 4) for _ in range(2)]
    guided = ChunkExecutor(H, 4, ExecutionConfig(replan_every=3, join="guided"))
    guided.request({"i": 9})
    guided.receive(chunk(9))
    for _ in range(3):
        guided.action()
    requests = [free[0].request({"i": 1}), guided.request({"i": 2}), free[1].request({"i": 3})]
    out = predict(policy, requests, action_dim=2)
    assert [float(c[0, 0]) for c in out] == [100, 200, 300]
    assert policy.calls == [
        (2, None, 0, [requests[0].noise_seed, requests[2].noise_seed]),
        (1, (1, 5, 2), 0, [requests[1].noise_seed]),
    ]
    # A scripted policy without noise_seed is called without it; a wrong shape is refused.
    assert predict(_Scripted(), [ChunkExecutor(H, 4).request({"i": 4})])[0][0, 0] == 400
    with pytest.raises(ValueError, match="action_dim=6"):
        predict(_Scripted(), [ChunkExecutor(H, 4).request({"i": 4})], action_dim=6)


def test_step_policy_and_a_policy_that_cannot_be_guided():
    policy = _Scripted()
    ex = executor_for(policy, ExecutionConfig(replan_every=2))
    assert [float(step_policy(policy, ex, {"i": 5})[0]) for _ in range(3)] == [500, 501, 500]
    with pytest.raises(TypeError, match="cannot be guided"):
        executor_for(policy, ExecutionConfig(replan_every=2, join="guided"))
