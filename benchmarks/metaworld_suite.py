"""Meta-World MT10 / MT50 with a trained policy, on LeRobot's protocol: 10 trials per task on fixed
seeds, success per task and per difficulty group (easy 28 / medium 11 / hard 6 / very hard 5 tasks).

    python benchmarks/metaworld_suite.py [CHECKPOINT] [--suite mt10|mt50] [--trials 10] [--num-envs 2]

CHECKPOINT is a folder or a shipped policy's name; with none it evaluates the policy shipped inside the
package for the suite: metaworld_mt10 for MT10, metaworld_mt50 for MT50.

Prints the per-task table and the group averages; the full results (seeds, Wilson intervals, videos,
HTML report) go to ./embodia_runs/eval/<time>-metaworld-<suite>/.
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from embodia.eval.run import evaluate
from embodia.policy.policy import Policy
from embodia.sim.metaworld import difficulty_of

GROUP_ORDER = ("easy", "medium", "hard", "very_hard")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", nargs="?", default=None, help="default: the shipped policy for --suite")
    parser.add_argument("--suite", choices=["mt10", "mt50"], default="mt10")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--num-envs", type=int, default=2)
    parser.add_argument("--videos", type=int, default=1, help="videos per task")
    args = parser.parse_args()

    if args.checkpoint is None:
        args.checkpoint = f"metaworld_{args.suite}"  # a shipped name; see embodia.policy.checkpoint
    policy = Policy.from_pretrained(args.checkpoint)
    if "sawyer" not in policy.embodiments:
        raise SystemExit(
            f"{args.checkpoint} was not trained on Meta-World (embodiments {sorted(policy.embodiments)})"
        )
    shape = policy.embodiments["sawyer"].image_shapes
    size = int(next(iter(shape.values()))[0]) if shape else policy.cfg.image_size
    result = evaluate(
        policy,
        suite=f"metaworld:{args.suite}",
        episodes=args.trials,
        num_envs=args.num_envs,
        videos_per_task=args.videos,
        image_size=size,
    )
    console = Console()
    table = Table(title=f"Meta-World {args.suite.upper()}: {args.trials} trials per task")
    for col in ("task", "difficulty", "success", "95 % CI"):
        table.add_column(col)
    for task, rate in sorted(
        result.tasks.items(), key=lambda kv: (GROUP_ORDER.index(difficulty_of(kv[0])), kv[0])
    ):
        table.add_row(task, difficulty_of(task), f"{rate.rate:.0%}", f"{rate.ci_low:.0%}-{rate.ci_high:.0%}")
    console.print(table)
    groups = {g: result.groups[g] for g in GROUP_ORDER if g in result.groups}
    line = ", ".join(f"{g} {r.rate:.1%}" for g, r in groups.items())
    console.print(f"{line}; average over tasks {result.mean_task_rate:.1%}. Details: {result.out_dir}")


if __name__ == "__main__":
    main()
