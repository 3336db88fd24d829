"""Few-shot: fine-tune a pretrained base on a task family it never saw, from a handful of
demonstrations, and train the same architecture from scratch on the same demonstrations.

    python benchmarks/fewshot.py DATASET --family place [--base CKPT] [--steps 1400 | --minutes 10]
                                 [--episodes 50] [--split train|heldout] [--tasks FILE]
                                 [--freeze-encoders] [--cotrain BASE_DATASET[,...] [--cotrain-share 0.5]]
                                 [--language none|base]
                                 [--with-base] [--own-families pick,push,stack,touch --own-episodes 50]

DATASET holds the demonstrations of the held-out family (e.g. `embodia record place --episodes 20`).
Record them as recovery data where the family grasps or carries (`--approach-error 0.02 --carry-error
0.02`): the same 20 seeds, the expert's actions recorded while the arm is executed up to 2 cm off. On
the shipped base that took place from 63 % (clean demonstrations) to 80 % (README, few-shot row):
20 clean demonstrations never show the policy how to come back to the expert's path.
Both runs use the `finetune` preset's schedule and the same number of steps; each is timed, then
evaluated closed-loop on `--episodes` seeded episodes of the family (train-template instructions) with
Wilson 95 % intervals. Prints one table.

A family of the user's comes with its task file (`--tasks FILE`, loaded here and in the evaluation's
workers); `--split heldout` evaluates on the family's held-out phrasings. `--with-base` also evaluates
the base before fine-tuning on the same episodes, and `--own-families` evaluates the base and the
fine-tuned model on the base's own families (the same seeds for both), to see what fine-tuning cost them.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from embodia.eval.run import evaluate
from embodia.policy.policy import Policy
from embodia.recipes.base import SENTENCE
from embodia.runs import new_run_dir
from embodia.sim.tasks import paraphrases
from embodia.tasks import load_task_file
from embodia.train.config import preset
from embodia.train.loop import train


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset")
    parser.add_argument("--family", default="place")
    parser.add_argument("--base", default=None, help="pretrained checkpoint (default: the shipped base)")
    parser.add_argument("--steps", type=int, default=None, help="default: the finetune preset's")
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="train each model for this long instead (replaces --steps)",
    )
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--num-envs", type=int, default=2)
    parser.add_argument(
        "--only", choices=["finetuned", "scratch"], default=None, help="run one half (e.g. one per core)"
    )
    parser.add_argument(
        "--freeze-encoders", action="store_true", help="fine-tune only the transformer and action expert"
    )
    parser.add_argument(
        "--cotrain",
        default=None,
        help="fine-tuned half only: also sample batches from these datasets (comma-separated, e.g. the "
        "base's own data, sharing --cotrain-share equally), so that the new family is learned without "
        "overwriting the base's skills",
    )
    parser.add_argument(
        "--cotrain-share",
        type=float,
        default=0.5,
        help="with --cotrain: the fraction of steps drawn from the cotrain dataset (default 0.5)",
    )
    parser.add_argument(
        "--language",
        choices=("none", "base"),
        default="none",
        help="language augmentation of both runs: none, or the shipped base's last stage (paraphrase 0.5 "
        "over the family's train and augment phrasings, sentence mix 0.5, sentence noise 0.8)",
    )
    parser.add_argument("--split", default="train", choices=("train", "heldout"), help="evaluation phrasings")
    parser.add_argument("--tasks", default=None, help="the task file that defines --family (a user family)")
    parser.add_argument("--with-base", action="store_true", help="also evaluate the base before fine-tuning")
    parser.add_argument(
        "--own-families", default=None, help="also evaluate base and fine-tuned on these families"
    )
    parser.add_argument("--own-episodes", type=int, default=50)
    parser.add_argument("--cache-dir", default=None, help="decoded-frame cache (default: the preset's)")
    parser.add_argument("--out", default=None, help="run folder (default: a new one under embodia_runs/)")
    args = parser.parse_args()
    if not 0 < args.cotrain_share < 1:
        parser.error(f"--cotrain-share must be between 0 and 1, got {args.cotrain_share}")
    console = Console()
    task_files = [args.tasks] if args.tasks else []
    for path in task_files:
        load_task_file(path)
    base = Policy.from_pretrained(args.base)
    root = Path(args.out) if args.out else new_run_dir("fewshot", args.family)
    rows, own = [], {}

    def judge(policy, name: str, suite: str, episodes: int, split: str):
        return evaluate(policy, suite=suite, episodes=episodes, num_envs=args.num_envs, split=split,
                        out_dir=root / f"{name}-eval-{suite.replace(',', '-')}-{split}", videos_per_task=2,
                        task_files=task_files)  # fmt: skip

    def row(name, steps, minutes, result):
        r = result.overall
        stopped = ", ".join(f"{label} {n}" for label, n in result.failures.get(args.family, {}).items())
        return (
            name,
            steps,
            minutes,
            f"{r.rate:.0%} ({r.successes}/{r.n})",
            f"{r.ci_low:.0%}-{r.ci_high:.0%}",
            r.n,
            stopped,
        )

    if args.with_base:
        rows.append(row("base (before)", 0, "0", judge(base, "base", args.family, args.episodes, args.split)))
    if args.own_families:
        own["base"] = judge(base, "base", args.own_families, args.own_episodes, "train")
    for name in [args.only] if args.only else ["finetuned", "scratch"]:
        overrides: dict = {"datasets": [args.dataset], "task_files": task_files}
        if args.cache_dir:
            overrides["cache_dir"] = args.cache_dir
        if args.steps:
            overrides["steps"] = args.steps
        if args.minutes:
            overrides["minutes"] = args.minutes
        if name == "finetuned":
            if args.cotrain:
                share, cotrain = args.cotrain_share, args.cotrain.split(",")
                overrides["datasets"] = [args.dataset, *cotrain]
                overrides["dataset_weights"] = [1 - share] + [share / len(cotrain)] * len(cotrain)
            cfg = preset(
                "finetune", init_from=str(base.path), freeze_encoders=args.freeze_encoders, **overrides
            )
        else:  # the base's architecture, trained from random weights with the same schedule
            # Same action space as the base (delta joints when the base predicts them).
            cfg = preset("finetune", delta_actions=bool(base.info.delta_dims), **overrides)
            cfg.model = dataclasses.replace(base.cfg, embodiments=list(base.cfg.embodiments))
        cfg.name = name  # (preset() takes the preset's name as its first argument)
        if args.language == "base":
            cfg.language = SENTENCE
        t0 = time.perf_counter()
        final = train(cfg, root / name, console=console, phrasings=paraphrases)
        minutes = (time.perf_counter() - t0) / 60
        trained = Policy.from_pretrained(final)
        rows.append(
            row(
                name,
                cfg.steps,
                f"{minutes:.1f}",
                judge(trained, name, args.family, args.episodes, args.split),
            )
        )
        if name == "finetuned" and args.own_families:
            own["finetuned"] = judge(trained, name, args.own_families, args.own_episodes, "train")
    table = Table(title=f"few-shot on {args.family!r} from {args.dataset}")
    for col in ("model", "steps", "train minutes", "success", "95 % CI", "episodes", "failures stopped at"):
        table.add_column(col)
    for row in rows:
        table.add_row(*map(str, row))
    console.print(table)
    if own:
        fams = Table(
            title=f"the base's own families ({args.own_families}), {args.own_episodes} episodes each, same seeds"
        )
        for col in ("model", *own["base"].tasks, "all"):
            fams.add_column(col)
        for name, result in own.items():
            cells = [f"{r.rate:.0%} ({r.successes}/{r.n})" for r in result.tasks.values()]
            fams.add_row(
                name,
                *cells,
                f"{result.overall.rate:.1%} ({result.overall.ci_low:.0%}-{result.overall.ci_high:.0%})",
            )
        console.print(fams)
    console.print(f"runs, evaluations and videos: {root}")


if __name__ == "__main__":
    main()
