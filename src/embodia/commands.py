"""What each `embodia` subcommand does: calls the library and prints where the outputs went.
(`cli.py` holds the argument parser; these functions receive its parsed arguments.)"""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

console = Console()

DEMO_TASKS = (("pick", "red", None, None), ("push", "blue", None, "left"), ("stack", "green", "purple", None))


def cmd_demo(args: argparse.Namespace) -> int:
    """Watch the shipped pretrained VLA carry out three instructions on the simulated SO-101."""
    from embodia.eval.episode import run_episode
    from embodia.policy.checkpoint import CheckpointError
    from embodia.policy.policy import Policy
    from embodia.runs import new_run_dir, write_manifest
    from embodia.sim.tasks import make_task

    t_start = time.perf_counter()
    try:
        policy = Policy.from_pretrained(args.checkpoint)
        driver = f"VLA {args.checkpoint or 'shipped base'}"
    except CheckpointError as exc:
        if args.checkpoint:
            raise
        console.print(
            f"[bold yellow]{exc}[/]\nFalling back to the scripted expert (reads the simulator's state)."
        )
        policy, driver = None, "scripted expert"
    tasks = [make_task(f, c, o, d) for f, c, o, d in DEMO_TASKS]
    if args.family is not None:
        tasks = [t for t in tasks if t.family == args.family] or [
            make_task(args.family, "red", *_demo_slots(args.family))
        ]
    run_dir = new_run_dir("demo", "vla" if policy else "expert")
    write_manifest(
        run_dir,
        "demo",
        {"tasks": [t.instruction for t in tasks], "policy": driver,
         "checkpoint_hash": getattr(policy, "checkpoint_hash", None)},
        seeds=[args.seed],
    )  # fmt: skip
    episodes = []
    env = _tabletop_for(policy)
    try:
        for task in tasks:
            with console.status(f"{task.instruction!r} ..."):
                if policy is None:
                    ep = run_episode(
                        _ExpertPolicy(env), env, seed=args.seed, task=task, max_steps=args.max_steps
                    )
                else:
                    ep = run_episode(policy, env, seed=args.seed, task=task, max_steps=args.max_steps)
            episodes.append(ep)
            mark = "[green]success[/]" if ep.success else "[red]failed[/]"
            console.print(f"{task.instruction!r}: {mark} in {ep.steps} steps")
    finally:
        env.close()
    summary = _episode_outputs(run_dir, episodes, f"embodia demo: {driver} on the SO-101 tabletop", env)
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


def _tabletop_for(policy):
    from embodia.sim.tabletop import TabletopEnv

    size = 96
    if policy is not None:
        shape = next(iter(policy.info.image_shapes.values()), [policy.cfg.image_size] * 2)
        size = int(shape[0])
    return TabletopEnv(image_size=size, cameras=("front", "wrist"))


def _episode_outputs(run_dir, episodes, title, env):
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


def cmd_run(args: argparse.Namespace) -> int:
    """Run the VLA for one episode on a free-text instruction (any phrasing), video out."""
    from embodia.eval.episode import interpret, run_episode
    from embodia.policy.policy import Policy
    from embodia.runs import new_run_dir, write_manifest

    if not args.instruction.strip():
        raise ValueError('the instruction is empty; e.g. embodia run "pick up the red block"')
    policy = Policy.from_pretrained(args.checkpoint)
    task, score = interpret(args.instruction, policy.encoder)
    console.print(
        f"scene and success check: [bold]{task.instruction!r}[/] "
        + ("(exact template)" if score >= 1.0 else f"(closest catalogue task, similarity {score:.2f})")
    )
    run_dir = new_run_dir("run", task.family)
    write_manifest(run_dir, "run", {"instruction": args.instruction, "scene_task": task.instruction,
                                     "similarity": score, "checkpoint_hash": policy.checkpoint_hash},
                   seeds=[args.seed])  # fmt: skip
    env = _tabletop_for(policy)
    try:
        with console.status("acting ..."):
            ep = run_episode(policy, env, seed=args.seed, task=task, instruction=args.instruction,
                             max_steps=args.max_steps)  # fmt: skip
    finally:
        env.close()
    report = _episode_outputs(run_dir, [ep], f"embodia run: {args.instruction}", env)
    mark = "[green]success[/]" if ep.success else "[red]not achieved[/]"
    console.print(f"{mark} after {ep.steps} steps; video and report in [bold]{report.parent}[/]")
    return 0 if ep.success else 3


