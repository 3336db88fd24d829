"""Batch transforms: small typed steps from a collated dataset batch to the model's inputs, composed
outside the training loop (the style of openpi's transforms and LeRobot's processors).

    batch = Compose([ImageAugment(cams), Paraphrase(alternatives, 0.5), EncodeInstructions(table),
                     WordDropout(0.15), SentenceNoise(0.5), ToModelInputs(info, model_cfg)])(batch, g)

A batch is the dict `TrainingDataset.__getitems__` returns (camera images, `observation.state`,
`action`, `action_is_pad`, `task`); each transform returns a new dict with the keys it writes (named
below) and leaves its input untouched. Every random draw comes from the generator passed in, in the
order the steps run, so a batch stays a pure function of the training step (exact resume). A transform
whose rate is 0 draws nothing. Each one is a frozen dataclass whose fields are its configuration,
checked when it is built.

Why in `data/`: the transforms consume what the dataset loader produces (the image augmentation ran
in `data/loader.py` before), they build on the policy's input processing (`policy.inputs`: the
language table, normalisation, camera slots), which sits on a lower floor, and the trainer, on a
higher one, only chooses and orders them. Nothing here knows where alternative phrasings come from:
`Paraphrase` and `SentenceMix` take a mapping task -> other phrasings, which the caller builds (the
simulated tabletop's templates reach training through `embodia train` and the recipes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from embodia.policy.inputs import EmbodimentInfo, LanguageTable, action_targets, model_inputs
from embodia.policy.model import VLAConfig
from embodia.robots.spec import ACTION, OBS_STATE

Batch = dict[str, Any]
# (instruction, with carrier words) -> other phrasings of the same task ([] when it knows none).
PhrasingSource = Callable[[str, bool], Sequence[str]]

TASK = "task"  # the dataset's instruction of each sample; never rewritten
INSTRUCTION = "instruction"  # the text the model is shown (Paraphrase writes it; default: TASK)
LANG_TOKENS, LANG_MASK, SENTENCE = "lang_tokens", "lang_mask", "sentence"  # EncodeInstructions
MODEL_INPUTS, TARGETS, LOSS_MASK = "model_inputs", "targets", "loss_mask"  # ToModelInputs


class Transform(Protocol):
    def __call__(self, batch: Batch, g: torch.Generator | None = None) -> Batch: ...


def _probability(owner: str, name: str, value: float, below_one: bool = False) -> None:
    ok = 0 <= value < 1 if below_one else 0 <= value <= 1
    if not ok:
        raise ValueError(f"{owner}.{name} is a probability in [0, {'1)' if below_one else '1]'}, got {value}")


def _needs(batch: Batch, owner: str, keys: tuple[str, ...], before: str) -> None:
    missing = [k for k in keys if k not in batch]
    if missing:
        raise KeyError(f"{owner} needs {missing} in the batch: put {before} before it")


def _instructions(batch: Batch) -> list[str]:
    return list(batch[INSTRUCTION] if INSTRUCTION in batch else batch[TASK])


def _phrasing_table(owner: str, alternatives: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """A frozen copy of task -> other phrasings; tasks without any are left out."""
    if not isinstance(alternatives, Mapping):
        raise TypeError(f"{owner}.alternatives maps a task to its other phrasings, got {type(alternatives)}")
    table = {}
    for task, phrasings in alternatives.items():
        if isinstance(phrasings, str) or not all(isinstance(a, str) for a in phrasings):
            raise TypeError(f"{owner}.alternatives[{task!r}] must be a list of strings, got {phrasings!r}")
        if phrasings:
            table[str(task)] = tuple(phrasings)
    return table


# ------------------------------------------------------------------------------ the functions behind them
def swap_phrasings(
    texts: list[str], alternatives: Mapping[str, Sequence[str]], p: float, g: torch.Generator | None
) -> list[str]:
    """Replace each instruction, with probability p, by one of its other phrasings (drawn from g)."""
    swap = (torch.rand(len(texts), generator=g) < p).tolist()
    pick = torch.randint(1 << 30, (len(texts),), generator=g).tolist()
    out = []
    for text, s, k in zip(texts, swap, pick, strict=True):
        alts = alternatives.get(text)
        out.append(alts[k % len(alts)] if s and alts else text)
    return out


def drop_words(mask: torch.Tensor, p: float, g: torch.Generator | None) -> torch.Tensor:
    """Hide each word token with probability p. The first and last real tokens ([CLS] and [SEP]) always
    stay, so every instruction keeps at least those two."""
    real = mask.sum(1, keepdim=True)  # (B, 1) number of real tokens
    pos = torch.arange(mask.shape[1])[None, :]
    words = mask & (pos > 0) & (pos < real - 1)
    return mask & ~(words & (torch.rand(mask.shape, generator=g) < p))


def mix_sentences(
    pooled: torch.Tensor, toward: torch.Tensor, p: float, g: torch.Generator | None
) -> torch.Tensor:
    """With probability p per sample, move the unit sentence vector a uniform fraction of the way to
    `toward` (another phrasing of the same task) and renormalise."""
    frac = torch.rand(len(pooled), 1, generator=g) * (torch.rand(len(pooled), 1, generator=g) < p)
    return torch.nn.functional.normalize(pooled + frac * (toward - pooled), dim=-1)


def perturb_sentences(pooled: torch.Tensor, scale: float, g: torch.Generator | None) -> torch.Tensor:
    """Add `scale` times a random unit vector to each unit sentence vector and renormalise."""
    direction = torch.nn.functional.normalize(torch.randn(pooled.shape, generator=g), dim=-1)
    return torch.nn.functional.normalize(pooled + scale * direction, dim=-1)


# ------------------------------------------------------------------------------------------ transforms
@dataclass(frozen=True)
class Compose:
    """The steps in order, each fed the previous one's batch and the same generator."""

    steps: Sequence[Transform]

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps))
        for step in self.steps:
            if not callable(step):
                raise TypeError(f"Compose takes transforms (callables batch, g -> batch), got {step!r}")

    def __call__(self, batch: Batch, g: torch.Generator | None = None) -> Batch:
        for step in self.steps:
            batch = step(batch, g)
        return batch


