"""The VLA's wiring on tiny configurations (seconds, no shipped weights)."""

import pytest
import torch

from embodia.policy.model import VLA, VLAConfig

TINY = dict(image_size=32, d_model=64, n_heads=4, prefix_layers=1, expert_layers=2, cnn_channels=(16, 16), chunk_size=8,
            n_action_steps=4, max_state_dim=8, max_action_dim=8)  # fmt: skip


def _inputs(b=3, k=2, t=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(b, k, 3, 32, 32, generator=g)
    image_mask = torch.ones(b, k, dtype=torch.bool)
    image_mask[0, 1] = False  # one sample has a single camera
    lang = torch.randn(b, t, 384, generator=g)
    lang_mask = torch.ones(b, t, dtype=torch.bool)
    sentence = torch.nn.functional.normalize(torch.randn(b, 384, generator=g), dim=-1)
    state = torch.randn(b, 8, generator=g)
    emb = torch.zeros(b, dtype=torch.long)
    return images, image_mask, lang, lang_mask, sentence, state, emb


@pytest.mark.parametrize("head", ["flow", "l1"])
def test_shapes_and_masked_loss(head):
    model = VLA(VLAConfig(**TINY, head=head))
    prefix = model.encode_prefix(*_inputs())
    actions = torch.randn(3, 8, 8)
    mask = torch.ones(3, 8, 8, dtype=torch.bool)
    mask[:, :, 6:] = False  # a 6-dof embodiment in an 8-dim model
    loss = model.loss(prefix, actions, mask)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    # padded action dims never reach the loss: changing them changes nothing
    prefix = model.encode_prefix(*_inputs())
    torch.manual_seed(0)
    a = model.loss(prefix, actions, mask, noise=torch.zeros_like(actions), t=torch.full((3,), 0.5))
    actions2 = actions.clone()
    actions2[:, :, 6:] = 99.0
    b = model.loss(prefix, actions2, mask, noise=torch.zeros_like(actions), t=torch.full((3,), 0.5))
    assert torch.allclose(a, b)
    dims = torch.zeros(3, 8, dtype=torch.bool)
    dims[:, :6] = True
    chunk = model.sample(prefix, dim_mask=dims)
    assert chunk.shape == (3, 8, 8) and chunk[:, :, 6:].abs().sum() == 0  # padded dims stay zero


def test_overfits_one_chunk():
    """Sanity: a tiny model learns a fixed chunk from fixed inputs (flow matching, fixed noise seed).
    The batch repeats the one example so that each step averages over 16 noise draws and times."""
    torch.manual_seed(0)
    model = VLA(VLAConfig(**dict(TINY, prefix_layers=1, expert_layers=1)))
    inputs = [x.expand(16, *x.shape[1:]).contiguous() for x in _inputs(b=1)]
    target = torch.linspace(-0.8, 0.8, 8 * 8).view(1, 8, 8).expand(16, 8, 8)
    mask = torch.ones_like(target, dtype=torch.bool)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    for _ in range(250):
        loss = model.loss(model.encode_prefix(*inputs), target, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    one = [x[:1] for x in inputs]
    noise = torch.randn(1, 8, 8, generator=torch.Generator().manual_seed(1))
    mae = float((model.sample(model.encode_prefix(*one), noise=noise) - target[:1]).abs().mean())
    print(f"overfit MAE {mae:.3f}")
    assert mae < 0.05


def test_config_validation_and_round_trip():
    with pytest.raises(ValueError, match="n_action_steps"):
        VLAConfig(chunk_size=8, n_action_steps=9)
    with pytest.raises(ValueError, match="head"):
        VLAConfig(head="diffusion")
    cfg = VLAConfig(**TINY)
    assert VLAConfig.from_dict(cfg.to_dict()) == cfg


def test_flow_noise_scale_sets_the_samplers_temperature():
    model = VLA(VLAConfig(**TINY, flow_steps=3)).eval()
    prefix = model.encode_prefix(*_inputs())
    dims = torch.ones(3, 8, dtype=torch.bool)
    with torch.no_grad():
        free = [model.sample(prefix, dim_mask=dims) for _ in range(2)]
        assert not torch.allclose(free[0], free[1])  # scale 1 (default): a fresh sample per call
        model.cfg.flow_noise_scale = 0.0
        cold = [model.sample(prefix, dim_mask=dims) for _ in range(2)]
        assert torch.equal(cold[0], cold[1])  # scale 0: deterministic, from the noise's mean
        # In between, the starting noise is the scaled draw, whether drawn here or given (standard normal,
        # e.g. seeded per row by the chunk executor): the same seed at scale 0.5 equals an explicit noise
        # at 0.5, and equals half-size noise at scale 1.
        model.cfg.flow_noise_scale = 0.5
        torch.manual_seed(7)
        half = model.sample(prefix, dim_mask=dims)
        torch.manual_seed(7)
        explicit = model.sample(prefix, dim_mask=dims, noise=torch.randn(3, 8, 8))
        assert torch.allclose(half, explicit)
        model.cfg.flow_noise_scale = 1.0
        torch.manual_seed(7)
        assert torch.allclose(half, model.sample(prefix, dim_mask=dims, noise=0.5 * torch.randn(3, 8, 8)))
    with pytest.raises(ValueError, match="flow_noise_scale"):
        VLAConfig(**TINY, flow_noise_scale=1.5)
    older = {k: v for k, v in VLAConfig(**TINY).to_dict().items() if k != "flow_noise_scale"}
    assert VLAConfig.from_dict(older).flow_noise_scale == 1.0  # checkpoints from before the setting


def test_flow_time_is_beta_1_5_1_kept_off_zero_and_drawn_from_the_generator():
    from embodia.policy.model import FLOW_TIME_MIN, sample_flow_time

    t = sample_flow_time(20_000, torch.Generator().manual_seed(0))
    assert t.min() >= FLOW_TIME_MIN and t.max() <= 1.0
    raw = (t - FLOW_TIME_MIN) / (1 - FLOW_TIME_MIN)
    for x in (0.1, 0.3, 0.5, 0.7, 0.9):  # the CDF of Beta(1.5, 1) is x^1.5
        assert (raw <= x).float().mean().item() == pytest.approx(x**1.5, abs=0.01)
    assert torch.equal(t, sample_flow_time(20_000, torch.Generator().manual_seed(0)))
    # Exactly the draw the training loop made inline before it used this function (bit-identical runs).
    g = torch.Generator().manual_seed(3)
    assert torch.equal(
        sample_flow_time(32, torch.Generator().manual_seed(3)),
        torch.rand(32, generator=g).pow(1 / 1.5) * 0.999 + 0.001,
    )
