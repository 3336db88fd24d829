"""The policy on the held-out direction phrasings: does a push go where the sentence says?

    python benchmarks/language_directions.py [--seeds 2] [--checkpoint base] [--workers 2] [--json OUT]
                                             [--set directions_heldout]

Each phrasing of benchmarks/language/directions_heldout.json (push instructions whose direction words no
template or paraphrase list contains; never trained or tuned on) runs `--seeds` episodes, the scene and
the success check always the phrasing's true task, the policy reading:
  read      what `embodia run` gives it: the canonical phrasing of the task the text is read as
            (embodia.eval.scope), so a misread direction pushes the wrong way, and a phrasing read as
            out of scope is refused (a failure)
  closest   as read, but the train phrasing of that task closest to the text (the reader's grounding
            until 2026-12-07)
  own       the phrasing as written (before the scope reader, `embodia run` did this)
  template  the true task's first train template (the train-template push success on the same scenes)
Prints success per condition with Wilson 95 % intervals and read / template (the target is >= 0.9).
`--set directions_dev` or `directions_dev2` runs a development set instead.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
from pathlib import Path

SETS = Path(__file__).resolve().parent / "language"
CONDITIONS = ("read", "closest", "own", "template")


def closest_train_phrasing(reading, encoder) -> str:
    """The train phrasing of the read task most similar to the text (the encoder's cosine)."""
    import numpy as np

    from embodia.eval.scope import with_plain_directions
    from embodia.sim.tasks import FAMILIES, make_task

    task = reading.task
    options = [make_task(task.family, template=i, **task.values).instruction
               for i in range(len(FAMILIES[task.family].train_templates))]  # fmt: skip
    _, _, pooled = encoder.encode([*options, with_plain_directions(reading.text)])
    vectors = pooled.numpy()
    return options[int(np.argmax(vectors[:-1] @ vectors[-1]))]


def run_share(args: tuple) -> list[dict]:
    """One worker's episodes: [(index, text, color, direction, seed), ...] under every condition."""
    share, checkpoint = args
    os.environ.setdefault("MUJOCO_GL", "egl")
    from embodia.eval.episode import run_episode
    from embodia.eval.scope import read_instruction
    from embodia.policy.policy import Policy
    from embodia.sim.tabletop import TabletopEnv
    from embodia.sim.tasks import make_task

    policy = Policy.from_pretrained(checkpoint)
    env = TabletopEnv(image_size=96, cameras=("front", "wrist"))
    rows = []
    try:
        for index, text, color, direction, seed in share:
            task = make_task("push", color=color, direction=direction)
            reading = read_instruction(text, policy.encoder)
            closest = reading.grounded if reading.exact else closest_train_phrasing(reading, policy.encoder)
            words = {"read": reading.grounded, "closest": closest, "own": text, "template": task.instruction}
            row = {"index": index, "seed": seed, "read_right": (reading.task.family, reading.task.color,
                                                               reading.task.direction) == ("push", color, direction)}  # fmt: skip
            row["read_in_scope"] = reading.in_scope
            for cond in CONDITIONS:
                if (
                    cond in ("read", "closest") and not reading.in_scope
                ):  # `embodia run` refuses it: nothing is done
                    row[cond] = False
                    continue
                row[cond] = run_episode(policy, env, seed=seed, task=task, instruction=words[cond]).success
            rows.append(row)
    finally:
        env.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=2, help="episodes per phrasing")
    parser.add_argument("--checkpoint", default="base")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=70_000)
    parser.add_argument("--json", default=None)
    parser.add_argument("--set", default="directions_heldout", help="a set of benchmarks/language/")
    args = parser.parse_args()
    from embodia.eval.stats import wilson_interval

    items = json.loads((SETS / f"{args.set}.json").read_text())["items"]
    plan = [(i, it["text"], it["color"], it["direction"], args.first_seed + args.seeds * i + k)
            for i, it in enumerate(items) for k in range(args.seeds)]  # fmt: skip
    shares = [(plan[w :: args.workers], args.checkpoint) for w in range(args.workers)]
    with mp.get_context("spawn").Pool(args.workers) as pool:
        rows = [r for part in pool.map(run_share, shares) for r in part]
    out: dict = {
        "set": args.set,
        "phrasings": len(items),
        "seeds_per_phrasing": args.seeds,
        "episodes": len(rows),
    }
    for cond in CONDITIONS:
        k = sum(r[cond] for r in rows)
        lo, hi = wilson_interval(k, len(rows))
        out[cond] = {"successes": k, "n": len(rows), "rate": k / len(rows), "ci95": [lo, hi]}
        print(f"{cond:>8}: {k / len(rows):.1%} ({k}/{len(rows)}, Wilson 95 % {lo:.1%}-{hi:.1%})")
    # Once per phrasing (the rows come back grouped by worker, not in plan order).
    read_right = sum({r["index"]: r["read_right"] for r in rows}.values())
    in_scope = sum({r["index"]: r["read_in_scope"] for r in rows}.values())
    out["read_right"] = {"right": read_right, "in_scope": in_scope, "n": len(items)}
    ratio = out["read"]["rate"] / out["template"]["rate"] if out["template"]["rate"] else float("nan")
    out["read_over_template"] = ratio
    print(f"phrasings read as the right task: {read_right}/{len(items)}, in scope {in_scope}/{len(items)}; "
          f"read / template = {ratio:.2f}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
