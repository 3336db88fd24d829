"""Helpers shared by the serving tests."""

from __future__ import annotations

import numpy as np


def make_obs(features: dict, seed: int = 0, task: str = "pick up the red block") -> dict:
    """A valid observation built from the server's metadata alone (keys, shapes, dtypes)."""
    rng = np.random.default_rng(seed)
    obs = {}
    for key, f in features.items():
        if f["dtype"] == "str":
            obs[key] = task
        elif f["dtype"] == "uint8":
            obs[key] = rng.integers(0, 256, f["shape"], dtype=np.uint8)
        else:
            obs[key] = (rng.normal(size=f["shape"]) * 0.3).astype(f["dtype"])
    return obs
