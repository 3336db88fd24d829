"""Simulation throughput on this machine: env steps/s without rendering, and rendered frames/s with one
camera at 64, 96 and 128 px, for the SO-101 tabletop and Meta-World, each measured alone.

    python benchmarks/sim_throughput.py [--seconds 5]

"frames/s (render only)" times the renderer alone on a fixed scene; "env steps/s (1 camera)" times full
control steps (physics + safety layer + one rendered camera), which is what recording pays per frame.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from embodia.sim.metaworld import MetaWorldEnv
from embodia.sim.tabletop import TabletopEnv


def _rate(fn, seconds: float) -> float:
    fn()  # warm-up (renderer creation, caches)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def _steps(env, seconds: float, seed: int = 0) -> float:
    env.reset(seed=seed)
    rng = np.random.default_rng(0)
    hold = {"a": None}

    def step():
        # Small random motion around the current command keeps the arm moving without wild swings.
        if hold["a"] is None:
            hold["a"] = _neutral(env)
        a = np.clip(
            hold["a"] + rng.normal(0, 0.02, hold["a"].shape), env.action_space.low, env.action_space.high
        )
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset(seed=seed)
            hold["a"] = None

    return _rate(step, seconds)


def _neutral(env) -> np.ndarray:
    if isinstance(env, TabletopEnv):
        return env.joint_positions()
    return np.zeros(env.action_space.shape, np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--metaworld-task", default="drawer-open-v3")
    args = parser.parse_args()

    worlds = {
        "so101 tabletop (front)": lambda size, render: TabletopEnv(
            image_size=size, cameras=("front",), render=render, family="pick"
        ),
        f"metaworld {args.metaworld_task} (corner2)": lambda size, render: MetaWorldEnv(
            args.metaworld_task, image_size=size, render=render
        ),
    }
    table = Table(title="Simulation throughput (one process, this machine)")
    for col in (
        "world",
        "env steps/s (no render)",
        "size",
        "frames/s (render only)",
        "env steps/s (1 camera)",
    ):
        table.add_column(col)
    for name, make in worlds.items():
        env = make(96, False)
        no_render = _steps(env, args.seconds)
        env.close()
        for size in (64, 96, 128):
            env = make(size, True)
            env.reset(seed=0)
            if isinstance(env, TabletopEnv):
                render_only = _rate(lambda e=env: e.robot.render("front"), args.seconds)
            else:
                render_only = _rate(lambda e=env: e._render_frame(), args.seconds)
            with_render = _steps(env, args.seconds)
            env.close()
            table.add_row(
                name,
                f"{no_render:.0f}" if size == 64 else "",
                f"{size}x{size}",
                f"{render_only:.0f}",
                f"{with_render:.0f}",
            )
    Console().print(table)


if __name__ == "__main__":
    main()
