"""The frozen-trace sampler gives the same chunks as the eager model, for every shape it meets."""

import numpy as np
import torch

from embodia.policy.policy import Policy


def _obs(rng, task):
    return {
        "observation.images.front": rng.integers(0, 255, (64, 64, 3), dtype=np.uint8),
        "observation.images.wrist": rng.integers(0, 255, (64, 64, 3), dtype=np.uint8),
        "observation.state": rng.normal(size=6).astype(np.float32),
        "task": task,
    }


def test_fast_sampler_matches_eager(tiny_policy_dir):
    fast = Policy.from_pretrained(tiny_policy_dir)
    eager = Policy.from_pretrained(tiny_policy_dir, encoder=fast.encoder, fast=False)
    rng = np.random.default_rng(0)
    # Different batch sizes and instruction lengths -> different traces.
    for batch, task in [(1, "pick up the red block"), (2, "touch the blue block"), (1, "stack it")]:
        obs = [_obs(rng, task) for _ in range(batch)]
        noise = torch.randn(batch, fast.chunk_size, fast.cfg.max_action_dim)
        a = fast.predict_chunk(obs, noise=noise)
        b = eager.predict_chunk(obs, noise=noise)
        assert a.shape == (batch, fast.chunk_size, 6)
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert len(fast._fast._prefix) == 3


def test_real_time_chunking_reproduces_the_frozen_actions(tiny_policy_dir):
    policy = Policy.from_pretrained(tiny_policy_dir)
    eager = Policy.from_pretrained(tiny_policy_dir, encoder=policy.encoder, fast=False)
    rng = np.random.default_rng(1)
    obs = _obs(rng, "pick up the red block")
    pending = rng.normal(size=(1, 4, 6)).astype(np.float32) * 0.1
    noise = torch.randn(1, policy.chunk_size, policy.cfg.max_action_dim)
    chunk = policy.predict_chunk(obs, pending=pending, delay=2, noise=noise)
    np.testing.assert_allclose(chunk[0, :2], pending[0, :2], atol=1e-4)  # executed during inference
    free = policy.predict_chunk(obs, noise=noise)
    # Inside the soft overlap the guided chunk lies between the old plan and the free prediction.
    d_guided = np.abs(chunk[0, 2] - pending[0, 2]).sum()
    assert d_guided <= np.abs(free[0, 2] - pending[0, 2]).sum() + 1e-6
    np.testing.assert_allclose(
        chunk, eager.predict_chunk(obs, pending=pending, delay=2, noise=noise), atol=1e-5
    )
