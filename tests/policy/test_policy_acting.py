"""`Policy` acting: per-row seeded noise that does not depend on the batch, inputs on the model's device,
and the policy's own action queue (`select_action`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embodia.policy.executor import noise_seed
from embodia.policy.policy import Policy
from embodia.sim.tabletop import TabletopEnv


@pytest.fixture(scope="module")
def policy(tiny_policy_dir):
    return Policy.from_pretrained(tiny_policy_dir)


@pytest.fixture(scope="module")
def observations(policy):
    env = TabletopEnv(image_size=policy.cfg.image_size)
    try:
        return [env.reset(seed=s, options={"family": "pick"})[0] for s in (1, 2, 3)]
    finally:
        env.close()


def test_a_rows_chunk_depends_on_its_seed_not_on_its_batch(policy, observations):
    seeds = [noise_seed(11, 0), noise_seed(12, 0), noise_seed(13, 0)]
    batch = policy.predict_chunk(observations, noise_seed=seeds)
    alone = [policy.predict_chunk([o], noise_seed=[s])[0] for o, s in zip(observations, seeds, strict=True)]
    # The same numbers up to the last bits of batched matrix maths.
    np.testing.assert_allclose(batch, np.stack(alone), atol=1e-5)
    again = policy.predict_chunk(observations[:1], noise_seed=seeds[:1])[0]
    np.testing.assert_array_equal(again, alone[0])  # the same call repeats exactly
    other = policy.predict_chunk(observations[:1], noise_seed=[noise_seed(11, 1)])[0]
    assert np.abs(other - alone[0]).max() > 1e-3  # another chunk index, other noise
    with pytest.raises(ValueError, match="one seed per observation"):
        policy.predict_chunk(observations, noise_seed=seeds[:2])


def test_seeded_noise_is_what_the_server_draws_for_that_seed(policy):
    expected = torch.randn(
        1, policy.chunk_size, policy.cfg.max_action_dim, generator=torch.Generator().manual_seed(5)
    )
    torch.testing.assert_close(policy.seeded_noise([5], 1), expected)


def test_the_noise_scale_applies_to_seeded_noise(tiny_policy_dir, observations):
    cold = Policy.from_pretrained(tiny_policy_dir)
    cold.cfg.flow_noise_scale = 0.0
    a = cold.predict_chunk(observations[:1], noise_seed=[1])
    b = cold.predict_chunk(observations[:1], noise_seed=[2])
    np.testing.assert_allclose(a, b, atol=1e-6)  # temperature 0: the seed no longer matters


def test_inputs_follow_the_models_device(tiny_policy_dir, observations):
    """With the model on the `meta` device every tensor handed to it (inputs, noise, mask, guidance) must
    be there too; building any on the CPU regardless would fail this."""
    policy = Policy.from_pretrained(tiny_policy_dir, fast=False)
    policy.model.to("meta")
    seen = {}

    def encode_prefix(**inputs):
        seen.update({k: v.device.type for k, v in inputs.items()})
        return "prefix"

    def sample(prefix, dim_mask=None, noise=None, steps=None, guide=None):
        seen.update(mask=dim_mask.device.type, noise=noise.device.type)
        seen.update(guide=guide.actions.device.type, weights=guide.weights.device.type)
        raise StopIteration

    policy.model.encode_prefix, policy.model.sample = encode_prefix, sample
    pending = np.zeros((1, 4, policy.info.action_dim), np.float32)
    with pytest.raises(StopIteration):
        policy.predict_chunk(observations[:1], noise_seed=[0], pending=pending, delay=1)
    assert set(seen) >= {"images", "state", "lang_tokens", "mask", "noise", "guide", "weights"}
    assert set(seen.values()) == {"meta"}, seen


def test_select_action_owns_the_action_queue(policy, observations):
    policy.reset(seed=3)
    first = [policy.select_action(observations[0]) for _ in range(policy.n_action_steps + 1)]
    expected = policy.predict_chunk(observations[:1], noise_seed=[noise_seed(3, 0)])[0]
    np.testing.assert_array_equal(np.stack(first[:-1]), expected[: policy.n_action_steps])
    assert policy._executor.chunks == 2  # the queue ran out: a second chunk
    policy.reset(seed=3)
    np.testing.assert_array_equal(policy.select_action(observations[0]), first[0])  # replays


def test_images_are_resized_before_they_are_letterboxed():
    """A (1, W, 3) image costs its own size, not a W x W square (the old pad-then-resize order), and a
    wide frame keeps its aspect ratio with equal bands above and below."""
    import torch

    from embodia.policy.inputs import fit_image, to_model_image

    thin = torch.full((1, 3, 1, 50_000), 255, dtype=torch.uint8)  # padded first: 30 GB of float32
    out = to_model_image(thin, 96)
    assert out.shape == (1, 3, 96, 96) and out.sum(dim=(0, 1, 3)).nonzero().numel() == 1
    wide = np.full((480, 960, 3), 200, np.uint8)
    fitted = fit_image(wide, 96)
    rows = np.flatnonzero(fitted[:, :, 0].max(axis=1))
    assert (rows[0], rows[-1]) == (24, 71)  # 48 rows of image, 24 of padding on each side
    same = to_model_image(torch.from_numpy(wide).permute(2, 0, 1)[None], 96)
    np.testing.assert_array_equal(fitted, (same[0].permute(1, 2, 0) * 255).round().byte().numpy())
