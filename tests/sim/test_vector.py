"""VectorRunner: per-env seeds/options, partial reset/step, per-env calls, error paths, shutdown."""

from __future__ import annotations

import functools
import gc
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embodia.sim.vector import (
    EnvWorkerDiedError,
    EnvWorkerError,
    EnvWorkerTimeoutError,
    EnvWorkerValueError,
    VectorRunner,
)

# Spawn workers unpickle the env factory by importing `_dummy_env`. A spawned child starts with the
# parent's sys.path, so putting this directory on it makes the import work in the workers whatever
# pytest's import mode is, and without turning tests/ into a package (which would change how every
# other test directory is imported).
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from _dummy_env import STATE_DIM, DummyEnv  # noqa: E402


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _assert_same(a: Any, b: Any) -> None:
    """Deep equality for nested results holding numpy arrays."""
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    else:
        assert a == b and type(a) is type(b)


def _reference_reset(seed: int, options: dict | None = None) -> dict:
    obs, _ = DummyEnv().reset(seed=seed, options=options)
    return obs


@pytest.fixture(scope="module")
def runner():
    # One spawned runner shared by the happy-path tests: spawning costs ~1 s per runner on CI CPUs.
    # Each test resets every env first, so tests do not depend on each other's env state.
    with VectorRunner([DummyEnv] * 3, timeout_s=60) as r:
        yield r


def test_each_env_gets_its_own_seed_and_options(runner: VectorRunner):
    tasks = ["pick up the red block", "open the drawer", "push the button"]
    results = runner.reset(seeds=[1, 2, 3], options=[{"task": t} for t in tasks])

    assert len(results) == 3
    space = DummyEnv().observation_space
    for seed, task, (obs, info) in zip([1, 2, 3], tasks, results, strict=True):
        assert obs["task"] == task
        assert info == {"seed": seed, "options": {"task": task}}
        assert space.contains(obs)
        np.testing.assert_array_equal(obs["observation.state"], _reference_reset(seed)["observation.state"])
    # One worker process per env, none of them this process.
    pids = runner.call("getpid")
    assert len(set(pids)) == 3 and os.getpid() not in pids
    assert pids == runner.pids


def test_options_may_be_omitted_and_seeds_may_be_none(runner: VectorRunner):
    results = runner.reset(seeds=[None, 5, None])
    assert [obs["task"] for obs, _ in results] == ["default task"] * 3
    assert results[1][1] == {"seed": 5, "options": {}}


def test_partial_reset_leaves_other_envs_alone(runner: VectorRunner):
    runner.reset(seeds=[1, 2, 3])
    runner.step([np.full(STATE_DIM, 0.1, np.float32)] * 3)
    state_before = runner.get_attr("_state")

    results = runner.reset(seeds=[30, 10], options=[{"task": "c"}, {"task": "a"}], indices=[2, 0])

    # Results come back in the order of `indices`.
    assert [obs["task"] for obs, _ in results] == ["c", "a"]
    np.testing.assert_array_equal(
        results[0][0]["observation.state"], _reference_reset(30)["observation.state"]
    )
    np.testing.assert_array_equal(
        results[1][0]["observation.state"], _reference_reset(10)["observation.state"]
    )
    assert runner.get_attr("_t") == [0, 1, 0]
    np.testing.assert_array_equal(runner.get_attr("_state", indices=[1])[0], state_before[1])
    assert runner.get_attr("_task", indices=[1]) == ["default task"]


def test_steps_of_different_envs_are_independent(runner: VectorRunner):
    runner.reset(seeds=[7, 7, 7], options=[{"episode_length": 2}, None, None])
    a = [np.array([1, 0, 0], np.float32), np.array([0, -1, 0], np.float32)]

    first = runner.step(a, indices=[0, 2])  # env 1 is not stepped at all
    second = runner.step([a[0]], indices=[0])

    start = _reference_reset(7)["observation.state"]
    np.testing.assert_allclose(first[0][0]["observation.state"], start + a[0])
    np.testing.assert_allclose(first[1][0]["observation.state"], start + a[1])
    assert [r[2] for r in first] == [False, False]
    obs, reward, terminated, truncated, info = second[0]
    np.testing.assert_allclose(obs["observation.state"], start + 2 * a[0])
    assert (terminated, truncated, info) == (True, False, {"t": 2})  # env 0 has a 2-step episode
    assert isinstance(reward, float)
    assert runner.get_attr("_t") == [2, 0, 1]


