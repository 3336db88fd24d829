"""Per-chunk inference latency of the VLA: batch 1, 2 threads, instruction encoding cached.

    python benchmarks/inference_latency.py [--iters 200] [--head flow|l1] [--steps 10]

Times one full chunk: prefix (vision + language tokens + state) once, then the flow steps. The first
call (allocator and kernel warm-up) is reported separately.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from embodia.policy.model import VLA, VLAConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--head", choices=["flow", "l1"], default="flow")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = VLAConfig(head=args.head, flow_steps=args.steps)
    model = VLA(cfg).eval()
    n_params = sum(p.numel() for p in model.parameters())
    images = torch.rand(1, 2, 3, cfg.image_size, cfg.image_size)
    inputs = (
        images,
        torch.ones(1, 2, dtype=torch.bool),
        torch.randn(1, 32, 384),  # cached instruction tokens
        torch.ones(1, 32, dtype=torch.bool),
        torch.nn.functional.normalize(torch.randn(1, 384), dim=-1),
        torch.randn(1, cfg.max_state_dim),
        torch.zeros(1, dtype=torch.long),
    )

    def chunk() -> None:
        with torch.inference_mode():
            model.sample(model.encode_prefix(*inputs))

    t0 = time.perf_counter()
    chunk()
    first = (time.perf_counter() - t0) * 1000
    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        chunk()
        times.append((time.perf_counter() - t0) * 1000)
    p50, p99 = np.percentile(times, [50, 99])
    print(
        f"VLA ({n_params / 1e6:.1f} M params, head {args.head}, {args.steps if args.head == 'flow' else 1} "
        f"expert passes, chunk {cfg.chunk_size}, 2 cameras {cfg.image_size} px, {args.threads} threads): "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms per chunk; first call {first:.1f} ms"
    )


if __name__ == "__main__":
    main()
