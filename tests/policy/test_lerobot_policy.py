"""LeRobot policies in embodia: real LeRobot code (0.4.4, its own environment), tiny policies built by
LeRobot's own classes (tests/in_lerobot_env/make_tiny_policies.py), no downloads."""

from __future__ import annotations

import io
import json
import subprocess

import numpy as np
import pytest

from embodia.policy import lerobot_worker as wire
from embodia.policy.executor import ChunkExecutor, predict
from embodia.policy.lerobot_policy import DEGREES, RADIANS, LeRobotEnvError, LeRobotPolicy, env_python

# LeRobot's own path, run in its environment: the reference the adapter must reproduce exactly.
REFERENCE = """
import json, sys, numpy as np, torch
from lerobot.configs.policies import PreTrainedConfig
from lerobot.policies.factory import get_policy_class, make_pre_post_processors
folder, inputs, out = sys.argv[1:4]
cfg = PreTrainedConfig.from_pretrained(folder); cfg.device = "cpu"
policy = get_policy_class(cfg.type).from_pretrained(folder, config=cfg).eval()
pre, post = make_pre_post_processors(cfg, pretrained_path=folder,
    preprocessor_overrides={"device_processor": {"device": "cpu"}})
data = np.load(inputs)
batch = {k: torch.from_numpy(data[k]) for k in data.files if k != "state"}
batch = {k: v.permute(0, 3, 1, 2).float() / 255 for k, v in batch.items()}
batch["observation.state"] = torch.from_numpy(data["state"])
batch["task"] = ["pick up the red block"] * len(data["state"])
with torch.no_grad():
    np.save(out, post(policy.predict_action_chunk(pre(batch))).numpy())
"""


def observation(rng: np.random.Generator, size: int = 96) -> dict:
    return {
        "observation.images.front": rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
        "observation.images.wrist": rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
        "observation.state": rng.uniform(-1, 1, 6).astype(np.float32),
        "task": "pick up the red block",
    }


@pytest.fixture(scope="module")
def act(lerobot_policies):
    with LeRobotPolicy(lerobot_policies["act"]) as policy:
        yield policy


@pytest.fixture(scope="module")
def diffusion(lerobot_policies):
    with LeRobotPolicy(lerobot_policies["diffusion"]) as policy:
        yield policy


def test_act_chunk_is_lerobots_own(act, lerobot_policies, lerobot_python, tmp_path):
    """preprocessor -> predict_action_chunk -> postprocessor, as LeRobot runs it, to float precision."""
    rng = np.random.default_rng(0)
    obs = [observation(rng) for _ in range(3)]
    np.savez(tmp_path / "in.npz", state=np.stack([o["observation.state"] for o in obs]),
             **{k: np.stack([o[k] for o in obs]) for k in ("observation.images.front", "observation.images.wrist")})  # fmt: skip
    subprocess.run([str(lerobot_python), "-I", "-c", REFERENCE, str(lerobot_policies["act"]), str(tmp_path / "in.npz"),
                    str(tmp_path / "ref.npy")], check=True, capture_output=True)  # fmt: skip
    ours = act.predict_chunk(obs)
    assert act.units == RADIANS and not act.stateful
    assert ours.shape == (3, act.chunk_size, 6) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, np.load(tmp_path / "ref.npy"), atol=1e-5)


def test_stateful_policies_keep_state_per_episode(lerobot_policies):
    """Diffusion (observation history) and ACT's temporal ensemble run LeRobot's select_action, each
    episode in its own session: an episode acts the same alone or batched with another."""
    for name in ("diffusion", "act_ensemble"):
        with LeRobotPolicy(lerobot_policies[name]) as policy:
            assert policy.stateful and policy.chunk_size == 1
            rng = np.random.default_rng(1)
            frames_a = [observation(rng) for _ in range(5)]
            frames_b = [observation(rng) for _ in range(5)]
            alone = _run(policy, [frames_a], seeds=[100])[0]
            together = _run(policy, [frames_b, frames_a], seeds=[200, 100])[1]
            np.testing.assert_allclose(together, alone, atol=1e-5, err_msg=name)
            assert np.abs(np.diff(alone, axis=0)).sum() > 0  # it does act on the observations