@dataclass(frozen=True)
class ImageAugment:
    """Random shift (pad-and-crop, `max_shift` of the image side) and colour jitter (brightness,
    contrast, saturation) on uint8 (B, C, H, W) images; writes float images in [0, 1]. One colour draw
    per sample, shared by its cameras (the light is the same for all), an independent shift per
    camera. Batched: much cheaper than per sample."""

    cameras: Sequence[str]
    max_shift: float = 0.08
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2

    def __post_init__(self) -> None:
        object.__setattr__(self, "cameras", tuple(self.cameras))
        if not self.cameras:
            raise ValueError("ImageAugment.cameras: give the image keys to augment (none given)")
        _probability("ImageAugment", "max_shift", self.max_shift)
        for name in ("brightness", "contrast", "saturation"):
            _probability("ImageAugment", name, getattr(self, name), below_one=True)

    def __call__(self, batch: Batch, g: torch.Generator | None = None) -> Batch:
        _needs(batch, "ImageAugment", self.cameras, "the dataset's images")
        out = dict(batch)
        b = batch[self.cameras[0]].shape[0]

        def u(spread: float) -> torch.Tensor:
            lo, hi = 1 - spread, 1 + spread
            return lo + (hi - lo) * torch.rand(b, 1, 1, 1, generator=g)

        bri, con, sat = u(self.brightness), u(self.contrast), u(self.saturation)
        for key in self.cameras:
            x = batch[key]
            _, c, h, w = x.shape
            pad = max(1, int(round(self.max_shift * max(h, w))))
            # Padded while still uint8: 4x less memory than float.
            padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="replicate")
            dx = torch.randint(0, 2 * pad + 1, (b,), generator=g).tolist()
            dy = torch.randint(0, 2 * pad + 1, (b,), generator=g).tolist()
            # Per-sample slicing is a plain memory copy; far cheaper than a gather over every pixel.
            x = torch.stack([padded[j, :, dy[j] : dy[j] + h, dx[j] : dx[j] + w] for j in range(b)]).float()
            # Brightness then contrast around the (brightened) image mean, folded into one affine map.
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = x.mul_(bri * con).add_(bri * mean * (1 - con))
            if c == 3:  # saturation: blend with the luma image
                gray = x[:, 0:1] * 0.299 + x[:, 1:2] * 0.587 + x[:, 2:3] * 0.114
                x = x.mul_(sat).add_(gray * (1 - sat))
            out[key] = x.div_(255.0).clamp_(0.0, 1.0)
        return out


@dataclass(frozen=True)
class Paraphrase:
    """Show the model, with probability p per sample, another phrasing of its task instead of the
    dataset's (`alternatives`: task -> other phrasings; tasks it does not name are never swapped), so
    the policy follows meaning, not exact strings. Writes INSTRUCTION."""

    alternatives: Mapping[str, Sequence[str]]
    p: float = 0.5

    def __post_init__(self) -> None:
        _probability("Paraphrase", "p", self.p)
        object.__setattr__(self, "alternatives", _phrasing_table("Paraphrase", self.alternatives))

    def __call__(self, batch: Batch, g: torch.Generator | None = None) -> Batch:
        if self.p == 0 or not self.alternatives:
            return batch
        return {**batch, INSTRUCTION: swap_phrasings(_instructions(batch), self.alternatives, self.p, g)}


@dataclass(frozen=True)
class EncodeInstructions:
    """Look each sample's instruction up in a table of encodings made beforehand (every text it may
    meet, paraphrases included): writes LANG_TOKENS (B, T, 384), LANG_MASK (B, T) and SENTENCE
    (B, 384), the pooled unit vector. An instruction missing from the table is a KeyError naming it."""

    table: LanguageTable

    def __call__(self, batch: Batch, g: torch.Generator | None = None) -> Batch:
        tokens, mask, pooled = self.table.lookup(_instructions(batch))
        return {**batch, LANG_TOKENS: tokens, LANG_MASK: mask, SENTENCE: pooled}


