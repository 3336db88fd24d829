"""Per-embodiment normalisation and padding to the policy's fixed dimensions.

Actions: q01/q99 mapped to [-1, 1] (robust to outliers, as pi0.5 does). State: mean/std. A dimension
whose range is empty (q01 == q99, or std == 0: a joint that never moved in the data) gets identity
normalisation and a warning instead of a division by ~0 that would blow its values up. Vectors are
zero-padded to the model's maximum dimension with a mask, so embodiments of different sizes share one
network and the padded entries never enter the loss.

The stats live in the checkpoint (`to_dict`/`from_dict`, plain lists in JSON); a policy that is run
without the stats it was trained with is the most common "loss is low, robot misbehaves" bug.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

EPS = 1e-6


@dataclass
class Normalizer:
    names: tuple[str, ...]
    action_low: np.ndarray  # q01
    action_high: np.ndarray  # q99
    state_mean: np.ndarray
    state_std: np.ndarray

    @classmethod
    def from_stats(cls, stats: dict, state_key: str = "observation.state", action_key: str = "action",
                   names: tuple[str, ...] = ()) -> Normalizer:  # fmt: skip
        """Build from a LeRobot stats dict (meta/stats.json layout)."""
        try:
            lo, hi = np.asarray(stats[action_key]["q01"], float), np.asarray(stats[action_key]["q99"], float)
            mean, std = (
                np.asarray(stats[state_key]["mean"], float),
                np.asarray(stats[state_key]["std"], float),
            )
        except KeyError as exc:
            raise ValueError(
                f"normalisation needs {action_key} q01/q99 and {state_key} mean/std in the stats; missing {exc}"
            ) from None
        flat_a = np.flatnonzero(hi - lo < EPS)
        flat_s = np.flatnonzero(std < EPS)
        if len(flat_a):
            warnings.warn(
                f"action dims {flat_a.tolist()} never vary (q01 == q99): identity normalisation", stacklevel=2
            )
        if len(flat_s):
            warnings.warn(
                f"state dims {flat_s.tolist()} never vary (std == 0): identity normalisation", stacklevel=2
            )
        return cls(tuple(names), lo, hi, mean, std)

    # The affine maps, with identity where the range is empty.
    def _action_affine(self) -> tuple[np.ndarray, np.ndarray]:
        span = self.action_high - self.action_low
        ok = span >= EPS
        scale = np.where(ok, 2.0 / np.where(ok, span, 1.0), 1.0)
        shift = np.where(ok, -1.0 - self.action_low * scale, 0.0)
        return scale, shift

    def _state_affine(self) -> tuple[np.ndarray, np.ndarray]:
        ok = self.state_std >= EPS
        scale = np.where(ok, 1.0 / np.where(ok, self.state_std, 1.0), 1.0)
        shift = np.where(ok, -self.state_mean * scale, 0.0)
        return scale, shift

    def normalize_action(self, a: torch.Tensor) -> torch.Tensor:
        scale, shift = (torch.as_tensor(v, dtype=a.dtype, device=a.device) for v in self._action_affine())
        return a * scale + shift

    def unnormalize_action(self, a: torch.Tensor) -> torch.Tensor:
        scale, shift = (torch.as_tensor(v, dtype=a.dtype, device=a.device) for v in self._action_affine())
        return (a - shift) / scale

    def normalize_state(self, s: torch.Tensor) -> torch.Tensor:
        scale, shift = (torch.as_tensor(v, dtype=s.dtype, device=s.device) for v in self._state_affine())
        return s * scale + shift

    def to_dict(self) -> dict:
        return {
            "names": list(self.names),
            "action_q01": self.action_low.tolist(),
            "action_q99": self.action_high.tolist(),
            "state_mean": self.state_mean.tolist(),
            "state_std": self.state_std.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Normalizer:
        return cls(
            tuple(d.get("names", ())),
            np.asarray(d["action_q01"], float),
            np.asarray(d["action_q99"], float),
            np.asarray(d["state_mean"], float),
            np.asarray(d["state_std"], float),
        )


def pad_to(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad the last axis to `dim`; returns (padded, mask) with mask True on real entries."""
    n = x.shape[-1]
    if n > dim:
        raise ValueError(f"vector of size {n} does not fit the model's maximum dimension {dim}")
    padded = torch.nn.functional.pad(x, (0, dim - n))
    mask = torch.zeros(dim, dtype=torch.bool, device=x.device)
    mask[:n] = True
    return padded, mask.expand(*x.shape[:-1], dim)