def _run(policy, episodes: list[list[dict]], seeds: list[int]) -> list[np.ndarray]:
    executors = [ChunkExecutor(policy.chunk_size, policy.n_action_steps) for _ in episodes]
    for ex, seed in zip(executors, seeds, strict=True):
        ex.reset(seed)
    actions: list[list[np.ndarray]] = [[] for _ in episodes]
    for t in range(len(episodes[0])):
        requests = [ex.request(frames[t]) for ex, frames in zip(executors, episodes, strict=True)]
        due = [i for i, r in enumerate(requests) if r is not None]
        for i, chunk in zip(due, predict(policy, [requests[i] for i in due]), strict=True):
            executors[i].receive(chunk)
        for i, ex in enumerate(executors):
            actions[i].append(ex.action())
    return [np.stack(a) for a in actions]


def test_stateful_policy_without_episodes_is_refused(diffusion):
    with pytest.raises(ValueError, match="episode"):
        diffusion.predict_chunk([observation(np.random.default_rng(2))])


def test_units_come_from_the_policys_statistics(lerobot_policies, act):
    with LeRobotPolicy(lerobot_policies["act_degrees"]) as deg:
        assert deg.units == DEGREES and "degrees" in deg.info.notes[-1]
        chunk = deg.predict_chunk([observation(np.random.default_rng(3))])
        low, high = deg.action_range()
        # Actions come back in radians: within the trained range (converted), not in degrees.
        assert np.all(np.abs(chunk) < 2 * np.pi) and np.all(np.abs(high) < 2 * np.pi) and np.all(low < high)
    assert np.all(np.abs(act.action_range()[1]) < 2 * np.pi)


def test_guided_requests_and_other_embodiments_are_refused(act):
    obs = observation(np.random.default_rng(4))
    with pytest.raises(ValueError, match="guided"):
        act.predict_chunk([obs], pending=np.zeros((1, 3, 6), np.float32), delay=1)
    with pytest.raises(ValueError, match="sawyer"):
        act.predict_chunk([obs], embodiment="sawyer")


def test_smolvla_runs_with_its_instruction(lerobot_policies):
    with LeRobotPolicy(lerobot_policies["smolvla"]) as policy:
        rng = np.random.default_rng(5)
        obs = observation(rng)
        a = policy.predict_chunk([obs], noise_seed=[7])
        b = policy.predict_chunk([obs], noise_seed=[7])
        c = policy.predict_chunk([obs | {"task": "push the blue block to the left"}], noise_seed=[7])
        assert a.shape == (1, policy.chunk_size, 6) and np.all(np.isfinite(a))
        np.testing.assert_array_equal(a, b)  # the request's seed fixes the flow's noise
        assert not np.allclose(a, c)  # the instruction reaches the model through its tokenizer


def test_no_environment_names_the_setup_command(monkeypatch, tmp_path):
    monkeypatch.setenv("EMBODIA_LEROBOT_ENV", str(tmp_path / "none"))
    with pytest.raises(LeRobotEnvError, match="embodia lerobot setup"):
        env_python()


def test_a_broken_folder_reports_lerobots_error(lerobot_policies, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(lerobot_policies["act"], broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(RuntimeError, match="LeRobot worker: loading"):
        LeRobotPolicy(broken)


# ---------------------------------------------------------------------------- the wire (no LeRobot)
def test_frames_round_trip():
    buf = io.BytesIO()
    arrays = {"img": np.arange(24, dtype=np.uint8).reshape(2, 2, 2, 3), "s": np.ones((2, 6), np.float32)}
    wire.write_frame(buf, {"op": "chunk", "tasks": ["a", "b"]}, arrays)
    buf.seek(0)
    header, got = wire.read_frame(buf)
    assert header == {"op": "chunk", "tasks": ["a", "b"]}
    for k, v in arrays.items():
        np.testing.assert_array_equal(got[k], v)


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"name": "x", "dtype": "object", "shape": [1]}, "bad array spec"),
        ({"name": "x", "dtype": "uint8", "shape": [-1]}, "bad array spec"),
        ({"name": "x", "dtype": "uint8", "shape": [1 << 20, 1 << 20]}, "payload exceeds"),
    ],
)
def test_bad_frames_are_refused_before_reading(spec, match):
    head = json.dumps({"op": "chunk", "arrays": [spec]}).encode()
    with pytest.raises(wire.WireError, match=match):
        wire.read_frame(io.BytesIO(len(head).to_bytes(4, "big") + head))


def test_oversized_header_and_closed_pipe():
    with pytest.raises(wire.WireError, match="header"):
        wire.read_frame(io.BytesIO((wire.MAX_HEADER_BYTES + 1).to_bytes(4, "big")))
    with pytest.raises(wire.WireError, match="closed"):
        wire.read_frame(io.BytesIO(b"\x00\x00"))
