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
    # Different batch sizes and instruction-length buckets -> different traces; lengths within one
    # bucket of LANG_BUCKET tokens share one (the padding is masked out).
    long = "pick up the red block and then put it down very gently right next to the blue bowl"
    for batch, task in [
        (1, "pick up the red block"),
        (2, "touch the blue block"),
        (1, "stack it"),
        (1, long),
    ]:
        obs = [_obs(rng, task) for _ in range(batch)]
        noise = torch.randn(batch, fast.chunk_size, fast.cfg.max_action_dim)
        a = fast.predict_chunk(obs, noise=noise)
        b = eager.predict_chunk(obs, noise=noise)
        assert a.shape == (batch, fast.chunk_size, 6)
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert len(fast._fast._chunk) == 3  # (1, 8 tokens), (2, 8 tokens), (1, 24 tokens)


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


def test_each_flow_step_sees_the_prefix_encode_prefix_built(monkeypatch):
    """The traced step rebuilds the `Prefix` from the traced prefix's outputs: every field must be the
    one `encode_prefix` computed (it once passed the noisy actions as `memory` and the attention mask
    as `valid`, unnoticed because the expert reads only the K/V and the mask). Run untraced, so that a
    spy on `velocity` sees the tensors themselves."""
    import embodia.policy.fast as fast
    from embodia.policy.model import VLA, VLAConfig

    cfg = VLAConfig(image_size=32, d_model=32, n_heads=2, prefix_layers=1, expert_layers=2,
                    cnn_channels=(8, 16), chunk_size=4, n_action_steps=2, max_state_dim=6,
                    max_action_dim=6, flow_steps=2)  # fmt: skip
    torch.manual_seed(0)
    model = VLA(cfg).eval()
    g = torch.Generator().manual_seed(0)
    lang_mask = torch.ones(2, 5, dtype=torch.bool)
    lang_mask[1, 3:] = False  # a shorter instruction: `valid` differs between the samples
    inputs = {
        "images": torch.rand(2, 2, 3, 32, 32, generator=g),
        "image_mask": torch.tensor([[True, True], [True, False]]),
        "lang_tokens": torch.randn(2, 5, 384, generator=g),
        "lang_mask": lang_mask,
        "sentence": torch.nn.functional.normalize(torch.randn(2, 384, generator=g), dim=-1),
        "state": torch.randn(2, 6, generator=g),
        "embodiment": torch.zeros(2, dtype=torch.long),
    }
    with torch.no_grad():  # the fast path pads the language to its bucket (masked out)
        want = model.encode_prefix(**fast._pad_language(inputs))
    seen = []
    velocity = VLA.velocity

    def spy(self, x, t, prefix):
        seen.append(prefix)
        return velocity(self, x, t, prefix)

    monkeypatch.setattr(VLA, "velocity", spy)
    monkeypatch.setattr(fast, "_freeze", lambda module, args: module.eval())
    noise = torch.randn(2, cfg.chunk_size, cfg.max_action_dim, generator=g)
    fast.FastSampler(model).sample(inputs, noise=noise)
    assert len(seen) == cfg.flow_steps
    for prefix in seen:
        assert torch.equal(prefix.memory, want.memory)
        assert torch.equal(prefix.valid, want.valid)
        assert torch.equal(prefix.attn_mask, want.attn_mask)
        for (k, v), (k0, v0) in zip(prefix.cross_kv, want.cross_kv, strict=True):
            assert torch.equal(k, k0) and torch.equal(v, v0)