def cmd_record(args: argparse.Namespace) -> int:
    """Record scripted-expert demonstrations as a LeRobotDataset v3.0."""
    from pathlib import Path

    from embodia.data.record import RecordConfig, record
    from embodia.runs import new_run_dir, stop_on_sigterm, write_manifest

    cfg = RecordConfig(
        tasks=args.tasks,
        episodes=args.episodes,
        num_envs=args.num_envs,
        image_size=args.image_size,
        seed=args.seed,
        keep_failures=args.keep_failures,
        split=args.split,
        video=args.video,
        action_noise=args.action_noise,
        approach_error=args.approach_error,
        approach_roll=args.approach_roll,
        carry_error=args.carry_error,
        stroke_error=args.stroke_error,
        commit_every=args.commit_every,
    )
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out pointing at the dataset to continue")
    run_dir = new_run_dir("record", args.tasks.replace(":", "-").replace(",", "-"))
    root = Path(args.out) if args.out else run_dir / "dataset"
    write_manifest(run_dir, "record", vars(cfg) | {"out": str(root), "resume": args.resume}, seeds=[cfg.seed])
    try:
        with stop_on_sigterm():
            res = record(cfg, root, resume=args.resume)
    except KeyboardInterrupt:
        from embodia.data.format import INFO_PATH, read_json

        n = read_json(root / INFO_PATH)["total_episodes"] if (root / INFO_PATH).exists() else 0
        console.print(f"stopped: {n} episodes committed in {root}; continue with --resume --out {root}")
        return 130
    table = Table(title=f"recorded {res.saved} episodes ({res.frames} frames) in {res.seconds:.0f} s")
    for col in ("task", "kept", "attempted"):
        table.add_column(col)
    for task, (kept, tried) in sorted(res.per_task.items()):
        table.add_row(task, str(kept), str(tried))
    console.print(table)
    console.print(
        f"expert success {res.successes}/{res.attempted}; {res.attempted / max(res.seconds, 1e-9):.2f} episodes/s. "
        f"Dataset: [bold]{root}[/]; manifest: {run_dir / 'manifest.json'}"
    )
    return 0


def cmd_dataset(args: argparse.Namespace) -> int:
    """Inspect and edit LeRobot datasets; edits always write a new dataset."""
    import json

    from embodia.data import edit

    if args.action == "info":
        summary = edit.info(args.root)
        if args.json:
            print(json.dumps(summary, indent=2))
            return 0
        table = Table(title=f"{summary['root']} (LeRobotDataset {summary['version']})")
        table.add_column("field")
        table.add_column("value", overflow="fold")
        for key in ("robot_type", "fps", "episodes", "frames", "seconds", "episode_length", "cameras"):
            table.add_row(key, str(summary[key]))
        for task, n in summary["tasks"].items():
            table.add_row("task", f"{task!r}: {n} episodes")
        console.print(table)
        return 0
    if args.action == "delete-episodes":
        out = edit.delete_episodes(args.root, args.episodes, args.out)
    elif args.action == "split":
        fractions = {}
        for part in args.fractions.split(","):
            name, _, value = part.partition("=")
            try:
                fractions[name.strip()] = float(value)
            except ValueError:
                raise ValueError(
                    f"--fractions must look like 'train=0.9,val=0.1', got {args.fractions!r}"
                ) from None
        outs = edit.split(args.root, fractions, args.out, seed=args.seed)
        for name, path in outs.items():
            console.print(f"{name}: {path}")
        return 0
    elif args.action == "merge":
        out = edit.merge(args.roots, args.out)
    else:  # recompute-stats
        out = edit.recompute_stats(args.root, None if args.in_place else args.out)
    console.print(f"written: [bold]{out}[/]")
    return 0


