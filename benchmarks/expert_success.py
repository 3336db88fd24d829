"""Scripted-expert success per tabletop task family (seeded episodes, N envs in subprocesses).

python benchmarks/expert_success.py --episodes 100 --workers 2
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from embodia.robots.spec import SO101
from embodia.sim.tabletop import TabletopEnv
from embodia.sim.tasks import FAMILIES
from embodia.sim.vector import VectorRunner


def _actions(policy: str, runner: VectorRunner, idx: list[int], rng: np.random.Generator) -> list[np.ndarray]:
    if policy == "expert":
        return runner.call("expert_action", indices=idx)
    if policy == "zero":
        return [np.zeros(6) for _ in idx]
    return [rng.uniform(SO101.action_low, SO101.action_high) for _ in idx]


def run_family(
    family: str, episodes: int, workers: int, progress: Progress, policy: str = "expert"
) -> tuple[int, list[int], float]:
    rng = np.random.default_rng(0)
    bar = progress.add_task(family, total=episodes)
    seeds = list(range(episodes))
    failures: list[int] = []
    wins = 0
    t0 = time.perf_counter()
    with VectorRunner([partial(TabletopEnv, family=family, render=False) for _ in range(workers)]) as runner:
        current: dict[int, int] = {}  # env index -> seed
        for i in range(runner.num_envs):
            if seeds:
                current[i] = seeds.pop(0)
        runner.reset([current[i] for i in current], indices=list(current))
        while current:
            idx = list(current)
            actions = _actions(policy, runner, idx, rng)
            results = runner.step(actions, indices=idx)
            finished = []
            for i, (_, _, terminated, truncated, info) in zip(idx, results, strict=True):
                if terminated or truncated:
                    wins += bool(info["success"])
                    if not info["success"]:
                        failures.append(current[i])
                    progress.advance(bar)
                    finished.append(i)
            for i in finished:
                if seeds:
                    current[i] = seeds.pop(0)
                    runner.reset([current[i]], indices=[i])
                else:
                    del current[i]
    return wins, sorted(failures), time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--policy", choices=["expert", "zero", "random"], default="expert")
    args = parser.parse_args()
    console = Console()
    rows = []
    with Progress(console=console) as progress:
        for fam in args.families.split(","):
            wins, failures, secs = run_family(fam, args.episodes, args.workers, progress, args.policy)
            rows.append((fam, wins, failures, secs))
    table = Table(
        title=f"{args.policy} policy: success on the SO-101 tabletop ({args.episodes} seeded episodes per family)"
    )
    for col in ("family", "success", "rate", "failed seeds", "seconds"):
        table.add_column(col)
    for fam, wins, failures, secs in rows:
        table.add_row(
            fam, f"{wins}/{args.episodes}", f"{wins / args.episodes:.1%}", str(failures[:12]), f"{secs:.0f}"
        )
    console.print(table)
    mean = np.mean([w / args.episodes for _, w, _, _ in rows])
    console.print(f"mean over families: {mean:.1%}")


if __name__ == "__main__":
    main()