@dataclass(frozen=True)
class WordDropout:
    """Hide each word token of an instruction (not [CLS]/[SEP]) with probability p, so no single word
    carries the task: an unseen verb at test time is then one uninformative word among others the
    policy has learnt to use. The sentence vector is kept whole. Rewrites LANG_MASK."""

    p: float

    def __post_init__(self) -> None:
        _probability("WordDropout", "p", self.p, below_one=True)

    def __call__(self, batch: Batch, g: torch.Generator | None = None) -> Batch:
        if self.p == 0:
            return batch
        _needs(batch, "WordDropout", (LANG_MASK,), "EncodeInstructions")
        return {**batch, LANG_MASK: drop_words(batch[LANG_MASK], self.p, g)}


@dataclass(frozen=True)
class SentenceMix:
    """With probability p per sample, move the sentence vector (which drives FiLM in the vision
    encoder) a uniform fraction of the way toward the vector of another phrasing of the dataset's task
    (`alternatives`, encoded in `table`). Rewrites SENTENCE."""

    alternatives: Mapping[str, Sequence[str]]
    table: LanguageTable
    p: float = 0.5

    def __post_init__(self) -> None:
        _probability("SentenceMix", "p", self.p)
        object.__setattr__(self, "alternatives", _phrasing_table("SentenceMix", self.alternatives))
        missing = [a for alts in self.alternatives.values() for a in alts if a not in self.table.index]
        if missing:
            raise ValueError(
                f"SentenceMix: {len(missing)} phrasings are not in its table (e.g. {missing[0]!r}); "
                "encode the alternatives with the tasks"
            )

    def __call__(self, batch: Batch, g: torch.Generator | None = None) -> Batch:
        if self.p == 0 or not self.alternatives:
            return batch
        _needs(batch, "SentenceMix", (SENTENCE,), "EncodeInstructions")
        _, _, toward = self.table.lookup(swap_phrasings(list(batch[TASK]), self.alternatives, 1.0, g))
        return {**batch, SENTENCE: mix_sentences(batch[SENTENCE], toward, self.p, g)}


@dataclass(frozen=True)
class SentenceNoise:
    """Add `scale` x a random unit vector to each sentence vector and renormalise (cosine to the
    original ~ 1 / sqrt(1 + scale^2)). Rewrites SENTENCE."""

    scale: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale) and self.scale >= 0):
            raise ValueError(
                f"SentenceNoise.scale is a finite scale >= 0 (0.5: cosine ~0.9), got {self.scale}"
            )

    def __call__(self, batch: Batch, g: torch.Generator | None = None) -> Batch:
        if self.scale == 0:
            return batch
        _needs(batch, "SentenceNoise", (SENTENCE,), "EncodeInstructions")
        return {**batch, SENTENCE: perturb_sentences(batch[SENTENCE], self.scale, g)}


@dataclass(frozen=True)
class ToModelInputs:
    """Normalisation and layout for one embodiment: images (read from `cameras`, in slot order; default
    the embodiment's) resized into the model's camera slots, the state normalised with the embodiment's
    stats and zero-padded, the encoded instruction; action chunks as the targets the model predicts
    (delta dims relative to the state, normalised, padded) with their loss mask. Writes MODEL_INPUTS
    (the keyword arguments of `VLA.encode_prefix`), TARGETS and LOSS_MASK, all on `device`."""

    info: EmbodimentInfo
    model: VLAConfig
    cameras: Sequence[str] = ()
    device: str | torch.device = "cpu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "cameras", tuple(self.cameras or self.info.cameras))
        m, i = self.model, self.info
        if not self.cameras:
            raise ValueError(f"ToModelInputs: embodiment {i.name!r} has no camera; the model needs one")
        if len(self.cameras) > m.max_cameras:
            raise ValueError(f"ToModelInputs: {len(self.cameras)} cameras; the model takes {m.max_cameras}")
        if i.state_dim > m.max_state_dim or i.action_dim > m.max_action_dim:
            raise ValueError(
                f"ToModelInputs: embodiment {i.name!r} has state/action dims ({i.state_dim}, "
                f"{i.action_dim}); the model takes ({m.max_state_dim}, {m.max_action_dim})"
            )

    def __call__(self, batch: Batch, g: torch.Generator | None = None) -> Batch:
        _needs(batch, "ToModelInputs", (LANG_TOKENS, LANG_MASK, SENTENCE), "EncodeInstructions")
        m, device = self.model, self.device
        inputs = model_inputs(
            self.info,
            [batch[c].to(device) for c in self.cameras],
            batch[OBS_STATE].to(device),
            (batch[LANG_TOKENS], batch[LANG_MASK], batch[SENTENCE]),
            m.image_size,
            m.max_cameras,
            m.max_state_dim,
        )
        targets, loss_mask = action_targets(
            self.info, batch[ACTION], batch["action_is_pad"], m.max_action_dim, state=batch[OBS_STATE]
        )
        return {**batch, MODEL_INPUTS: inputs, TARGETS: targets.to(device), LOSS_MASK: loss_mask.to(device)}
