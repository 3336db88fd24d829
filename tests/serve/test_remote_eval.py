"""Closed-loop evaluation of a served policy: `evaluate(RemotePolicy(url))` and `embodia eval ws://...`."""

from __future__ import annotations

import json

import numpy as np

from embodia.eval.protocol import ChunkPolicy
from embodia.eval.run import evaluate
from embodia.serve.client import RemotePolicy


def test_remote_policy_is_a_chunk_policy(server_url, tiny_policy):
    policy = RemotePolicy(server_url)
    assert isinstance(policy, ChunkPolicy)
    assert (policy.chunk_size, policy.n_action_steps) == (tiny_policy.chunk_size, tiny_policy.n_action_steps)
    assert (
        policy.embodiment == tiny_policy.embodiment and policy.checkpoint_hash == tiny_policy.checkpoint_hash
    )
    policy.close()


def test_evaluate_through_the_server(server_url, tmp_path):
    calls = []
    policy = RemotePolicy(server_url, seed=0)
    original = policy.client.infer
    policy.client.infer = lambda msg: calls.append(msg["task"]) or original(msg)
    res = evaluate(
        policy, "touch", episodes=1, num_envs=1, videos_per_task=0, out_dir=tmp_path,
        image_size=64, max_steps=6, in_process=True, show_progress=False,
    )  # fmt: skip
    (ep,) = res.episodes
    assert ep.steps == 6 and ep.chunks == 2 and len(calls) == 2  # n_action_steps 4: chunks at 0 and 4
    data = json.loads(res.results_path.read_text())
    assert data["checkpoint_hash"] == policy.checkpoint_hash and data["policy_class"].endswith("RemotePolicy")
    policy.close()


def test_remote_predict_chunk_batches_one_request_per_observation(server_url):
    from serve_helpers import make_obs

    policy = RemotePolicy(server_url, seed=1)
    feats = policy.client.metadata["observation"]
    obs = [make_obs(feats, seed=0), make_obs(feats, seed=1)]
    chunks = policy.predict_chunk(obs)
    assert chunks.shape == (2, 8, 6)
    np.testing.assert_array_equal(chunks[1], policy.predict_chunk(obs[1])[0])
    policy.close()


def test_cli_eval_accepts_a_server_url(server_url, tmp_path, capsys):
    from embodia.cli import main

    out = tmp_path / "ev"
    argv = ["eval", server_url, "--suite", "touch", "--episodes", "1", "--num-envs", "1", "--max-steps", "4"]
    assert main([*argv, "--image-size", "64", "--videos", "0", "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["overall"]["n"] == 1 and data["policy_class"].endswith("RemotePolicy")


def test_cli_eval_unreachable_server_is_a_clear_error(capsys):
    from embodia.cli import main

    assert main(["eval", "ws://127.0.0.1:9", "--suite", "touch"]) == 2
    assert "cannot reach the policy server" in " ".join(capsys.readouterr().out.split())  # rich wraps lines
