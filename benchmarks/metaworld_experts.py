"""Meta-World's scripted experts through embodia's adapter: success per task, per group, MT50 average.

Also measures rendering speed (one corner2 camera) so the cost of image observations is known.

    python benchmarks/metaworld_experts.py                      # MT50, 5 episodes per task (seeds 0..4)
    python benchmarks/metaworld_experts.py --tasks hard --episodes 20
    python benchmarks/metaworld_experts.py --max-steps 500      # is a failure the 400-step limit?

LeRobot reports 98.4 % for these experts on MT50 (metaworld 3.1.1, 400-step episodes). The few failures
are placements the scripted policies cannot handle (e.g. soccer, stick-pull, sweep-into miss ~5-12 % of
scenes), not the step limit: none of them succeeds between step 400 and Meta-World's own limit of 500.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

# Importing embodia sets MUJOCO_GL=egl before mujoco loads.
from embodia.sim.metaworld import (
    DEFAULT_MAX_EPISODE_STEPS,
    DIFFICULTY,
    MetaWorldEnv,
    difficulty_of,
    resolve_tasks,
)


@dataclass
class TaskResult:
    task: str
    successes: list[bool] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)  # steps to success (or to truncation)
    failed_seeds: list[int] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return float(np.mean(self.successes)) if self.successes else float("nan")


def run_task(task: str, episodes: int, max_steps: int) -> TaskResult:
    env = MetaWorldEnv(task, render=False, max_episode_steps=max_steps)
    result = TaskResult(env.task_name)
    try:
        for seed in range(episodes):
            env.reset(seed=seed)
            terminated = truncated = False
            while not (terminated or truncated):
                _, _, terminated, truncated, _ = env.step(env.expert_action())
            result.successes.append(bool(terminated))
            result.steps.append(env.elapsed_steps)
            if not terminated:
                result.failed_seeds.append(seed)
    finally:
        env.close()
    return result


def measure_render_fps(image_size: int, frames: int, task: str = "drawer-open") -> dict[str, float]:
    """Frames/s of the render call alone, and of full env steps with and without the image."""
    out: dict[str, float] = {}
    env = MetaWorldEnv(task, image_size=image_size, render=True)
    try:
        env.reset(seed=0)
        env.render()  # the first frame pays for context creation
        t0 = time.perf_counter()
        for _ in range(frames):
            env.render()
        out["render_only"] = frames / (time.perf_counter() - t0)
        env.reset(seed=0)
        t0 = time.perf_counter()
        for _ in range(frames):
            if any(env.step(env.expert_action())[2:4]):
                env.reset()
        out["step_with_image"] = frames / (time.perf_counter() - t0)
    finally:
        env.close()
    env = MetaWorldEnv(task, render=False)
    try:
        env.reset(seed=0)
        t0 = time.perf_counter()
        for _ in range(frames):
            if any(env.step(env.expert_action())[2:4]):
                env.reset()
        out["step_no_image"] = frames / (time.perf_counter() - t0)
    finally:
        env.close()
    return out


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tasks", default="mt50", help="task, group (easy/medium/hard/very_hard/mt10/mt50) or list"
    )
    parser.add_argument("--episodes", type=int, default=5, help="episodes per task; seeds 0..N-1")
    parser.add_argument("--max-steps", type=int, default=DEFAULT_MAX_EPISODE_STEPS)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument(
        "--render-frames", type=int, default=300, help="frames for the fps measurement (0: skip)"
    )
    args = parser.parse_args()

    console = Console()
    tasks = resolve_tasks(args.tasks)
    results: dict[str, TaskResult] = {}
    t_start = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        bar = progress.add_task("experts", total=len(tasks))
        for task in tasks:
            progress.update(bar, description=f"{task:<28}")
            results[task] = run_task(task, args.episodes, args.max_steps)
            progress.advance(bar)
    elapsed = time.perf_counter() - t_start

    table = Table(
        title=f"Meta-World experts: {args.episodes} episodes/task, seeds 0..{args.episodes - 1}, "
        f"{args.max_steps}-step limit"
    )
    table.add_column("task", no_wrap=True, min_width=28)
    table.add_column("group")
    table.add_column("success", justify="right")
    table.add_column("mean steps", justify="right")
    table.add_column("failed seeds")
    for task, r in results.items():
        style = None if r.rate == 1.0 else ("yellow" if r.rate >= 0.8 else "red")
        table.add_row(
            task,
            difficulty_of(task),
            pct(r.rate),
            f"{np.mean(r.steps):.0f}",
            ",".join(map(str, r.failed_seeds)),
            style=style,
        )
    console.print(table)

    groups = Table(title="Per group (mean over tasks)")
    groups.add_column("group")
    groups.add_column("tasks", justify="right")
    groups.add_column("success", justify="right")
    for group, members in DIFFICULTY.items():
        rates = [results[t].rate for t in members if t in results]
        if rates:
            groups.add_row(group, str(len(rates)), pct(float(np.mean(rates))))
    overall = float(np.mean([r.rate for r in results.values()]))
    label = "MT50" if len(results) == 50 else "all selected"
    groups.add_row(label, str(len(results)), pct(overall), style="bold")
    console.print(groups)
    n_episodes = sum(len(r.successes) for r in results.values())
    console.print(f"{n_episodes} episodes in {elapsed:.0f} s")

    if args.render_frames > 0:
        fps = measure_render_fps(args.image_size, args.render_frames)
        console.print(
            f"corner2 @ {args.image_size}x{args.image_size}: render {fps['render_only']:.0f} frames/s; "
            f"env steps {fps['step_with_image']:.0f}/s with the image, {fps['step_no_image']:.0f}/s without"
        )


if __name__ == "__main__":
    main()
