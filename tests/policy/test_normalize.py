import json
from pathlib import Path

import numpy as np
import pytest
import torch

from embodia.policy.normalize import Normalizer, pad_to

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "so101_tabletop_tiny"


def test_actions_map_q01_q99_to_unit_range_and_back():
    stats = json.loads((FIXTURE / "meta/stats.json").read_text())
    norm = Normalizer.from_stats(stats)
    q01, q99 = (torch.tensor(stats["action"][k], dtype=torch.float64) for k in ("q01", "q99"))
    assert torch.allclose(norm.normalize_action(q01), -torch.ones(6, dtype=torch.float64))
    assert torch.allclose(norm.normalize_action(q99), torch.ones(6, dtype=torch.float64))
    a = torch.randn(10, 6, dtype=torch.float64)
    assert torch.allclose(norm.unnormalize_action(norm.normalize_action(a)), a)
    mean = torch.tensor(stats["observation.state"]["mean"], dtype=torch.float64)
    assert torch.allclose(norm.normalize_state(mean), torch.zeros(6, dtype=torch.float64))
    again = Normalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    assert torch.allclose(again.normalize_action(a), norm.normalize_action(a))


def test_constant_dimension_gets_identity_and_a_warning():
    stats = {
        "action": {"q01": [0.0, 1.0], "q99": [2.0, 1.0]},
        "observation.state": {"mean": [0.0, 5.0], "std": [1.0, 0.0]},
    }
    with pytest.warns(UserWarning, match="never vary"):
        norm = Normalizer.from_stats(stats)
    out = norm.normalize_action(torch.tensor([1.0, 1.0]))
    assert out.tolist() == [0.0, 1.0]  # dim 1 passes through unchanged
    assert norm.normalize_state(torch.tensor([0.0, 5.0])).tolist() == [0.0, 5.0]
    assert np.isfinite(norm.unnormalize_action(torch.tensor([0.3, -0.7])).numpy()).all()


def test_missing_stats_and_padding():
    with pytest.raises(ValueError, match="q01/q99"):
        Normalizer.from_stats({"action": {"min": [0]}})
    x, mask = pad_to(torch.ones(3, 4), 6)
    assert x.shape == (3, 6) and x[:, 4:].abs().sum() == 0 and mask[0].tolist() == [True] * 4 + [False] * 2
    with pytest.raises(ValueError, match="does not fit"):
        pad_to(torch.ones(8), 6)
