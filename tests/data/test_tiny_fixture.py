"""The committed tiny dataset (recorded by `embodia record`) stays valid LeRobotDataset v3.0."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from embodia.data.video import decode_all

ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "so101_tabletop_tiny"


def test_schema_and_totals():
    info = json.loads((ROOT / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_episodes"] >= 3
    data = pq.read_table(ROOT / "data/chunk-000/file-000.parquet").to_pydict()
    assert len(data["index"]) == info["total_frames"]
    episodes = pq.read_table(ROOT / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert len(episodes) == info["total_episodes"]
    tasks = pq.read_table(ROOT / "meta/tasks.parquet").to_pydict()
    assert len(tasks["task_index"]) == info["total_tasks"]
    for key in ("observation.state", "action", "observation.images.front", "observation.images.wrist"):
        assert key in info["features"]


def test_contiguous_indices_and_timestamps():
    info = json.loads((ROOT / "meta/info.json").read_text())
    data = pq.read_table(ROOT / "data/chunk-000/file-000.parquet").to_pydict()
    episodes = pq.read_table(ROOT / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert data["index"] == list(range(info["total_frames"]))
    ep_idx, frame_idx = np.array(data["episode_index"]), np.array(data["frame_index"])
    for e in episodes:
        rows = slice(e["dataset_from_index"], e["dataset_to_index"])
        assert np.all(ep_idx[rows] == e["episode_index"])
        assert list(frame_idx[rows]) == list(range(e["length"]))
    assert np.allclose(data["timestamp"], frame_idx / info["fps"], atol=1e-6)
    for key in ("front", "wrist"):
        frames = decode_all(ROOT / f"videos/observation.images.{key}/chunk-000/file-000.mp4")
        assert len(frames) == info["total_frames"]


def test_stats_consistent_with_data():
    stats = json.loads((ROOT / "meta/stats.json").read_text())
    data = pq.read_table(ROOT / "data/chunk-000/file-000.parquet").to_pydict()
    for key in ("observation.state", "action"):
        x = np.array(data[key], np.float64)
        assert np.allclose(stats[key]["min"], x.min(0)) and np.allclose(stats[key]["max"], x.max(0))
        assert np.allclose(stats[key]["mean"], x.mean(0)) and np.allclose(
            stats[key]["std"], x.std(0), atol=1e-6
        )
        assert stats[key]["count"] == [len(x)]
        # aggregated quantiles are count-weighted means of episode quantiles: inside [min, max], ordered
        q = np.array([stats[key][n] for n in ("q01", "q10", "q50", "q90", "q99")])
        assert (
            np.all(np.diff(q, axis=0) >= -1e-9)
            and np.all(q >= x.min(0) - 1e-9)
            and np.all(q <= x.max(0) + 1e-9)
        )
