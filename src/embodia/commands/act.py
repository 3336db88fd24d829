"""Commands that put a policy to work: `demo`, `run`, `eval`, `average`."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from embodia.commands.arm import FollowerArm
from embodia.commands.common import CHECKPOINT_HELP, console
from embodia.configs import nested, numbers, opt, positive_int, probability, task_files
from embodia.eval.config import EvalConfig
from embodia.policy.executor import ExecutionConfig
from embodia.serve.openpi import OBS_MAP_HELP, ObsMap, obs_map_arg

# The families the shipped base was trained on (place is held out: see its model card).
DEMO_FAMILIES = ("pick", "push", "stack", "touch")
DEMO_EPISODES = 20


@dataclass(frozen=True)
class DemoOptions:
    family: str | None = opt(None, f"only this task family (default: {', '.join(DEMO_FAMILIES)} in turn)")
    episodes: int = opt(
        DEMO_EPISODES, "N episodes on seeds 0..N-1 (fixed: no chosen seeds), the families in turn",
        parse=positive_int,
    )  # fmt: skip
    checkpoint: str | None = opt(None, f"{CHECKPOINT_HELP} (default: base)")
    max_steps: int | None = opt(None, "cap each episode's steps", parse=positive_int)
    num_envs: int = opt(2, "episodes run in parallel (subprocesses)", parse=positive_int)


def cmd_demo(o: DemoOptions) -> int:
    """Watch the shipped pretrained VLA on the simulated SO-101: N seeded episodes, their success rate
    with its Wilson interval, videos and a report."""
    from embodia.eval.rollout import EpisodeSpec
    from embodia.eval.run import evaluate
    from embodia.eval.suites import resolve_suite
    from embodia.policy.loading import load_policy
    from embodia.runs import new_run_dir
    from embodia.sim.tasks import FAMILIES

    t_start = time.perf_counter()
    if o.family is not None and o.family not in FAMILIES:
        raise ValueError(f"unknown family {o.family!r}; valid task families: {', '.join(FAMILIES)}")
    families = o.family or ",".join(DEMO_FAMILIES)
    policy = load_policy(o.checkpoint)
    driver = f"VLA {o.checkpoint or 'shipped base'}"
    tasks = resolve_suite(families).tasks
    # Episode i: seed i, the families in turn; the first episode of each family is filmed.
    plan = [EpisodeSpec(i, tasks[i % len(tasks)], i, i < len(tasks)) for i in range(o.episodes)]
    cfg = EvalConfig(
        suite=families, num_envs=o.num_envs, max_steps=o.max_steps, image_size=image_size_of(policy)
    )
    console.print(
        f"{driver}: {o.episodes} episodes on seeds 0..{o.episodes - 1} ({families}), {o.num_envs} in parallel"
    )
    result = evaluate(
        policy, cfg=replace(cfg, out_dir=str(new_run_dir("demo", "vla"))), plan=plan, command="demo"
    )
    for ep in result.episodes:
        mark = "[green]success[/]" if ep.success else f"[red]failed[/] ({ep.failure or 'step limit'})"
        console.print(f"  seed {ep.seed:>2}  {ep.instruction!r}: {mark} in {ep.steps} steps")
    r = result.overall
    console.print(
        f"[bold]{r.successes}/{r.n} succeeded: {r.rate:.1%}[/] (Wilson 95 % interval {r.ci_low:.1%}-{r.ci_high:.1%}) "
        f"on seeds 0..{r.n - 1}, {driver}, in {time.perf_counter() - t_start:.0f} s. Videos and report: "
        f"[bold]{result.report_path}[/]"
    )
    return 0


def image_size_of(policy) -> int:
    """The camera size `policy` was trained on (96 px without one, or a server that does not say)."""
    if policy is None:
        return 96
    if hasattr(policy, "client"):  # a RemotePolicy
        return policy.image_size or 96
    shapes = list(policy.info.image_shapes.values())
    return int(shapes[0][0]) if shapes else int(policy.cfg.image_size)


def tabletop_for(policy):
    """A tabletop env whose cameras match what `policy` was trained on (96 px without one)."""
    from embodia.sim.tabletop import TabletopEnv

    return TabletopEnv(image_size=image_size_of(policy), cameras=("front", "wrist"))


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
    checkpoint: str | None = opt(
        None,
        f"{CHECKPOINT_HELP}, or a policy server's URL (ws://host:port of `embodia serve`) (default: base)",
    )
    api_key: str | None = opt(None, "API key of the policy server (with a URL; default $EMBODIA_API_KEY)")
    execution: ExecutionConfig = nested(ExecutionConfig, "how chunks are executed")
    seed: int = opt(0, "episode seed")
    max_steps: int | None = opt(None, "cap the episode's steps", parse=positive_int)
    robot: str = opt("sim", "where to act: 'sim' (the tabletop scene) or 'so101' (a real follower arm)",
                     choices=("sim", "so101"))  # fmt: skip
    arm: FollowerArm = nested(FollowerArm, "the follower arm (--robot so101)")
    seconds: float = opt(60.0, "how long to act on a real arm (--robot so101)")
    force: bool = opt(
        False, "act on an instruction outside the task catalogue anyway: the closest task's scene and check"
    )
    own_words: bool = opt(
        False,
        "give the policy your words as typed, not the matched task's catalogue phrasing (the scene and "
        "the success check follow the matched task either way)",
    )
    task_files: list[str] = task_files()


def cmd_run(o: RunOptions) -> int:
    """Run the VLA for one episode on a free-text instruction (any phrasing), video out.

    The instruction is read against the task catalogue (embodia.eval.scope): the closest task lays out
    the scene and judges success, and the policy reads that task's catalogue phrasing (--own-words: your
    words). An instruction outside the catalogue is refused with the closest tasks (exit status 2;
    --force runs the closest)."""
    from embodia.eval.episode import run_episode
    from embodia.eval.scope import read_instruction
    from embodia.runs import new_run_dir, write_manifest

    if not o.instruction.strip():
        raise ValueError('the instruction is empty; e.g. embodia run "pick up the red block"')
    if o.robot == "so101":
        return _run_on_arm(o)
    policy = policy_from(o.checkpoint, o.api_key)
    reading = read_instruction(o.instruction, encoder_of(policy))
    task, score = reading.task, reading.score
    if not reading.in_scope:
        if not o.force:
            if hasattr(policy, "close"):
                policy.close()
            raise ValueError(reading.refusal() + " --force runs the closest.")
        console.print(f"[yellow]{reading.refusal()}[/] --force: running the closest.")
    words = o.instruction if o.own_words or reading.exact else reading.grounded
    console.print(
        f"scene and success check: [bold]{task.instruction!r}[/] "
        + ("(exact template)" if reading.exact else f"(closest catalogue task, similarity {score:.2f})")
        + ("" if words == o.instruction else f"; the policy reads {words!r}")
    )
    run_dir = new_run_dir("run", task.family)
    write_manifest(run_dir, "run", {"instruction": o.instruction, "scene_task": task.instruction,
                                     "similarity": score, "in_scope": reading.in_scope, "policy_reads": words,
                                     "checkpoint_hash": policy.checkpoint_hash},
                   seeds=[o.seed])  # fmt: skip
    env = tabletop_for(policy)
    try:
        with console.status("acting ..."):
            ep = run_episode(policy, env, seed=o.seed, task=task, instruction=words,
                             execution=o.execution, max_steps=o.max_steps)  # fmt: skip
    finally:
        env.close()
        if hasattr(policy, "close"):
            policy.close()
    report = episode_outputs(run_dir, [ep], f"embodia run: {o.instruction}", env)
    mark = "[green]success[/]" if ep.success else "[red]not achieved[/]"
    console.print(f"{mark} after {ep.steps} steps; video and report in [bold]{report.parent}[/]")
    return 0 if ep.success else 3


def _run_on_arm(o: RunOptions) -> int:
    """The policy on the follower arm for --seconds at 30 Hz; timing printed and saved (report.json)."""
    import json

    from embodia.eval.real import check_execution, run_on_robot
    from embodia.runs import new_run_dir, stop_on_sigterm, write_manifest

    if o.arm.follower is None:
        raise ValueError("--robot so101 needs --follower PORT (or sim)")
    if o.seconds <= 0:
        raise ValueError("--seconds must be positive")
    policy = policy_from(o.checkpoint, o.api_key)
    check_execution(policy, o.execution)  # before the arm is touched
    follower = o.arm.build(image_size_of(policy))
    run_dir = new_run_dir("run", "so101")
    write_manifest(run_dir, "run", {"instruction": o.instruction, "robot": "so101", "follower": o.arm.follower,
                                     "policy": o.checkpoint or "base", "seconds": o.seconds,
                                     "checkpoint_hash": policy.checkpoint_hash}, seeds=[o.seed])  # fmt: skip
    try:
        # An exception, Ctrl-C or `kill` (SIGTERM): the arm goes to rest, then torque off.
        with stop_on_sigterm(), follower:
            console.print(
                f"acting on the follower ({o.arm.follower}) for {o.seconds:g} s: {o.instruction!r}; Ctrl-C stops"
            )
            report = run_on_robot(
                policy, follower, o.instruction, o.seconds, seed=o.seed, execution=o.execution
            )
            if hasattr(follower, "go_to_rest"):
                follower.go_to_rest()
    finally:
        if hasattr(policy, "close"):
            policy.close()
    (run_dir / "report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    console.print(report.summary(), highlight=False)
    console.print(f"report: [bold]{run_dir / 'report.json'}[/]")
    return 0


@dataclass(frozen=True)
class EvalOptions:
    checkpoint: str = opt(
        help=f"{CHECKPOINT_HELP}; or a policy server's URL (ws://host:port)", positional=True
    )
    api_key: str | None = opt(None, "API key of the policy server (with a URL; default $EMBODIA_API_KEY)")
    obs_map: ObsMap | None = opt(
        None,
        f"the URL is an openpi policy server (pi0, pi0.5) taking {OBS_MAP_HELP} (default: an embodia server)",
        parse=obs_map_arg,
        metavar="SPEC",
    )
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
    robot: str = opt("sim", "where: 'sim' (the suite's simulated scenes) or 'so101' (a real follower arm; a "
                     "person resets each episode and labels it)", choices=("sim", "so101"))  # fmt: skip
    arm: FollowerArm = nested(FollowerArm, "the follower arm (--robot so101)")
    instruction: str | None = opt(None, "what the policy is asked to do on the real arm (--robot so101)")
    episode_s: float = opt(30.0, "longest real-arm episode, seconds (ENTER ends one earlier)")


def cmd_eval(o: EvalOptions) -> int:
    """Evaluate a policy closed-loop on a suite: success per task with Wilson 95-percent intervals, videos, report."""
    from embodia.eval.run import evaluate, failure_table, summary_table
    from embodia.serve.client import ServerError

    if o.robot == "so101":
        return _eval_on_arm(o)
    if o.eval.ray is not None:
        from embodia.cluster import import_ray

        import_ray()  # without the extra: a clear error before any checkpoint is loaded
    policy = eval_policy(o)
    try:
        if o.eval.ray is not None:
            from embodia.eval.ray_runner import evaluate_on_ray

            ship = _folder_to_ship(o)  # each actor gets its own copy (through Ray's object store)
            result = evaluate_on_ray(policy, partial(eval_policy_at, o), o.eval, ship=ship)
        else:
            result = evaluate(policy, cfg=o.eval)
    except ServerError as exc:
        if o.obs_map is None:
            raise
        raise ValueError(f"the openpi policy server's reply was refused: {exc}") from None
    finally:
        if o.obs_map is not None:
            policy.close()
    console.print(summary_table(result))
    failures = failure_table(result)
    if failures is not None:
        console.print(failures)
    console.print(
        f"results: [bold]{result.results_path}[/]; report: [bold]{result.report_path}[/]; "
        f"{len(result.videos)} videos in {result.out_dir / 'videos'}"
    )
    return 0


def eval_policy_at(o: EvalOptions, folder: Path | None = None):
    """`eval_policy(o)` with the checkpoint loaded from `folder` (a Ray actor's copy of it) if given."""
    return eval_policy(replace(o, checkpoint=str(folder)) if folder is not None else o)


def _folder_to_ship(o: EvalOptions) -> Path | None:
    """The checkpoint folder Ray actors get a copy of (None: a URL, a shipped name or a Hub id, which
    each actor resolves itself)."""
    if o.checkpoint is None or is_server_url(o.checkpoint) or not Path(o.checkpoint).is_dir():
        return None
    return Path(o.checkpoint)


def eval_policy(o: EvalOptions):
    """The policy `embodia eval` evaluates: the served one for a URL, else the loaded checkpoint (each Ray
    actor calls this too, for its own replica or connection)."""
    return _remote_policy(o) if is_server_url(o.checkpoint) or o.obs_map else _local_policy(o)


def _eval_on_arm(o: EvalOptions) -> int:
    """Real-arm evaluation: --episodes episodes of --instruction, each reset and labelled by a person."""
    import json
    import select
    import sys

    from embodia.eval.real import check_execution, evaluate_on_robot
    from embodia.runs import new_run_dir, stop_on_sigterm, write_manifest

    if o.arm.follower is None or not (o.instruction or "").strip():
        raise ValueError('--robot so101 needs --follower PORT (or sim) and --instruction "..."')
    if o.episode_s <= 0:
        raise ValueError("--episode-s must be positive")
    policy = eval_policy(o)
    check_execution(policy, o.eval.execution)  # before the arm is touched
    follower = o.arm.build(image_size_of(policy))
    run_dir = Path(o.eval.out_dir) if o.eval.out_dir else new_run_dir("eval", "so101")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_manifest(run_dir, "eval", {"robot": "so101", "instruction": o.instruction, "episodes": o.eval.episodes,
                                     "follower": o.arm.follower, "checkpoint_hash": policy.checkpoint_hash})  # fmt: skip

    def ready(i: int) -> None:
        console.print(f"episode {i + 1}/{o.eval.episodes}: reset the scene, then press ENTER to start")
        if not sys.stdin.readline():
            raise KeyboardInterrupt

    def stop_early() -> bool:
        return bool(select.select([sys.stdin], [], [], 0)[0]) and sys.stdin.readline() is not None

    def label(i: int) -> bool:
        while True:
            console.print("success? [y/n] ", end="", markup=False)
            answer = sys.stdin.readline()
            if not answer:
                raise KeyboardInterrupt
            if answer.strip().lower() in ("y", "n"):
                return answer.strip().lower() == "y"

    with stop_on_sigterm(), follower:  # an exception, Ctrl-C or `kill`: the arm to rest, then torque off
        result = evaluate_on_robot(policy, follower, o.instruction, o.eval.episodes, o.episode_s, ready, label,
                                   stop_early, execution=o.eval.execution)  # fmt: skip
    (run_dir / "results.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    console.print(result.summary())
    console.print(f"results: [bold]{run_dir / 'results.json'}[/]")
    return 0


def _remote_policy(o: EvalOptions):
    """A served policy (`embodia serve`, or any openpi-protocol server): every chunk goes over the wire,
    so closed-loop evaluation exercises the server too. No torch needed on this side. With --obs-map,
    an openpi policy server (embodia.serve.openpi)."""
    if o.flow_steps is not None or o.noise_scale is not None:
        raise ValueError(
            "--flow-steps and --noise-scale set a local checkpoint's sampler; a served policy samples "
            "on the server: change the checkpoint it serves"
        )
    if o.obs_map is None:
        return policy_from(o.checkpoint, o.api_key)
    from embodia.serve.openpi import OpenpiPolicy

    if not is_server_url(o.checkpoint):
        raise ValueError(
            f"--obs-map evaluates an openpi policy server: give its ws://HOST:PORT, not {o.checkpoint!r}"
        )
    if o.eval.execution.join == "guided":
        raise ValueError(
            "openpi servers take no pending actions (real-time chunking): use --join naive or blend"
        )
    api_key = o.api_key or os.environ.get("EMBODIA_API_KEY")
    try:
        return OpenpiPolicy.connect(o.checkpoint, o.obs_map, api_key=api_key)
    except ConnectionError as exc:
        raise ValueError(str(exc)) from None  # main() prints it without a traceback


def _local_policy(o: EvalOptions):
    """Load the checkpoint and apply --flow-steps / --noise-scale (inference only; weights unchanged)."""
    from embodia.policy.loading import is_lerobot, load_policy

    policy = load_policy(o.checkpoint)
    if is_lerobot(policy) and (o.flow_steps is not None or o.noise_scale is not None):
        raise ValueError("--flow-steps and --noise-scale set embodia's flow sampler; a LeRobot policy samples "
                         "as its own config.json says")  # fmt: skip
    if is_lerobot(policy):
        return policy
    if (o.flow_steps is not None or o.noise_scale is not None) and policy.cfg.head != "flow":
        raise ValueError("--flow-steps and --noise-scale apply to a flow-matching head; this policy uses L1")
    if o.flow_steps is not None:
        policy.cfg.flow_steps = o.flow_steps
    if o.noise_scale is not None:
        policy.cfg.flow_noise_scale = o.noise_scale
    return policy


def policy_from(checkpoint: str | None, api_key: str | None = None):
    """A local checkpoint (folder or shipped name; None: the base) or, for a URL, the served policy."""
    from embodia.policy.loading import load_policy
    from embodia.serve.client import RemotePolicy, ServerError

    if checkpoint is None or not is_server_url(checkpoint):
        return load_policy(checkpoint)
    try:
        return RemotePolicy(checkpoint, api_key=api_key or os.environ.get("EMBODIA_API_KEY"))
    except (ConnectionError, ServerError) as exc:
        raise ValueError(str(exc)) from None  # main() prints it without a traceback


def encoder_of(policy):
    """The sentence encoder that maps free text to catalogue tasks: a local policy's own, else a fresh one."""
    if hasattr(policy, "encoder"):
        return policy.encoder
    from embodia.policy.language import InstructionEncoder

    return InstructionEncoder()


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
