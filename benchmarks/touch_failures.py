"""Why does a policy fail `touch`? Closed-loop episodes with the tool-to-block distances tracked.

    python benchmarks/touch_failures.py [CKPT] [--episodes 16] [--split train]

`touch` is the simplest family (success: the tool point within 3 cm of the named block's centre for
0.5 s, the block moved < 3 cm), so its failures separate the walls cleanly: a policy that goes to the
wrong block has a language problem; one that stops a few centimetres short, or arrives and shoves the
block away, has a precision problem. Each failed episode gets one label:

    wrong block   the tool came closer to another block than to the named one, within 3 cm of it
    knocked       the named block moved >= 3 cm
    near miss     the tool came within 6 cm of the named block
    never close   none of the above

Seeds are those of `embodia eval` (10,000,000 + i): the same scenes and instructions as its first
touch episodes. The flow sampler's noise is not seeded the same way, so single outcomes can differ.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
from rich.console import Console
from rich.table import Table

from embodia.eval.episode import run_episode
from embodia.policy.policy import Policy
from embodia.sim.tabletop import TabletopEnv

SEED_BASE = 10_000_000


def label(success: bool, d_target: float, d_other: float, moved: float) -> str:
    if success:
        return "success"
    if d_other < min(d_target, 0.03):
        return "wrong block"
    if moved >= 0.03:
        return "knocked"
    if d_target < 0.06:
        return "near miss"
    return "never close"


def run(policy: Policy, env: TabletopEnv, seed: int) -> dict:
    closest = {"target": np.inf, "other": np.inf}

    def measure(env: TabletopEnv) -> None:
        tool, named = env.tool_position(), env.task.color
        for c in env.present:
            key = "target" if c == named else "other"
            closest[key] = min(closest[key], float(np.linalg.norm(tool - env.block_position(c))))

    ep = run_episode(policy, env, seed, on_step=measure)
    color = env.task.color
    moved = float(np.linalg.norm(env.block_position(color)[:2] - env.block_start[color][:2]))
    d_target, d_other = closest["target"], closest["other"]
    return {"instruction": ep.instruction, "success": ep.success, "d_target": d_target, "d_other": d_other,
            "moved": moved, "label": label(ep.success, d_target, d_other, moved)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", nargs="?", default=None, help="default: the shipped base")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--split", choices=["train", "heldout"], default="train")
    args = parser.parse_args()
    policy = Policy.from_pretrained(args.checkpoint)
    env = TabletopEnv(family="touch", split=args.split, image_size=policy.cfg.image_size,
                      cameras=("front", "wrist"))  # fmt: skip
    table = Table(title="touch episodes: closest approach of the tool point")
    for col in ("seed", "instruction", "to named block", "to other blocks", "named block moved", "outcome"):
        table.add_column(col)
    counts: Counter = Counter()
    for i in range(args.episodes):
        r = run(policy, env, SEED_BASE + i)
        counts[r["label"]] += 1
        table.add_row(str(SEED_BASE + i), r["instruction"], f"{r['d_target'] * 100:.1f} cm",
                      f"{r['d_other'] * 100:.1f} cm", f"{r['moved'] * 100:.1f} cm", r["label"])  # fmt: skip
    env.close()
    console = Console(width=max(Console().width, 120))  # one row per episode, also in a log
    console.print(table)
    console.print(", ".join(f"{k}: {v}" for k, v in counts.most_common()))


if __name__ == "__main__":
    main()