def cmd_average(args: argparse.Namespace) -> int:
    """Average the weights of fine-tunes of one checkpoint (WiSE-FT / model soup) into a new checkpoint."""
    from embodia.policy.average import average_checkpoints

    out = average_checkpoints(args.checkpoints, args.out, args.weights)
    console.print(f"averaged {len(args.checkpoints)} checkpoints -> [bold]{out}[/]")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    """List the tabletop task families, their templates and success predicates."""
    from embodia.sim.tasks import COLORS, DIRECTIONS, FAMILIES, tasks_markdown

    if args.markdown:
        print(tasks_markdown(), end="")
        return 0
    table = Table(title="SO-101 tabletop task families")
    for col in ("family", "train templates", "held-out templates", "steps", "success"):
        table.add_column(col, overflow="fold")
    for f in FAMILIES.values():
        table.add_row(
            f.name, "\n".join(f.train_templates), "\n".join(f.heldout_templates), str(f.max_steps), f.success
        )
    console.print(table)
    console.print(f"colors: {', '.join(COLORS)}; directions (robot's frame): {', '.join(DIRECTIONS)}")
    return 0


def _override_sampler(policy, args: argparse.Namespace) -> None:
    """Apply --flow-steps / --noise-scale to a loaded policy (inference only; the weights are unchanged)."""
    if (args.flow_steps is not None or args.noise_scale is not None) and policy.cfg.head != "flow":
        raise ValueError("--flow-steps and --noise-scale apply to a flow-matching head; this policy uses L1")
    if args.flow_steps is not None:
        policy.cfg.flow_steps = args.flow_steps
    if args.noise_scale is not None:
        policy.cfg.flow_noise_scale = args.noise_scale


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a policy closed-loop on a suite: success per task with Wilson 95-percent intervals, videos, report."""
    from embodia.eval.run import evaluate, failure_table, summary_table

    if _is_server_url(args.checkpoint):
        # A served policy (`embodia serve`, or any openpi-protocol server): every chunk goes over the
        # wire, so closed-loop evaluation exercises the server too. No torch needed on this side.
        import os

        from embodia.serve.client import RemotePolicy, ServerError

        if args.flow_steps is not None or args.noise_scale is not None:
            raise ValueError(
                "--flow-steps and --noise-scale set a local checkpoint's sampler; a served policy samples "
                "on the server: change the checkpoint it serves"
            )
        try:
            policy = RemotePolicy(args.checkpoint, api_key=args.api_key or os.environ.get("EMBODIA_API_KEY"))
        except (ConnectionError, ServerError) as exc:
            raise ValueError(str(exc)) from None  # main() prints it without a traceback
    else:
        try:
            from embodia.policy.policy import Policy
        except ImportError as exc:
            console.print(f"[bold red]error:[/] cannot load policies in this version of embodia ({exc})")
            return 1
        policy = Policy.from_pretrained(args.checkpoint)
        _override_sampler(policy, args)
    result = evaluate(
        policy,
        suite=args.suite,
        episodes=args.episodes,
        num_envs=args.num_envs,
        split=args.split,
        replan_every=args.replan_every,
        guided=args.guided,
        ensemble=args.ensemble,
        videos_per_task=args.videos,
        out_dir=args.out,
        seed=args.seed,
        image_size=args.image_size,
        max_steps=args.max_steps,
    )
    console.print(summary_table(result))
    failures = failure_table(result)
    if failures is not None:
        console.print(failures)
    console.print(
        f"results: [bold]{result.results_path}[/]; report: [bold]{result.report_path}[/]; "
        f"{len(result.videos)} videos in {result.out_dir / 'videos'}"
    )
    return 0


def _is_server_url(text: str) -> bool:
    return text.split("://", 1)[0] in ("ws", "wss", "http", "https") and "://" in text


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve a policy over openpi's websocket protocol and HTTP (ws://HOST:PORT/, /v1/act, /healthz)."""
    import os

    from embodia.policy.checkpoint import CheckpointError
    from embodia.serve.server import serve

    api_key = args.api_key or os.environ.get("EMBODIA_API_KEY") or None
    console.print(
        f"serving {args.checkpoint or 'the shipped base'} on ws://{args.host}:{args.port} "
        f"(HTTP: /v1/act, /v1/metadata, /healthz){'; API key required' if api_key else ''}"
    )
    try:
        serve(args.checkpoint, host=args.host, port=args.port, api_key=api_key,
              max_message_bytes=int(args.max_message_mb * 1024 * 1024), log_level=args.log_level)  # fmt: skip
    except CheckpointError as exc:
        if args.checkpoint:
            raise
        raise ValueError(
            f"{exc}\nNo base policy ships yet: pass a checkpoint folder (from `embodia train`)."
        ) from None
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train the VLA on LeRobotDatasets (from scratch, or fine-tuning a checkpoint with --init-from)."""
    import dataclasses
    import os
    from pathlib import Path

    from embodia.runs import new_run_dir, write_manifest
    from embodia.train.config import preset
    from embodia.train.loop import train

    main_process = int(os.environ.get("RANK", "0")) == 0
    overrides = {
        k: v
        for k, v in {
            "steps": args.steps,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "seed": args.seed,
            "save_every": args.save_every,
            "init_from": args.init_from,
            "cache_dir": args.cache_dir,
            "instruction_table": args.instructions,
        }.items()
        if v is not None
    }
    if args.freeze_encoders:
        overrides["freeze_encoders"] = True
    if args.weights:
        overrides["dataset_weights"] = args.weights
    if args.minutes:
        overrides["time_budget_s"] = 60.0 * args.minutes
    if args.paraphrase is not None:
        overrides["paraphrase"] = args.paraphrase
    if args.paraphrase_carriers:
        overrides["paraphrase_carriers"] = True
    if args.word_dropout is not None:
        overrides["word_dropout"] = args.word_dropout
    if args.sentence_mix is not None:
        overrides["sentence_mix"] = args.sentence_mix
    if args.sentence_noise is not None:
        overrides["sentence_noise"] = args.sentence_noise
    if args.no_augment:
        overrides["augment"] = False
    if args.resume:
        if args.save_instructions:
            raise ValueError(
                "--save-instructions encodes a new run's instructions: give its datasets, not --resume"
            )
        run_dir = Path(args.resume)
        cfg = preset(args.preset)
    else:
        if not args.datasets:
            raise ValueError("give at least one dataset folder (or --resume RUN_DIR)")
        cfg = preset(args.preset, datasets=[str(Path(d)) for d in args.datasets], **overrides)
        if args.head:
            cfg.model = dataclasses.replace(cfg.model, head=args.head)
        if args.backbone:  # keypoints read the built-in CNN's middle block, which a backbone replaces
            from embodia.policy.backbones import check_backbone

            check_backbone(args.backbone)  # before the run folder exists
            cfg.model = dataclasses.replace(cfg.model, backbone=args.backbone, keypoints=0)
        if args.save_instructions:
            from embodia.train.loop import write_instruction_table

            path, n = write_instruction_table(cfg, args.save_instructions)
            console.print(
                f"{n} instructions encoded: [bold]{path}[/] (train elsewhere with --instructions {path})"
            )
            return 0
        # Under `accelerate launch` every process runs this; they must agree on one folder.
        multi = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if multi and not args.out:
            raise ValueError("with several processes (accelerate launch), give the run folder with --out")
        run_dir = Path(args.out) if args.out else new_run_dir("train", cfg.name)
        if main_process:
            write_manifest(run_dir, "train", cfg.to_dict(), seeds=[cfg.seed])
    if main_process:
        console.print(f"training run: [bold]{run_dir}[/]")
        if not args.resume and not args.no_preflight:
            _print_preflight(cfg)
    t0 = time.perf_counter()
    final = train(cfg, run_dir, resume=bool(args.resume), console=console)
    if main_process:
        console.print(
            f"done in {time.perf_counter() - t0:.0f} s; policy: [bold]{final}[/], "
            f"metrics: {run_dir / 'metrics.jsonl'}, checkpoints: {run_dir / 'checkpoints'}"
        )
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Find what makes a policy converge and then fail: `doctor data` (datasets), `doctor train` (training)."""
    return {"data": _doctor_data, "train": _doctor_train}[args.target](args)


