"""A task family's sanity figures: its scripted expert's success, a zero and a random policy's, and the
simulator's step and render rates with its scene.

    python benchmarks/task_family.py beside --tasks examples/tasks/beside.py [--episodes 100] [--split train]

A family is only worth demonstrating and training on if its expert solves it (>= 95 %) and doing nothing
or flailing does not (<= 5 %): otherwise the predicate or the expert is wrong. Seeds 0..N-1. The zero
policy holds the arm where the episode starts; the random one commands a uniformly random pose within
the joint limits every tick (the safety layer rate-limits it). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def run(env, seed: int, family: str, split: str, driver: str, rng: np.random.Generator) -> bool:
    obs, _ = env.reset(seed=seed, options={"family": family})
    start = obs["observation.state"].copy()
    low, high = env.action_space.low, env.action_space.high
    for _ in range(env.max_episode_steps):
        if driver == "expert":
            action = env.expert_action()
        elif driver == "zero":
            action = start
        else:
            action = rng.uniform(low, high).astype(np.float32)
        *_, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return bool(info["success"])
    return False


def rates(family: str, seconds: float = 3.0) -> dict:
    """Physics steps per second without cameras, and with two 96 px and two 256 px cameras."""
    from embodia.sim.tabletop import TabletopEnv

    out = {}
    for name, kwargs in (("steps_per_s_no_render", {"render": False}), ("steps_per_s_96px", {"image_size": 96}),
                         ("steps_per_s_256px", {"image_size": 256})):  # fmt: skip
        env = TabletopEnv(family=family, **kwargs)
        try:
            obs, _ = env.reset(seed=0)
            hold, n, t0 = obs["observation.state"].copy(), 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                env.step(hold)
                n += 1
            out[name] = round(n / (time.perf_counter() - t0), 1)
        finally:
            env.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("family")
    ap.add_argument("--tasks", default=None, help="the task file that defines the family (none: built in)")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--split", default="train", choices=("train", "heldout"))
    ap.add_argument("--drivers", default="expert,zero,random")
    args = ap.parse_args()

    from embodia.sim.tabletop import TabletopEnv
    from embodia.tasks import load_task_file

    if args.tasks:
        load_task_file(args.tasks)
    env = TabletopEnv(render=False, split=args.split)
    result: dict = {"family": args.family, "episodes": args.episodes, "seeds": f"0..{args.episodes - 1}"}
    try:
        for driver in args.drivers.split(","):
            rng = np.random.default_rng(12345)
            t0 = time.perf_counter()
            wins = sum(run(env, s, args.family, args.split, driver, rng) for s in range(args.episodes))
            result[driver] = {"successes": wins, "rate": wins / args.episodes,
                              "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    finally:
        env.close()
    result |= rates(args.family)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
