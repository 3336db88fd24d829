"""Weight-space averaging of checkpoints that share a starting point (WiSE-FT, model soups).

A fine-tune often trades robustness for fit: it gets better on what it was trained on and worse on
what it was not (here, instruction phrasings it never saw). Wortsman et al. (WiSE-FT, 2022) showed that
linearly interpolating the weights of a model and its fine-tune keeps most of the fine-tune's gain
while recovering the original's robustness, and that the mixing weight 0.5 is a good default chosen
without looking at out-of-distribution data. This only makes sense for checkpoints that descend from
the same weights (the loss is roughly convex along the line between them); two independently trained
models average into noise. So this module refuses checkpoints whose architecture, embodiments or
normalisation differ: those were trained against different inputs, and their average is meaningless.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from embodia.policy.checkpoint import (
    CheckpointError,
    check_policy_folder,
    file_hash,
    read_json,
    read_tensors,
    resolve_policy,
    write_folder,
)

# Config entries that a checkpoint's behaviour depends on; everything else (metadata) may differ.
_MUST_MATCH = ("format", "format_version", "model", "default_embodiment", "embodiments")


def average_checkpoints(paths: list[str | Path], out: str | Path, weights: list[float] | None = None) -> Path:
    """Write the weighted average of checkpoints `paths` (folders or shipped names, e.g. 'base') to
    folder `out` and return it.

    `weights` (one per checkpoint, >= 0, summing to 1; default uniform) multiply the weights of each
    model; the config and normalisation come from the first checkpoint, with the sources recorded in
    its metadata (`averaged_from`)."""
    if len(paths) < 2:
        raise ValueError(f"averaging needs at least two checkpoints, got {len(paths)}")
    if weights is None:
        weights = [1.0 / len(paths)] * len(paths)
    if len(weights) != len(paths):
        raise ValueError(f"got {len(weights)} weights for {len(paths)} checkpoints; give one per checkpoint")
    if any(w < 0 for w in weights) or abs(sum(weights) - 1.0) > 1e-6:
        raise ValueError(f"weights must be >= 0 and sum to 1, got {weights} (sum {sum(weights):.6g})")
    roots = [check_policy_folder(resolve_policy(p)) for p in paths]
    out = Path(out)
    if any(out.resolve() == r.resolve() for r in roots):
        raise ValueError(f"--out {out} is one of the inputs; write the average to a new folder")

    configs = [read_json(r / "config.json") for r in roots]
    norms = [read_json(r / "normalization.json") for r in roots]
    for root, cfg, norm in zip(roots[1:], configs[1:], norms[1:], strict=True):
        for key in _MUST_MATCH:
            if cfg.get(key) != configs[0].get(key):
                raise CheckpointError(
                    f"{root}: config.json {key!r} differs from {roots[0]}'s; only checkpoints of the same "
                    "architecture and embodiments (typically fine-tunes of one base) can be averaged"
                )
        if norm != norms[0]:
            raise CheckpointError(
                f"{root}: normalization.json differs from {roots[0]}'s; the models were trained on "
                "differently normalised data, so their weights do not mean the same thing"
            )

    tensors = [read_tensors(r / "model.safetensors") for r in roots]
    averaged: dict[str, torch.Tensor] = {}
    for name, first in tensors[0].items():
        for root, other in zip(roots[1:], tensors[1:], strict=True):
            if name not in other or other[name].shape != first.shape or other[name].dtype != first.dtype:
                raise CheckpointError(
                    f"{root / 'model.safetensors'}: tensor {name!r} is missing or differs in shape/dtype"
                )
        if first.is_floating_point():
            # Accumulate in float64 so that averaging many checkpoints does not lose low bits.
            total = sum(w * t[name].double() for w, t in zip(weights, tensors, strict=True))
            averaged[name] = total.to(first.dtype)
        else:  # integer buffers (counters, indices) cannot be interpolated; they must agree
            if any(not torch.equal(t[name], first) for t in tensors[1:]):
                raise CheckpointError(f"integer tensor {name!r} differs between the checkpoints")
            averaged[name] = first
    extra = [set(t) - set(tensors[0]) for t in tensors[1:]]
    for root, names in zip(roots[1:], extra, strict=True):
        if names:
            raise CheckpointError(f"{root / 'model.safetensors'}: unexpected tensors {sorted(names)[:5]}")

    config = json.loads(json.dumps(configs[0]))  # a deep copy
    meta = config.setdefault("metadata", {})
    meta["averaged_from"] = [
        {"path": str(r.resolve()), "weight": w, "checkpoint_hash": file_hash(r / "model.safetensors")}
        for r, w in zip(roots, weights, strict=True)
    ]
    return write_folder(
        out, {"config.json": config, "normalization.json": norms[0], "model.safetensors": averaged}
    )
