"""Feature statistics in LeRobot's layout: min, max, mean, std, count, q01, q10, q50, q90, q99.

Vectors get one value per dimension. Images get one value per channel with shape (3, 1, 1), computed
on pixel values divided by 255, with `count` = number of frames (as LeRobot writes them).

Dataset stats are aggregated from episode stats: min/max/count exactly, mean and std exactly (pooled
variance), quantiles as the count-weighted mean of the episodes' quantiles -- an approximation, the
same kind LeRobot makes, since exact quantiles would need every value again.
"""

from __future__ import annotations

import numpy as np

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
MAX_IMAGE_FRAMES = 100  # frames sampled per episode for image stats
MAX_IMAGE_PIXELS = 4096  # pixels kept per sampled frame (strided)


def vector_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Stats over axis 0 of (N,) or (N, d) values."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if len(x) == 0:
        raise ValueError("cannot compute statistics of an empty episode")
    out = {
        "min": x.min(axis=0),
        "max": x.max(axis=0),
        "mean": x.mean(axis=0),
        "std": x.std(axis=0),
        "count": np.array([len(x)], dtype=np.int64),
    }
    for name, q in QUANTILES.items():
        out[name] = np.quantile(x, q, axis=0)
    return out


def image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel stats of uint8 (N, H, W, 3) frames, scaled to [0, 1], shaped (3, 1, 1)."""
    n = len(frames)
    if n == 0:
        raise ValueError("cannot compute statistics of an empty episode")
    idx = np.unique(np.linspace(0, n - 1, min(n, MAX_IMAGE_FRAMES)).astype(int))
    pix = frames[idx].reshape(len(idx), -1, 3)
    stride = max(1, pix.shape[1] // MAX_IMAGE_PIXELS)
    sample = pix[:, ::stride].reshape(-1, 3).astype(np.float64) / 255.0
    s = vector_stats(sample)
    out = {k: v.reshape(3, 1, 1) for k, v in s.items() if k != "count"}
    out["count"] = np.array([n], dtype=np.int64)
    return out


def aggregate(per_episode: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Combine one feature's stats over episodes."""
    if not per_episode:
        raise ValueError("no episodes to aggregate")
    counts = np.array([float(np.asarray(s["count"]).reshape(-1)[0]) for s in per_episode])
    w = counts / counts.sum()
    wshape = (-1,) + (1,) * np.asarray(per_episode[0]["mean"]).ndim
    wb = w.reshape(wshape)
    means = np.stack([np.asarray(s["mean"], np.float64) for s in per_episode])
    stds = np.stack([np.asarray(s["std"], np.float64) for s in per_episode])
    mean = (wb * means).sum(axis=0)
    var = (wb * (stds**2 + (means - mean) ** 2)).sum(axis=0)
    out = {
        "min": np.min(np.stack([s["min"] for s in per_episode]), axis=0),
        "max": np.max(np.stack([s["max"] for s in per_episode]), axis=0),
        "mean": mean,
        "std": np.sqrt(np.maximum(var, 0.0)),
        "count": np.array([int(counts.sum())], dtype=np.int64),
    }
    for name in QUANTILES:
        if all(name in s for s in per_episode):  # older (v2.1) stats have no quantiles
            out[name] = (wb * np.stack([np.asarray(s[name], np.float64) for s in per_episode])).sum(axis=0)
    return out


def to_json(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, list]]:
    return {feat: {k: np.asarray(v).tolist() for k, v in s.items()} for feat, s in stats.items()}
