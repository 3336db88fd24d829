"""Wall time of a closed-loop evaluation run locally and on Ray (`embodia eval --ray local`), and the
per-episode overhead of the Ray path.

    python benchmarks/ray_eval.py [--suite metaworld:mt10] [--checkpoint metaworld_mt10] [--episodes 10]
                                  [--modes local1,local2,ray1,ray2]

`--episodes` is per task (MT10 x 10 = the issue's 100 episodes). Modes: `localN` is `embodia eval`'s
local path with N env subprocesses (the policy in the main process); `rayN` starts a private Ray cluster
of N CPUs on this machine (`address="local"`) and runs N actors, each with one env and its own policy
replica, torch on one thread. The Ray wall time includes starting the cluster and the actors (loading
the policy in each). Overhead per episode = (ray1 - local1) / episodes: both run one env at a time.
Also printed: whether each Ray run's per-episode outcomes (success, steps) equal local1's; they do when
the local policy runs on as many torch threads as an actor's (`--torch-threads 1`): another thread count
sums in another order, and a last-bit difference in an action can change a Meta-World episode.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from embodia.cluster import import_ray
from embodia.eval.config import EvalConfig
from embodia.eval.ray_runner import evaluate_on_ray
from embodia.eval.run import evaluate
from embodia.policy.loading import load_policy


def _image_size(policy) -> int:
    shapes = (
        policy.embodiments["sawyer"].image_shapes if "sawyer" in getattr(policy, "embodiments", {}) else {}
    )
    return int(next(iter(shapes.values()))[0]) if shapes else int(policy.cfg.image_size)


def run_mode(mode: str, args, out: Path) -> tuple[float, list[tuple]]:
    """One evaluation in `mode`: (wall seconds, [(task, seed, success, steps)] in plan order)."""
    policy = load_policy(args.checkpoint)
    n = int(mode.removeprefix("local").removeprefix("ray"))
    cfg = EvalConfig(suite=args.suite, episodes=args.episodes, num_envs=n, videos_per_task=args.videos,
                     image_size=_image_size(policy), max_steps=args.max_steps, out_dir=str(out / mode))  # fmt: skip
    t0 = time.perf_counter()
    if mode.startswith("local"):
        if args.torch_threads:
            torch.set_num_threads(args.torch_threads)
        result = evaluate(policy, cfg=cfg, show_progress=False)
    else:
        ray = import_ray()
        factory = functools.partial(load_policy, args.checkpoint)
        try:
            result = evaluate_on_ray(policy, factory, replace(cfg, ray="local"),
                                     show_progress=False)  # fmt: skip
        finally:
            ray.shutdown()
    wall = time.perf_counter() - t0
    return wall, [(e.task, e.seed, e.success, e.steps) for e in result.episodes]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--suite", default="metaworld:mt10")
    parser.add_argument("--checkpoint", default="metaworld_mt10", help="a folder or a shipped policy's name")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per task")
    parser.add_argument("--videos", type=int, default=0, help="videos per task")
    parser.add_argument("--max-steps", type=int, default=None, help="override each episode's step limit")
    parser.add_argument("--modes", default="local1,local2,ray1,ray2")
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="torch threads of the local runs' policy (default: torch's; Ray actors use 1)")  # fmt: skip
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    results: dict[str, tuple[float, list[tuple]]] = {}
    with tempfile.TemporaryDirectory(prefix="embodia-ray-bench-") as tmp:
        for mode in modes:
            results[mode] = run_mode(mode, args, Path(tmp))
            wall, eps = results[mode]
            print(f"{mode:>7}: {len(eps)} episodes in {wall:7.1f} s ({wall / len(eps):.2f} s/episode, "
                  f"{sum(e[2] for e in eps)} successes)", flush=True)  # fmt: skip
    reference = results.get("local1")
    if reference is not None:
        for mode in (m for m in modes if m.startswith("ray")):
            same = results[mode][1] == reference[1]
            print(f"{mode} outcomes (success, steps per episode) equal local1's: {same}")
        if "ray1" in results:
            n = len(reference[1])
            print(
                f"Ray overhead per episode (ray1 - local1) / {n}: {(results['ray1'][0] - reference[0]) / n:+.2f} s"
            )


if __name__ == "__main__":
    main()
