"""Commands that put a policy to work: `demo`, `run`, `eval`, `average`."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from embodia.commands.common import CHECKPOINT_HELP, console
from embodia.configs import nested, numbers, opt, positive_int, probability
from embodia.eval.config import EvalConfig

DEMO_TASKS = (("pick", "red", None, None), ("push", "blue", None, "left"), ("stack", "green", "purple", None))


@dataclass(frozen=True)
class DemoOptions:
    family: str | None = opt(None, "only this task family")
    seed: int = opt(0, "episode seed")
    checkpoint: str | None = opt(None, f"{CHECKPOINT_HELP} (default: base)")
    max_steps: int | None = opt(None, "cap each episode's steps", parse=positive_int)


def cmd_demo(o: DemoOptions) -> int:
    """Watch the shipped pretrained VLA carry out three instructions on the simulated SO-101."""
    from embodia.eval.episode import run_episode
    from embodia.policy.checkpoint import CheckpointError
    from embodia.policy.policy import Policy
    from embodia.runs import new_run_dir, write_manifest
    from embodia.sim.tasks import make_task

    t_start = time.perf_counter()
    try:
        policy = Policy.from_pretrained(o.checkpoint)
        driver = f"VLA {o.checkpoint or 'shipped base'}"
    except CheckpointError as exc:
        if o.checkpoint:
            raise
        console.print(
            f"[bold yellow]{exc}[/]\nFalling back to the scripted expert (reads the simulator's state)."
        )
        policy, driver = None, "scripted expert"
    tasks = [make_task(f, c, ob, d) for f, c, ob, d in DEMO_TASKS]
    if o.family is not None:
        tasks = [t for t in tasks if t.family == o.family] or [
            make_task(o.family, "red", *_demo_slots(o.family))
        ]
    run_dir = new_run_dir("demo", "vla" if policy else "expert")
    write_manifest(
        run_dir,
        "demo",
        {"tasks": [t.instruction for t in tasks], "policy": driver,
         "checkpoint_hash": getattr(policy, "checkpoint_hash", None)},
        seeds=[o.seed],
    )  # fmt: skip
    episodes = []
    env = tabletop_for(policy)
    try:
        for task in tasks:
            with console.status(f"{task.instruction!r} ..."):
                actor = policy if policy is not None else _ExpertPolicy(env)
                ep = run_episode(actor, env, seed=o.seed, task=task, max_steps=o.max_steps)
            episodes.append(ep)
            mark = "[green]success[/]" if ep.success else "[red]failed[/]"
            console.print(f"{task.instruction!r}: {mark} in {ep.steps} steps")
    finally:
        env.close()
    summary = episode_outputs(run_dir, episodes, f"embodia demo: {driver} on the SO-101 tabletop", env)
    n_ok = sum(e.success for e in episodes)
    console.print(
        f"[bold]{n_ok}/{len(episodes)} succeeded[/] ({driver}) in {time.perf_counter() - t_start:.0f} s. "
        f"Videos (left: front camera, right: wrist) and report: [bold]{summary}[/]"
    )
    return 0


def _demo_slots(family: str) -> tuple[str | None, str | None]:
    return {"stack": ("blue", None), "push": (None, "left")}.get(family, (None, None))


class _ExpertPolicy:
    """The scripted expert behind the policy interface (chunks of one action), for the fallback demo."""

    n_action_steps = 1

    def __init__(self, env):
        self.env = env

    def reset(self) -> None:
        pass

    def predict_chunk(self, observations):
        import numpy as np

        return np.asarray(self.env.expert_action(), np.float32)[None, None]


def tabletop_for(policy):
    """A tabletop env whose cameras match what `policy` was trained on (96 px without one)."""
    from embodia.sim.tabletop import TabletopEnv

    size = 96
    if policy is not None:
        shape = next(iter(policy.info.image_shapes.values()), [policy.cfg.image_size] * 2)
        size = int(shape[0])
    return TabletopEnv(image_size=size, cameras=("front", "wrist"))


def episode_outputs(run_dir, episodes, title, env):
    """Videos + a short self-contained HTML summary; returns the report path."""
    from embodia.report.html import Report
    from embodia.report.video import write_mp4

    report = Report(title)
    rows = []
    for i, ep in enumerate(episodes):
        name = f"{i:02d}_{ep.task.family if ep.task else 'task'}.mp4"
        write_mp4(run_dir / name, ep.frames, fps=env.metadata["render_fps"])
        rows.append([ep.instruction, "yes" if ep.success else "no", ep.steps, ep.chunks, name])
        report.video(name, caption=f"{ep.instruction} - {'success' if ep.success else 'failed'}")
    report.table(rows, ["instruction", "success", "steps", "chunks", "video"])
    return report.save(run_dir / "report.html")


@dataclass(frozen=True)
class RunOptions:
    instruction: str = opt(help='e.g. "put the red block in the bowl"', positional=True)
    checkpoint: str | None = opt(None, f"{CHECKPOINT_HELP} (default: base)")
    seed: int = opt(0, "episode seed")
    max_steps: int | None = opt(None, "cap the episode's steps", parse=positive_int)


def cmd_run(o: RunOptions) -> int:
    """Run the VLA for one episode on a free-text instruction (any phrasing), video out."""
    from embodia.eval.episode import interpret, run_episode
    from embodia.policy.policy import Policy
    from embodia.runs import new_run_dir, write_manifest

    if not o.instruction.strip():
        raise ValueError('the instruction is empty; e.g. embodia run "pick up the red block"')
    policy = Policy.from_pretrained(o.checkpoint)
    task, score = interpret(o.instruction, policy.encoder)
    console.print(
        f"scene and success check: [bold]{task.instruction!r}[/] "
        + ("(exact template)" if score >= 1.0 else f"(closest catalogue task, similarity {score:.2f})")
    )
    run_dir = new_run_dir("run", task.family)
    write_manifest(run_dir, "run", {"instruction": o.instruction, "scene_task": task.instruction,
                                     "similarity": score, "checkpoint_hash": policy.checkpoint_hash},
                   seeds=[o.seed])  # fmt: skip
    env = tabletop_for(policy)
    try:
        with console.status("acting ..."):
            ep = run_episode(policy, env, seed=o.seed, task=task, instruction=o.instruction,
                             max_steps=o.max_steps)  # fmt: skip
    finally:
        env.close()
    report = episode_outputs(run_dir, [ep], f"embodia run: {o.instruction}", env)
    mark = "[green]success[/]" if ep.success else "[red]not achieved[/]"
    console.print(f"{mark} after {ep.steps} steps; video and report in [bold]{report.parent}[/]")
    return 0 if ep.success else 3


@dataclass(frozen=True)
class EvalOptions:
    checkpoint: str = opt(
        help=f"{CHECKPOINT_HELP}; or a policy server's URL (ws://host:port)", positional=True
    )
    api_key: str | None = opt(None, "API key of the policy server (with a URL; default $EMBODIA_API_KEY)")
    flow_steps: int | None = opt(
        None, "Euler steps per chunk (default: the checkpoint's)", parse=positive_int
    )
    noise_scale: float | None = opt(
        None,
        "the flow sampler's temperature, 0-1: 1 samples the learned distribution, 0 is deterministic "
        "(default: the checkpoint's)",
        parse=probability,
    )
    eval: EvalConfig = nested(EvalConfig, "evaluation")


def cmd_eval(o: EvalOptions) -> int:
    """Evaluate a policy closed-loop on a suite: success per task with Wilson 95-percent intervals, videos, report."""
    from embodia.eval.run import evaluate, failure_table, summary_table

    policy = _remote_policy(o) if is_server_url(o.checkpoint) else _local_policy(o)
    result = evaluate(policy, cfg=o.eval)
    console.print(summary_table(result))
    failures = failure_table(result)
    if failures is not None:
        console.print(failures)
    console.print(
        f"results: [bold]{result.results_path}[/]; report: [bold]{result.report_path}[/]; "
        f"{len(result.videos)} videos in {result.out_dir / 'videos'}"
    )
    return 0


def _remote_policy(o: EvalOptions):
    """A served policy (`embodia serve`, or any openpi-protocol server): every chunk goes over the wire,
    so closed-loop evaluation exercises the server too. No torch needed on this side."""
    from embodia.serve.client import RemotePolicy, ServerError

    if o.flow_steps is not None or o.noise_scale is not None:
        raise ValueError(
            "--flow-steps and --noise-scale set a local checkpoint's sampler; a served policy samples "
            "on the server: change the checkpoint it serves"
        )
    try:
        return RemotePolicy(o.checkpoint, api_key=o.api_key or os.environ.get("EMBODIA_API_KEY"))
    except (ConnectionError, ServerError) as exc:
        raise ValueError(str(exc)) from None  # main() prints it without a traceback


def _local_policy(o: EvalOptions):
    """Load the checkpoint and apply --flow-steps / --noise-scale (inference only; weights unchanged)."""
    from embodia.policy.policy import Policy

    policy = Policy.from_pretrained(o.checkpoint)
    if (o.flow_steps is not None or o.noise_scale is not None) and policy.cfg.head != "flow":
        raise ValueError("--flow-steps and --noise-scale apply to a flow-matching head; this policy uses L1")
    if o.flow_steps is not None:
        policy.cfg.flow_steps = o.flow_steps
    if o.noise_scale is not None:
        policy.cfg.flow_noise_scale = o.noise_scale
    return policy


def is_server_url(text: str) -> bool:
    return text.split("://", 1)[0] in ("ws", "wss", "http", "https") and "://" in text


@dataclass(frozen=True)
class AverageOptions:
    checkpoints: list[str] = opt(
        help=f"two or more checkpoints descended from one base ({CHECKPOINT_HELP})",
        positional=True,
        nargs="+",
    )
    out: str = opt(help="folder for the averaged checkpoint", flag="out")
    weights: list[float] | None = opt(
        None,
        "comma-separated mixing weights, >= 0, summing to 1 (default: uniform; WiSE-FT uses 0.5,0.5)",
        parse=numbers,
    )


def cmd_average(o: AverageOptions) -> int:
    """Average the weights of fine-tunes of one checkpoint (WiSE-FT / model soup) into a new checkpoint."""
    from embodia.policy.average import average_checkpoints

    out = average_checkpoints(o.checkpoints, o.out, o.weights)
    console.print(f"averaged {len(o.checkpoints)} checkpoints -> [bold]{out}[/]")
    return 0