def test_call_passes_per_env_args_and_kwargs(runner: VectorRunner):
    runner.reset(seeds=[1, 2, 3])
    states = runner.get_attr("_state")

    out = runner.call("expert_action", args=[(1.0,), (2.0,), (0.5,)])
    for state, gain, action in zip(states, [1.0, 2.0, 0.5], out, strict=True):
        np.testing.assert_allclose(action, -gain * state)
    out = runner.call("expert_action", indices=[2], kwargs=[{"gain": 3.0}])
    np.testing.assert_allclose(out[0], -3.0 * states[2])
    assert runner.call("expert_action", args=[], indices=[]) == []

    with pytest.raises(ValueError, match="per selected env"):
        runner.call("expert_action", args=[(1.0,)])
    with pytest.raises(ValueError, match="use VectorRunner.step"):
        runner.call("step", args=[(None,)] * 3)
    with pytest.raises(ValueError, match="duplicate"):
        runner.get_attr("_t", indices=[0, 0])
    with pytest.raises(ValueError, match="out of range"):
        runner.get_attr("_t", indices=[3])


def test_envs_step_in_parallel(runner: VectorRunner):
    runner.reset(seeds=[0, 0, 0], options=[{"step_sleep": 0.4}] * 3)
    t0 = time.monotonic()
    runner.step([np.zeros(STATE_DIM, np.float32)] * 3)
    elapsed = time.monotonic() - t0
    # Serial would take 1.2 s. The sleeps overlap only if every command is sent before any result is read.
    assert elapsed < 0.9, elapsed
    runner.reset(seeds=[0, 0, 0])


def test_env_exception_names_the_env_and_runner_stays_usable(runner: VectorRunner):
    runner.reset(seeds=[1, 2, 3], options=[None, {"fail_at_step": 0}, None])
    zeros = [np.zeros(STATE_DIM, np.float32)] * 3

    with pytest.raises(EnvWorkerError) as excinfo:
        runner.step(zeros)
    err = excinfo.value
    assert not isinstance(err, ValueError)
    assert err.index == 1 and err.remote_type == "builtins.RuntimeError"
    assert "env 1" in str(err) and "boom at step 0" in str(err)
    assert "_dummy_env.py" in str(err) and "Traceback" in str(err)  # the worker's traceback text
    # The other envs did step; their results are not lost.
    assert sorted(err.partial_results) == [0, 2]
    assert err.partial_results[0][4] == {"t": 1}

    assert not runner.closed
    runner.reset(seeds=[4], indices=[1])
    assert [info["t"] for *_, info in runner.step(zeros)] == [2, 1, 2]

    with pytest.raises(ValueError, match="bad value for dummy") as excinfo:
        runner.call("fail", args=[("value",)], indices=[2])
    assert isinstance(excinfo.value, EnvWorkerValueError) and excinfo.value.index == 2
    with pytest.raises(EnvWorkerError, match="KeyError") as excinfo:
        runner.call("fail", args=[("other",)], indices=[0])
    assert not isinstance(excinfo.value, ValueError)
    assert runner.get_attr("_t") == [2, 1, 2]


def _scripted_episode(r: VectorRunner) -> list[Any]:
    """Resets with per-env seeds/options, uneven episodes, partial resets and expert calls."""
    log: list[Any] = []
    log.append(r.reset(seeds=[11, 12], options=[{"task": "a", "episode_length": 2}, {"task": "b"}]))
    for _ in range(3):
        actions = r.call("expert_action", args=[(0.5,), (0.25,)])
        log.append(actions)
        results = r.step(actions)
        log.append(results)
        done = [i for i, res in enumerate(results) if res[2] or res[3]]
        if done:
            log.append(r.reset(seeds=[100 + i for i in done], indices=done))
    log.append(r.step([np.ones(STATE_DIM, np.float32)], indices=[1]))
    log.append(r.get_attr("_t"))
    return log