def _doctor_train(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from embodia.policy.policy import Policy
    from embodia.runs import new_run_dir, write_manifest
    from embodia.train.config import preset
    from embodia.train.doctor import run_doctor

    checkpoint = Policy.from_pretrained(args.checkpoint) if args.checkpoint else None
    overrides = {k: v for k, v in {"steps": args.steps, "lr": args.lr}.items() if v is not None}
    cfg = preset(args.preset, datasets=[str(Path(d)) for d in args.datasets], **overrides)
    if checkpoint is not None:  # judge the configuration the checkpoint was trained with
        cfg.model = dataclasses.replace(checkpoint.cfg, embodiments=list(checkpoint.cfg.embodiments))
    run_dir = Path(args.out) if args.out else new_run_dir("doctor", "train")
    write_manifest(run_dir, "doctor train", {"datasets": cfg.datasets, "checkpoint": args.checkpoint,
                                              "preset": args.preset, "suite": args.suite})  # fmt: skip
    doc = run_doctor(cfg, run_dir, checkpoint=checkpoint, overfit=not args.no_overfit, suite=args.suite,
                     eval_episodes=args.episodes, console=console)  # fmt: skip
    table = Table(title=f"embodia doctor train: {doc['summary']}")
    for col in ("severity", "check", "finding", "fix"):
        table.add_column(col, overflow="fold")
    for f in doc["findings"]:
        color = "red" if f["severity"] == "FAIL" else "yellow"
        table.add_row(f"[{color}]{f['severity']}[/]", f["check"], f["message"], f["fix"])
    if doc["findings"]:
        console.print(table)
    else:
        console.print("[green]no findings[/]")
    if doc["overfit_probe"]:
        p = doc["overfit_probe"]
        console.print(
            f"overfit probe: loss {p['first_loss']:.3f} -> {p['final_loss']:.3f} ({p['ratio']:.1f}x)"
        )
    if doc["open_loop"]:
        console.print(f"open-loop replay: mean |error| {doc['open_loop']['mae']:.3f} (normalised)")
    for line in doc["diagnosis"]:
        console.print(line)
    console.print(f"report: [bold]{run_dir / 'report.html'}[/]; JSON: {run_dir / 'doctor.json'}")
    return 1 if any(f["severity"] == "FAIL" for f in doc["findings"]) else 0


def _doctor_data(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from embodia.data.doctor import diagnose, summary_table, write_fixed
    from embodia.data.format import DatasetError
    from embodia.runs import new_run_dir, write_manifest

    if args.fix and Path(args.fix).resolve() == Path(args.dataset).resolve():
        raise ValueError("--fix must name a new folder; the input dataset is never modified")
    run_dir = Path(args.out) if args.out else new_run_dir("doctor", "data")
    write_manifest(run_dir, "doctor data", {"dataset": args.dataset, "video": not args.no_video,
                                             "action_kind": args.action_kind, "fix": args.fix})  # fmt: skip
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            diag = diagnose(
                args.dataset, video=not args.no_video, action_kind=args.action_kind, progress=progress
            )
    except DatasetError as exc:  # unreadable metadata: the worst finding there is
        console.print(f"[bold red]FAIL[/] cannot open the dataset: {exc}")
        return 1
    console.print(summary_table(diag))
    paths = diag.write(run_dir)
    console.print(f"report: [bold]{paths['html']}[/]; JSON: {paths['json']}")
    if args.fix:
        with Progress(*columns, console=console, transient=True) as progress:
            res = write_fixed(diag, args.fix, progress=progress)
        console.print(
            f"fixed copy: [bold]{res.out}[/] ({len(res.kept)} episodes kept, {len(res.dropped)} dropped, "
            f"{len(res.trimmed)} trimmed)"
            + (f"; not fixable by dropping episodes: {', '.join(res.unfixed)}" if res.unfixed else "")
        )
    return 1 if diag.severity == "FAIL" else 0


def _print_preflight(cfg) -> None:
    """The training doctor's static checks, before any compute is spent (skip: --no-preflight)."""
    from embodia.policy.policy import Policy
    from embodia.train.doctor import preflight, severity_rank

    checkpoint = Policy.from_pretrained(cfg.init_from) if cfg.init_from else None
    findings = sorted(preflight(cfg, checkpoint=checkpoint), key=severity_rank)
    if not findings:
        console.print("preflight: [green]no findings[/]")
        return
    for f in findings[:5]:
        color = "red" if f.severity == "FAIL" else "yellow"
        console.print(
            f"preflight [{color}]{f.severity}[/] {f.check}: {f.message}" + (f" -> {f.fix}" if f.fix else "")
        )
    if len(findings) > 5:
        console.print(f"... and {len(findings) - 5} more: embodia doctor train")


def cmd_mcp(args: argparse.Namespace) -> int:
    """Serve the robot (simulated SO-101 tabletop + the VLA) as MCP tools for LLM agents (stdio by default)."""
    import os
    from functools import partial

    from embodia.serve.mcp_server import serve_mcp
    from embodia.serve.robot_tools import RobotTools
    from embodia.serve.server import is_loopback

    # stdout is the MCP wire under stdio: everything this command says goes to stderr.
    err = Console(stderr=True)
    if args.checkpoint and args.policy:
        err.print("[bold red]error:[/] give either --checkpoint or --policy, not both")
        return 2
    if args.transport != "stdio" and not is_loopback(args.host):
        err.print(
            f"[bold red]error:[/] refusing to serve MCP on {args.host}: these tools have no authentication. "
            "Bind 127.0.0.1 and reach it through an SSH tunnel or an authenticating proxy."
        )
        return 2
    factory = partial(
        RobotTools.load,
        checkpoint=args.checkpoint,
        policy_url=args.policy,
        api_key=args.api_key or os.environ.get("EMBODIA_API_KEY") or None,
        image_size=args.image_size,
        out_dir=args.out,
        video=not args.no_video,
        seed=args.seed,
        task=args.task,
    )
    where = "stdio" if args.transport == "stdio" else f"{args.transport} on {args.host}:{args.port}"
    err.print(f"embodia mcp: loading the robot, then serving over {where}")
    try:
        serve_mcp(factory, transport=args.transport, host=args.host, port=args.port)
    except (ValueError, ConnectionError, RuntimeError) as exc:
        err.print(f"[bold red]error:[/] {exc}")
        return 2
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    """Browse datasets, evaluation results and training runs in a local web app (default: this folder)."""
    from pathlib import Path

    from embodia.report.viewer import serve_viewer

    root = Path(args.path)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder (give a dataset, eval, training-run or parent folder)")
    console.print(
        f"embodia view: browsing [bold]{root.resolve()}[/] at [bold]http://{args.host}:{args.port}/[/] "
        "(Ctrl-C to stop)"
    )
    serve_viewer(root, host=args.host, port=args.port)  # refuses non-loopback hosts: no authentication
    return 0
