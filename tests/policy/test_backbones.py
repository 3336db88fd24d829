"""The pretrained-backbone hook: a transformers vision model from a local folder replaces the CNN,
trains, and the checkpoint reloads without the folder. Tiny random models stand in for real ones."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from embodia.policy.model import VLA
from embodia.policy.policy import Policy
from embodia.train.config import preset
from embodia.train.loop import train

FIXTURE = Path(__file__).parents[1] / "fixtures" / "so101_tabletop_tiny"


def _save_resnet(folder: Path) -> Path:
    from transformers import ResNetConfig, ResNetModel

    torch.manual_seed(0)
    net = ResNetModel(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic"))
    net.save_pretrained(folder, safe_serialization=True)
    return folder


def _save_vit(folder: Path) -> Path:
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    config = ViTConfig(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=64,
        patch_size=8,
    )
    ViTModel(config, add_pooling_layer=False).save_pretrained(folder, safe_serialization=True)
    return folder


def _tiny_cfg(tmp_path: Path, backbone: str, steps: int = 3):
    cfg = preset(
        "tiny", datasets=[str(FIXTURE)], cache_dir=str(tmp_path / "cache"), steps=steps, save_every=steps
    )
    cfg.model = replace(cfg.model, backbone=backbone, keypoints=0)  # (presets share their model config)
    return cfg


@pytest.mark.parametrize("make", [_save_resnet, _save_vit], ids=["resnet", "vit"])
def test_pretrained_backbone_trains_and_reloads_without_its_folder(tmp_path, make):
    folder = make(tmp_path / "backbone")
    from transformers import AutoModel

    pretrained = AutoModel.from_pretrained(folder, local_files_only=True).state_dict()
    final = train(_tiny_cfg(tmp_path, f"hf:{folder}"), tmp_path / "run")
    # A first build copies the pretrained weights in (checked on a fresh build: training moved them).
    net = VLA(_tiny_cfg(tmp_path, f"hf:{folder}").model).vision.net
    fresh = net.state_dict()
    pooler = getattr(net, "pooler", None)
    if pooler is not None:  # not on the features' path: frozen, so DDP never waits for its gradient
        assert not any(p.requires_grad for p in pooler.parameters())
    assert fresh.keys() == pretrained.keys()
    for name, value in pretrained.items():
        if "pooler" not in name:  # (a ViT's pooler is not in the saved file: newly initialised)
            assert torch.equal(fresh[name], value), name

    for name in list(folder.iterdir()):
        name.unlink()
    folder.rmdir()  # the checkpoint must not need it any more
    policy = Policy.from_pretrained(final)
    assert policy.cfg.backbone_config is not None and policy._fast is None
    obs = {
        "observation.images.front": np.zeros((32, 32, 3), np.uint8),
        "observation.images.wrist": np.zeros((32, 32, 3), np.uint8),
        "observation.state": np.zeros(6, np.float32),
        "task": "lift the red block",
    }
    chunk = policy.predict_chunk([obs], noise=torch.zeros(1, policy.chunk_size, policy.cfg.max_action_dim))
    assert chunk.shape == (1, policy.chunk_size, 6) and np.all(np.isfinite(chunk))


def test_backbone_errors_say_what_to_do(tmp_path):
    with pytest.raises(ValueError, match="'cnn' or 'hf:<local folder>'"):
        _tiny_cfg(tmp_path, "resnet18")
    with pytest.raises(ValueError, match="never\\s+downloads"):
        VLA(_tiny_cfg(tmp_path, f"hf:{tmp_path / 'nowhere'}").model)
    with pytest.raises(ValueError, match="set keypoints=0"):
        replace(_tiny_cfg(tmp_path, "cnn").model, backbone="hf:/x", keypoints=4)
