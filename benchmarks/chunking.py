"""Chunk execution strategies under inference delay: jerk at chunk boundaries and task success.

python benchmarks/chunking.py CHECKPOINT --episodes 10 --delay 2 [--families pick,touch] [--direct]

Every strategy runs the same seeded tabletop episodes through a `ChunkRunner` (policy/runner.py):
the next chunk is requested `delay` control ticks before the switch (in a thread) while the current one
keeps executing. By default the policy is served in this process (`embodia serve` on a free loopback
port) and every chunk goes over the websocket, so real-time chunking is the server-guided kind (the
client sends the pending actions); `--direct` calls the policy in-process instead.

Smoothness is measured on the executed joint targets: mean |Δ³a| (L2 over joints, per tick) over the
three ticks after each switch vs all other ticks, max |Δ²a| over the two ticks after each switch, and
the mean step |Δa| across the switch itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import nullcontext

import numpy as np
from rich.console import Console
from rich.table import Table

from embodia.eval.rollout import EVAL_SEED_BASE
from embodia.policy.runner import STRATEGIES, ChunkRunner
from embodia.serve.chunking import boundary_jerk, run_chunked_episode

METRICS = ("boundary_jerk", "interior_jerk", "boundary_max_accel", "boundary_step")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", help="policy checkpoint folder")
    p.add_argument("--episodes", type=int, default=10, help="episodes per task family and strategy")
    p.add_argument("--delay", type=int, default=2, help="simulated inference delay, control ticks")
    p.add_argument("--families", default="pick,place,push,stack,touch")
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--n-action-steps", type=int, default=None, help="actions per chunk (default: policy's)")
    p.add_argument("--max-steps", type=int, default=None, help="cap each episode (default: the task's)")
    p.add_argument("--image-size", type=int, default=None, help="camera size (default: the training size)")
    p.add_argument("--seed", type=int, default=0, help="offset of the episode seeds")
    p.add_argument("--direct", action="store_true", help="call the policy in-process, not via the server")
    p.add_argument("--json", default=None, help="also write the results here")
    return p.parse_args(argv)


def run(args: argparse.Namespace, console: Console | None = None) -> dict[str, dict]:
    from embodia.policy.policy import Policy
    from embodia.serve.client import Client
    from embodia.serve.server import running_server
    from embodia.sim.tabletop import TabletopEnv

    console = console or Console()
    policy = Policy.from_pretrained(args.checkpoint)
    n = args.n_action_steps or policy.n_action_steps
    size = args.image_size or int(next(iter(policy.info.image_shapes.values()), [policy.cfg.image_size])[0])
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    served = nullcontext(None) if args.direct else running_server(policy)
    results: dict[str, dict] = {}
    env = TabletopEnv(image_size=size, cameras=("front", "wrist"))
    with served as url:
        source = policy if url is None else Client(url)
        try:
            for strategy in strategies:
                runner = ChunkRunner(source, policy.chunk_size, n, args.delay, strategy)
                episodes, t0 = [], time.perf_counter()
                with runner, console.status(f"{strategy} ..."):
                    for family in families:
                        for j in range(args.episodes):
                            ep = run_chunked_episode(
                                runner,
                                env,
                                EVAL_SEED_BASE + args.seed + j,
                                {"family": family},
                                args.max_steps,
                            )
                            episodes.append(ep)
                per_ep = [boundary_jerk(ep.actions, ep.switch_ticks) for ep in episodes]
                results[strategy] = {
                    "successes": sum(ep.success for ep in episodes),
                    "episodes": len(episodes),
                    "steps": sum(ep.steps for ep in episodes),
                    "chunks": sum(ep.chunks for ep in episodes),
                    "stall_s": sum(ep.stall_s for ep in episodes),
                    "seconds": time.perf_counter() - t0,
                    **{m: float(np.nanmean([p[m] for p in per_ep])) for m in METRICS},
                }
        finally:
            env.close()
            if url is not None:
                source.close()
    table = Table(
        title=f"chunk execution: delay {args.delay} ticks, {n} of {policy.chunk_size} actions per chunk, "
        f"{args.episodes} episodes x {len(families)} families ({'in-process' if args.direct else 'via server'})",
        caption="jerk = mean |Δ³a| over the 3 ticks after each switch (@sw) or all other ticks (in); "
        "acc@sw = max |Δ²a| over 2 ticks after a switch; step@sw = mean |Δa| across the switch",
    )
    for col in ("strategy", "success", "jerk@sw", "jerk in", "ratio", "acc@sw", "step@sw", "stall s"):
        table.add_column(col, justify="right", no_wrap=True)
    for strategy, r in results.items():
        table.add_row(
            strategy,
            f"{r['successes']}/{r['episodes']} {100 * r['successes'] / max(r['episodes'], 1):.0f}%",
            f"{r['boundary_jerk']:.4f}",
            f"{r['interior_jerk']:.4f}",
            f"{r['boundary_jerk'] / r['interior_jerk']:.2f}" if r["interior_jerk"] > 0 else "-",
            f"{r['boundary_max_accel']:.4f}",
            f"{r['boundary_step']:.4f}",
            f"{r['stall_s']:.1f}",
        )
    console.print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=2)
    return results


def main(argv: list[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
