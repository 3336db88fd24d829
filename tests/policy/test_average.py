"""Weight averaging of checkpoints (WiSE-FT): exact arithmetic, and refusals for checkpoints that do
not share an architecture, embodiments or normalisation."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from embodia.cli import main
from embodia.policy.average import average_checkpoints
from embodia.policy.checkpoint import CheckpointError
from embodia.policy.policy import Policy


def _perturbed_copy(src: Path, dst: Path, seed: int = 0) -> Path:
    """A 'fine-tune' of `src`: the same folder with every float weight moved by noise."""
    shutil.copytree(src, dst)
    g = torch.Generator().manual_seed(seed)
    weights = load_file(str(dst / "model.safetensors"))
    moved = {
        k: (v + 0.1 * torch.randn(v.shape, generator=g, dtype=v.dtype)) if v.is_floating_point() else v
        for k, v in weights.items()
    }
    save_file(moved, str(dst / "model.safetensors"))
    return dst


def test_average_is_the_weighted_mean_and_loads(tiny_policy_dir, tmp_path):
    other = _perturbed_copy(tiny_policy_dir, tmp_path / "finetune")
    out = average_checkpoints([tiny_policy_dir, other], tmp_path / "avg", [0.25, 0.75])
    a = load_file(str(tiny_policy_dir / "model.safetensors"))
    b = load_file(str(other / "model.safetensors"))
    avg = load_file(str(out / "model.safetensors"))
    assert set(avg) == set(a)
    moved = 0
    for name, t in avg.items():
        if t.is_floating_point():
            torch.testing.assert_close(t, 0.25 * a[name] + 0.75 * b[name], rtol=1e-5, atol=1e-6)
            moved += int(not torch.equal(t, a[name]))
        else:
            assert torch.equal(t, a[name])
    assert moved > 0
    meta = json.loads((out / "config.json").read_text())["metadata"]["averaged_from"]
    assert [m["weight"] for m in meta] == [0.25, 0.75]
    assert meta[1]["path"] == str(other.resolve())
    policy = Policy.from_pretrained(out)  # a complete, loadable checkpoint
    assert policy.checkpoint_hash != Policy.from_pretrained(tiny_policy_dir).checkpoint_hash


def test_weight_one_reproduces_the_checkpoint(tiny_policy_dir, tmp_path):
    other = _perturbed_copy(tiny_policy_dir, tmp_path / "finetune")
    out = average_checkpoints([tiny_policy_dir, other], tmp_path / "avg", [1.0, 0.0])
    a = load_file(str(tiny_policy_dir / "model.safetensors"))
    avg = load_file(str(out / "model.safetensors"))
    assert all(torch.equal(avg[k], a[k]) for k in a)


def test_refuses_different_normalisation(tiny_policy_dir, tmp_path):
    other = _perturbed_copy(tiny_policy_dir, tmp_path / "finetune")
    norms = json.loads((other / "normalization.json").read_text())
    name = next(iter(norms))
    norms[name] = json.loads(json.dumps(norms[name]).replace("1", "2", 1))
    (other / "normalization.json").write_text(json.dumps(norms))
    with pytest.raises(CheckpointError, match="normalization.json differs"):
        average_checkpoints([tiny_policy_dir, other], tmp_path / "avg")
    assert not (tmp_path / "avg").exists()


def test_refuses_a_different_architecture(tiny_policy_dir, tmp_path):
    other = _perturbed_copy(tiny_policy_dir, tmp_path / "finetune")
    config = json.loads((other / "config.json").read_text())
    config["model"]["d_model"] *= 2
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="'model' differs"):
        average_checkpoints([tiny_policy_dir, other], tmp_path / "avg")


@pytest.mark.parametrize(
    "weights, match",
    [([0.5], "one per checkpoint"), ([0.7, 0.7], "sum to 1"), ([1.5, -0.5], ">= 0")],
)
def test_bad_weights(tiny_policy_dir, tmp_path, weights, match):
    other = _perturbed_copy(tiny_policy_dir, tmp_path / "finetune")
    with pytest.raises(ValueError, match=match):
        average_checkpoints([tiny_policy_dir, other], tmp_path / "avg", weights)


def test_cli(tiny_policy_dir, tmp_path, capsys):
    other = _perturbed_copy(tiny_policy_dir, tmp_path / "finetune")
    out = tmp_path / "avg"
    assert main(["average", str(tiny_policy_dir), str(other), "--weights", "0.5,0.5", "--out", str(out)]) == 0
    assert (out / "model.safetensors").exists()
    # writing over an input is refused, and the input is untouched
    before = (other / "model.safetensors").read_bytes()
    assert main(["average", str(tiny_policy_dir), str(other), "--out", str(other)]) == 2
    assert "write the average to a new folder" in " ".join(capsys.readouterr().out.split())
    assert (other / "model.safetensors").read_bytes() == before
    assert main(["average", str(tiny_policy_dir), str(other), "--weights", "0.2,0.2", "--out", str(out)]) == 2
    assert "sum to 1" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # not numbers: argparse's usage error
        main(["average", str(tiny_policy_dir), str(other), "--weights", "half,half", "--out", str(out)])
