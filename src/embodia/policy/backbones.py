"""The hook for a pretrained vision backbone: a transformers vision model read from a local folder.

    VLAConfig(backbone="hf:/path/to/folder", keypoints=0)
    embodia train DATASET --backbone hf:/path/to/folder

The folder is what `save_pretrained` writes: `config.json` and `model.safetensors` (ResNet, ConvNeXt,
ViT, DINOv2, SigLIP's vision tower, ... anything `AutoModel` builds whose output has a
`last_hidden_state` feature map or patch tokens). embodia never downloads it, and never reads pickled
`pytorch_model.bin` weights: convert those once with `save_pretrained(..., safe_serialization=True)`.

How it plugs in: the backbone replaces the built-in CNN of `VisionEncoder` and keeps its contract,
images (B, K, 3, H, W) in [0, 1] plus the instruction's sentence vector -> tokens (B, K, N, d_model).
Its feature grid is FiLM-modulated by the sentence (initialised to the identity, so training starts
from the pretrained features unchanged) and projected to the model width. BatchNorm layers keep their
pretrained statistics (the built-in CNN uses GroupNorm for the same reason).

The checkpoint stays self-contained: the first build copies the backbone's architecture config into
`VLAConfig.backbone_config` and its weights become part of `model.safetensors`, so loading a trained
policy rebuilds the backbone from that config and never needs the original folder.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch
from torch import nn

from embodia.policy.language import HIDDEN as LANG_DIM

HF_PREFIX = "hf:"
# ImageNet statistics: what most pretrained vision models expect when the folder has no
# preprocessor_config.json saying otherwise.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def backbone_folder(spec: str) -> Path:
    if not spec.startswith(HF_PREFIX) or len(spec) == len(HF_PREFIX):
        raise ValueError(f"backbone must be 'cnn' or 'hf:<local folder>', got {spec!r}")
    return Path(spec[len(HF_PREFIX) :]).expanduser()


def check_backbone(spec: str) -> Path:
    """The folder named by an "hf:<folder>" spec, checked before anything is built or written."""
    folder = backbone_folder(spec)
    missing = [name for name in ("config.json", "model.safetensors") if not (folder / name).is_file()]
    if missing:
        raise ValueError(
            f"pretrained backbone folder {folder}: missing {', '.join(missing)}. Give a local folder written "
            "by a transformers model's save_pretrained(..., safe_serialization=True); embodia never "
            "downloads weights and never loads pickled ones"
        )
    return folder


def _pixel_stats(folder: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    pre = folder / "preprocessor_config.json"
    if pre.is_file():
        data = json.loads(pre.read_text())
        mean, std = data.get("image_mean"), data.get("image_std")
        if isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) == 3:
            return tuple(float(v) for v in mean), tuple(float(v) for v in std)
    return IMAGENET_MEAN, IMAGENET_STD


class PretrainedVision(nn.Module):
    """A transformers vision model in place of the built-in CNN (same inputs and outputs)."""

    def __init__(self, cfg):
        super().__init__()
        from transformers import AutoConfig, AutoModel

        if cfg.backbone_config is None:  # a new model: start from the pretrained weights in the folder
            folder = check_backbone(cfg.backbone)
            self.net = AutoModel.from_pretrained(folder, local_files_only=True, use_safetensors=True)
            cfg.backbone_config = json.loads(self.net.config.to_json_string())
            mean, std = _pixel_stats(folder)
        else:  # a trained policy: same architecture; its weights come with the checkpoint's
            self.net = AutoModel.from_config(AutoConfig.for_model(**cfg.backbone_config))
            mean, std = IMAGENET_MEAN, IMAGENET_STD  # placeholders, overwritten by the saved buffers
        # Buffers, so that the statistics are saved with the weights and travel with the checkpoint.
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self._interpolate = "interpolate_pos_encoding" in inspect.signature(self.net.forward).parameters
        self.image_size = cfg.image_size
        self.train()  # (BatchNorm layers stay in eval mode: see train())
        probe = self._features(torch.rand(1, 3, cfg.image_size, cfg.image_size))
        # Parameters the features do not depend on (a pooler head) are frozen: under several processes
        # (DDP) a parameter that never gets a gradient would stall every step.
        probe.sum().backward()
        for param in self.net.parameters():
            if param.grad is None:
                param.requires_grad_(False)
            param.grad = None
        self.n_grid, channels = probe.shape[1], probe.shape[2]
        self.film = nn.Linear(LANG_DIM, 2 * channels)
        nn.init.zeros_(self.film.weight)  # start as the identity modulation: pretrained features as they are
        nn.init.zeros_(self.film.bias)
        self.proj = nn.Linear(channels, cfg.d_model)
        self.pos = nn.Parameter(torch.zeros(1, 1, self.n_grid, cfg.d_model))
        self.camera = nn.Parameter(torch.zeros(1, cfg.max_cameras, 1, cfg.d_model))
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.camera, std=0.02)

    def train(self, mode: bool = True) -> PretrainedVision:
        """BatchNorm statistics stay the pretrained ones (frozen BatchNorm, as DETR / ACT do): robot
        batches are small and correlated, and re-estimating them would undo the pretraining."""
        super().train(mode)
        for module in self.net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised pixels -> (N, tokens, channels)."""
        kwargs = {"interpolate_pos_encoding": True} if self._interpolate else {}
        hidden = self.net(pixel_values=x, **kwargs).last_hidden_state
        if hidden.dim() == 4:  # convolutional: (N, C, h, w) feature map
            return hidden.flatten(2).transpose(1, 2)
        # Transformers (ViT, DINOv2): keep the patch grid, drop the class / register tokens before it.
        patch = self.net.config.patch_size
        patch = patch[0] if isinstance(patch, (list, tuple)) else patch
        n = (x.shape[-2] // patch) * (x.shape[-1] // patch)
        return hidden[:, -n:]

    def forward(self, images: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
        """images (B, K, 3, H, W) in [0, 1] -> tokens (B, K, N, D)."""
        b, k = images.shape[:2]
        x = (images.flatten(0, 1) - self.mean) / self.std
        feats = self._features(x)  # (B*K, N, C)
        gamma, beta = self.film(sentence.repeat_interleave(k, dim=0)).chunk(2, dim=-1)
        feats = feats * (1 + gamma[:, None]) + beta[:, None]
        tokens = self.proj(feats).view(b, k, self.n_grid, -1) + self.pos
        return tokens + self.camera[:, :k]
