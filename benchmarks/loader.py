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

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader, RandomSampler

from embodia.data.loader import TrainingDataset, collate


def _pass(ds: TrainingDataset, batch: int, samples: int, workers: int) -> float:
    """Augmentation runs inside the dataset's batched fetch, so workers share it."""
    sampler = RandomSampler(
        ds, replacement=True, num_samples=samples, generator=torch.Generator().manual_seed(0)
    )
    loader = DataLoader(ds, batch_size=batch, sampler=sampler, collate_fn=collate, num_workers=workers)
    n, t0 = 0, time.perf_counter()
    for b in loader:
        n += len(b["index"])
    return n / (time.perf_counter() - t0)


def _vla_step_ms(ds: TrainingDataset, batch: int, steps: int = 3) -> float:
    """Time of one optimisation step of the default VLA on a real batch (instruction tokens random:
    their encoding is cached per unique instruction, so it costs nothing per step)."""
    from embodia.policy.model import VLA, VLAConfig
    from embodia.policy.normalize import pad_to

    cfg = VLAConfig(chunk_size=ds.chunk_size)
    model = VLA(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    b = ds.__getitems__(list(range(batch)))
    images = torch.stack([b[k] for k in ds.cameras], dim=1)
    state, _ = pad_to(b["observation.state"], cfg.max_state_dim)
    actions, dims = pad_to(b["action"], cfg.max_action_dim)
    mask = dims & ~b["action_is_pad"][:, :, None]
    inputs = (
        images,
        torch.ones(batch, len(ds.cameras), dtype=torch.bool),
        torch.randn(batch, 32, 384),
        torch.ones(batch, 32, dtype=torch.bool),
        torch.nn.functional.normalize(torch.randn(batch, 384), dim=-1),
        state,
        torch.zeros(batch, dtype=torch.long),
    )
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        loss = model.loss(model.encode_prefix(*inputs), actions, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, default=None)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument(
        "--workers", type=int, default=0
    )  # on 2 cores, worker processes cost more than they save
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
    ds = TrainingDataset(root, chunk_size=args.chunk, cache_dir=cache, augment=True)
    build = time.perf_counter() - t0
    first = _pass(ds, args.batch, args.samples, args.workers)
    cold = args.samples / (build + args.samples / first)  # the cache build is paid by the first pass
    warm_ds = TrainingDataset(root, chunk_size=args.chunk, cache_dir=cache, augment=True)
    warm = _pass(warm_ds, args.batch, args.samples, args.workers)
    table = Table(
        title=f"embodia training loader ({len(ds)} frames, cameras {ds.cameras}, batch {args.batch}, "
        f"chunk {args.chunk}, {args.workers} DataLoader workers, augmentation on)"
    )
    for col in ("what", "value"):
        table.add_column(col)
    table.add_row("frame cache build (decode every video once)", f"{build:.1f} s")
    table.add_row(f"cold, samples/s ({args.samples:,} samples incl. the cache build)", f"{cold:,.0f}")
    table.add_row("warm pass, samples/s", f"{warm:,.0f}")
    step_ms = _vla_step_ms(warm_ds, args.batch)
    loader_ms = args.batch / warm * 1000
    table.add_row("VLA training step (default VLAConfig, forward+backward+AdamW)", f"{step_ms:.0f} ms")
    table.add_row(
        "loader time per batch / share of a training step", f"{loader_ms:.1f} ms / {loader_ms / step_ms:.1%}"
    )
    try:
        import lerobot  # noqa: F401

        table.add_row("LeRobot LeRobotDataset", "importable: not measured by this script yet")
    except ImportError:
        table.add_row("LeRobot LeRobotDataset", "not importable here (install it in a separate env)")
    console.print(table)


if __name__ == "__main__":
    main()
