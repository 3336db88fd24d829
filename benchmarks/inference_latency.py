"""Per-chunk inference latency of a VLA policy: batch 1, 2 threads, instruction encoding cached.

    python benchmarks/inference_latency.py [CHECKPOINT] [--iters 300] [--steps N] [--threads 2]
        [--beside-busy-thread] [--switch-interval S]

Times `Policy.predict_chunk` on a tabletop observation, the call every consumer makes (eval, server,
`embodia run`): input checks and preprocessing, the prefix (vision + language tokens + state) once,
the flow steps of the action expert, unnormalisation. Without a checkpoint it times the shipped base
(or, if that is absent, an untrained model of the base's architecture). The first call (allocator and
kernel warm-up, instruction encoding) is reported separately. Run it with no other load.

`--beside-busy-thread` times the same calls again while a pure-Python thread that never blocks runs in
the same process: the worst case of a server's busy event loop, which takes the interpreter lock each
time the model's thread hands it over (in every torch call). `--switch-interval` sets Python's
`sys.setswitchinterval` first (`embodia serve` uses serve/process.py's SWITCH_INTERVAL_S).
"""

from __future__ import annotations

import argparse
import sys
import threading
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
    parser.add_argument("--beside-busy-thread", action="store_true", help="also time beside a busy thread")
    parser.add_argument("--switch-interval", type=float, default=None, help="sys.setswitchinterval (s)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
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
    p50, p99 = timed(policy, obs, args.steps, args.iters)
    cfg = policy.cfg
    passes = 1 if cfg.head == "l1" else (args.steps or cfg.flow_steps)
    print(
        f"{what}: {policy.num_parameters() / 1e6:.2f} M params, head {cfg.head}, {passes} expert passes, "
        f"chunk {cfg.chunk_size}, {len(info.cameras)} cameras {size} px, {args.threads} threads, switch "
        f"interval {sys.getswitchinterval() * 1e3:g} ms: p50 {p50:.1f} ms, p99 {p99:.1f} ms per chunk; "
        f"first call {first:.0f} ms"
    )
    if args.beside_busy_thread:
        stop = threading.Event()

        def busy() -> None:  # pure Python, never blocks: it holds the interpreter lock whenever it can
            n = 0
            while not stop.is_set():
                n += 1

        thread = threading.Thread(target=busy, daemon=True)
        thread.start()
        try:
            p50, p99 = timed(policy, obs, args.steps, args.iters)
        finally:
            stop.set()
            thread.join()
        print(f"  beside a busy Python thread: p50 {p50:.1f} ms, p99 {p99:.1f} ms per chunk")


def timed(policy: Policy, obs: dict, steps: int | None, iters: int) -> tuple[float, float]:
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        policy.predict_chunk(obs, steps=steps)
        times.append((time.perf_counter() - t0) * 1000)
    p50, p99 = np.percentile(times, [50, 99])
    return float(p50), float(p99)


if __name__ == "__main__":
    main()