def test_in_process_gives_identical_results_to_subprocesses():
    with VectorRunner([DummyEnv] * 2) as sub:
        expected = _scripted_episode(sub)
    with VectorRunner([DummyEnv] * 2, in_process=True) as local:
        assert local.pids == [os.getpid()] * 2
        _assert_same(_scripted_episode(local), expected)


def test_in_process_errors_have_the_same_shape():
    with VectorRunner([DummyEnv] * 2, in_process=True) as r:
        r.reset(seeds=[0, 0], options=[{"fail_at_step": 0}, None])
        with pytest.raises(EnvWorkerError, match="env 0") as excinfo:
            r.step([np.zeros(STATE_DIM, np.float32)] * 2)
        assert excinfo.value.index == 0 and sorted(excinfo.value.partial_results) == [1]
        assert isinstance(excinfo.value.__cause__, RuntimeError)  # original kept for debuggers
        with pytest.raises(EnvWorkerValueError):
            r.call("fail", args=[("value",)], indices=[1])


def test_killed_worker_raises_promptly_and_closes_runner():
    r = VectorRunner([DummyEnv] * 2)
    pids = r.pids
    r.reset(seeds=[0, 1])
    os.kill(pids[1], signal.SIGKILL)

    t0 = time.monotonic()
    with pytest.raises(EnvWorkerDiedError, match="env 1") as excinfo:
        r.step([np.zeros(STATE_DIM, np.float32)] * 2)
    assert time.monotonic() - t0 < 5.0
    assert "SIGKILL" in str(excinfo.value) and excinfo.value.index == 1
    assert r.closed
    assert not any(_pid_alive(p) for p in pids)
    with pytest.raises(RuntimeError, match="closed"):
        r.step([np.zeros(STATE_DIM, np.float32)] * 2)
    r.close()  # still fine after the runner closed itself


def test_hung_worker_times_out_and_is_terminated():
    r = VectorRunner([DummyEnv] * 2, timeout_s=1.0)
    pids = r.pids
    r.reset(seeds=[0, 1], options=[{"step_sleep": 60}, None])

    t0 = time.monotonic()
    with pytest.raises(EnvWorkerTimeoutError, match=r"\[0\]"):
        r.step([np.zeros(STATE_DIM, np.float32)] * 2)
    assert time.monotonic() - t0 < 6.0
    assert r.closed and not any(_pid_alive(p) for p in pids)


def test_close_is_idempotent_closes_envs_and_reaps_workers(tmp_path: Path):
    markers = [tmp_path / f"closed_{i}" for i in range(2)]
    r = VectorRunner([functools.partial(DummyEnv, close_marker=str(m)) for m in markers])
    pids = r.pids
    r.reset(seeds=[0, 1])

    r.close()
    r.close()

    assert r.closed
    assert all(m.read_text() == "closed" for m in markers)  # workers ran env.close()
    assert not any(_pid_alive(p) for p in pids)
    with pytest.raises(RuntimeError, match="closed"):
        r.reset(seeds=[0, 1])


def test_dropped_runner_is_cleaned_up_by_del():
    r = VectorRunner([DummyEnv])
    pids = r.pids
    del r
    gc.collect()
    assert not any(_pid_alive(p) for p in pids)


def test_bad_factories_fail_at_construction():
    with pytest.raises(EnvWorkerError, match="env 1.*refused to build") as excinfo:
        VectorRunner([DummyEnv, functools.partial(DummyEnv, fail_on_init=True)])
    assert excinfo.value.index == 1
    with pytest.raises(EnvWorkerError, match="env 0"):
        VectorRunner([functools.partial(DummyEnv, fail_on_init=True)], in_process=True)
    with pytest.raises(Exception, match="pickle"):
        VectorRunner([lambda: DummyEnv()])
    with pytest.raises(ValueError):
        VectorRunner([])
