"""Training-loader throughput: samples/s through a DataLoader with random indices and augmentation.

    python benchmarks/loader.py [--dataset PATH] [--episodes 20] [--batch 64] [--chunk 16]

Without --dataset it records a tabletop dataset first (2 cameras, 96 px). "cold" includes building
the decoded-frame cache; "warm" is a later pass over the same cache. The share of a VLA training step
is reported once the VLA exists (issue 4).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader, RandomSampler

from embodia.data.loader import TrainingDataset, augment_batch, collate


def _pass(ds: TrainingDataset, batch: int, samples: int, workers: int) -> float:
    sampler = RandomSampler(
        ds, replacement=True, num_samples=samples, generator=torch.Generator().manual_seed(0)
    )
    loader = DataLoader(ds, batch_size=batch, sampler=sampler, collate_fn=collate, num_workers=workers)
    gen = torch.Generator().manual_seed(0)
    n, t0 = 0, time.perf_counter()
    for b in loader:
        b = augment_batch(b, ds.cameras, generator=gen)
        n += len(b["index"])
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, default=None)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    console = Console()
    tmp = Path(tempfile.mkdtemp(prefix="embodia-loader-bench-"))
    root = args.dataset
    if root is None:
        from embodia.data.record import RecordConfig, record

        root = tmp / "dataset"
        console.print(f"recording {args.episodes} tabletop episodes (2 cameras, 96 px) into {root} ...")
        record(RecordConfig(tasks="tabletop", episodes=args.episodes, image_size=96), root)
    cache = tmp / "cache"
    t0 = time.perf_counter()
    ds = TrainingDataset(root, chunk_size=args.chunk, cache_dir=cache)
    build = time.perf_counter() - t0
    cold = _pass(ds, args.batch, args.samples, args.workers)
    warm = _pass(
        TrainingDataset(root, chunk_size=args.chunk, cache_dir=cache), args.batch, args.samples, args.workers
    )
    table = Table(
        title=f"embodia training loader ({len(ds)} frames, cameras {ds.cameras}, batch {args.batch}, chunk {args.chunk})"
    )
    for col in ("what", "value"):
        table.add_column(col)
    table.add_row("frame cache build (decode every video once)", f"{build:.1f} s")
    table.add_row("cold pass, samples/s (first pass after the build)", f"{cold:,.0f}")
    table.add_row("warm pass, samples/s", f"{warm:,.0f}")
    table.add_row("share of a VLA training step", "n/a until the VLA exists (issue 4)")
    try:
        import lerobot  # noqa: F401

        table.add_row("LeRobot LeRobotDataset", "importable: not measured by this script yet")
    except ImportError:
        table.add_row("LeRobot LeRobotDataset", "not importable here (install it in a separate env)")
    console.print(table)


if __name__ == "__main__":
    main()
