"""Cost of appending episodes to a large LeRobotDataset, one commit per episode vs grouped commits.

    python benchmarks/dataset_append.py DATASET [--episodes 20] [--commit-every 1 10]

A commit rewrites the current video files whole (an mp4 cannot be appended to in place), so its cost
grows with the dataset: this copies DATASET (a v3.0 dataset embodia wrote, ideally hundreds of episodes
into one video file) to a temporary folder per setting, appends the first episode's frames again
`--episodes` times through `DatasetWriter` (encoding included, as `embodia record` does), and prints the
seconds per appended episode. The copy is not counted.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from embodia.data.format import INDEX_FEATURES, data_keys
from embodia.data.reader import LeRobotDataset
from embodia.data.writer import DatasetWriter


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset")
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--commit-every", type=int, nargs="+", default=[1, 10])
    args = ap.parse_args()

    ds = LeRobotDataset.open(args.dataset)
    data = ds.episode_data(0)
    keys = [k for k in data_keys(ds.features) if k not in INDEX_FEATURES]
    columns = {k: np.asarray(data[k]) for k in keys}
    tasks = [ds.tasks[int(t)] for t in data["task_index"]]
    videos = {k: ds.episode_frames(0, k) for k in ds.camera_keys}
    sizes = {
        k: sum(f.stat().st_size for f in (ds.root / "videos" / k).rglob("*.mp4")) / 2**20
        for k in ds.camera_keys
    }
    print(f"{ds.root}: {ds.num_episodes} episodes, {ds.num_frames} frames; video MB per camera {sizes}")
    print(f"appending {args.episodes} episodes of {len(tasks)} frames")
    for n in args.commit_every:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "ds"
            shutil.copytree(ds.root, root)
            t0 = time.perf_counter()
            with DatasetWriter.resume(root, commit_every=n) as w:
                for _ in range(args.episodes):
                    w.write_episode(columns, tasks, videos)
            dt = time.perf_counter() - t0
            assert LeRobotDataset.open(root).num_episodes == ds.num_episodes + args.episodes
        print(f"commit_every {n:>3}: {dt / args.episodes:.2f} s per episode ({dt:.1f} s in all)")


if __name__ == "__main__":
    main()
