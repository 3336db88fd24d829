"""Per-chunk inference latency of a VLA policy: batch 1, 2 threads, instruction encoding cached.

    python benchmarks/inference_latency.py [CHECKPOINT] [--iters 300] [--steps N] [--threads 2]

Times `Policy.predict_chunk` on a tabletop observation, the call every consumer makes (eval, server,
`embodia run`): input checks and preprocessing, the prefix (vision + language tokens + state) once,
the flow steps of the action expert, unnormalisation. Without a checkpoint it times the shipped base
(or, if that is absent, an untrained model of the base's architecture). The first call (allocator and
kernel warm-up, instruction encoding) is reported separately. Run it with no other load.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from embodia.policy.policy import BASE_DIR, Policy


def untrained_base() -> Policy:
    from embodia.policy.inputs import EmbodimentInfo
    from embodia.policy.model import VLA
    from embodia.policy.normalize import Normalizer
    from embodia.train.config import BASE_MODEL

    zeros, ones = np.zeros(6), np.ones(6)
    info = EmbodimentInfo("so101", 0, 6, 6, ["observation.images.front", "observation.images.wrist"], 30.0,
                          Normalizer((), -ones, ones, zeros, ones))  # fmt: skip
    return Policy(VLA(BASE_MODEL), {"so101": info})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", nargs="?", default=None)
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--steps", type=int, default=None, help="flow steps (default: the checkpoint's)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.checkpoint or (BASE_DIR / "model.safetensors").exists():
        policy = Policy.from_pretrained(args.checkpoint)
        what = args.checkpoint or "shipped base"
    else:
        policy, what = untrained_base(), "untrained base architecture"
    info = policy.info
    rng = np.random.default_rng(0)
    size = policy.cfg.image_size
    obs = {cam: rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for cam in info.cameras}
    obs["observation.state"] = np.zeros(info.state_dim, np.float32)
    obs["task"] = "pick up the red block"

    t0 = time.perf_counter()
    policy.predict_chunk(obs, steps=args.steps)
    first = (time.perf_counter() - t0) * 1000
    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        policy.predict_chunk(obs, steps=args.steps)
        times.append((time.perf_counter() - t0) * 1000)
    p50, p99 = np.percentile(times, [50, 99])
    cfg = policy.cfg
    passes = 1 if cfg.head == "l1" else (args.steps or cfg.flow_steps)
    print(
        f"{what}: {policy.num_parameters() / 1e6:.2f} M params, head {cfg.head}, {passes} expert passes, "
        f"chunk {cfg.chunk_size}, {len(info.cameras)} cameras {size} px, {args.threads} threads: "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms per chunk; first call {first:.0f} ms"
    )


if __name__ == "__main__":
    main()
