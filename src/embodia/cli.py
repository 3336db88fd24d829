"""`embodia` command line. Thin: parses arguments, calls the library, prints where outputs went."""

from __future__ import annotations

import argparse
import sys
import time

from rich.console import Console
from rich.table import Table

console = Console()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability between 0 and 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a probability between 0 and 1, got {value}")
    return value


def _positive_floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive numbers, got {text!r}") from None
    if not all(v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


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


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a policy closed-loop on a suite: success per task with Wilson 95-percent intervals, videos, report."""
    from embodia.eval.run import evaluate, summary_table

    if _is_server_url(args.checkpoint):
        # A served policy (`embodia serve`, or any openpi-protocol server): every chunk goes over the
        # wire, so closed-loop evaluation exercises the server too. No torch needed on this side.
        import os

        from embodia.serve.client import RemotePolicy, ServerError

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
    result = evaluate(
        policy,
        suite=args.suite,
        episodes=args.episodes,
        num_envs=args.num_envs,
        split=args.split,
        replan_every=args.replan_every,
        guided=args.guided,
        videos_per_task=args.videos,
        out_dir=args.out,
        seed=args.seed,
        image_size=args.image_size,
        max_steps=args.max_steps,
    )
    console.print(summary_table(result))
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
    if args.no_augment:
        overrides["augment"] = False
    if args.resume:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="embodia", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help=cmd_demo.__doc__)
    demo.add_argument("--family", default=None, help="only this task family")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--checkpoint", default=None, help="policy folder (default: the shipped base)")
    demo.add_argument("--max-steps", type=_positive_int, default=None, help="cap each episode's steps")
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser("run", help=cmd_run.__doc__)
    run.add_argument("instruction", help='e.g. "put the red block in the bowl"')
    run.add_argument("--checkpoint", default=None, help="policy folder (default: the shipped base)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--max-steps", type=_positive_int, default=None)
    run.set_defaults(func=cmd_run)

    rec = sub.add_parser("record", help=cmd_record.__doc__)
    rec.add_argument(
        "tasks",
        nargs="?",
        default="tabletop",
        help="'tabletop' (all families), families like 'pick,place', or 'metaworld:<task|group|list>'",
    )
    rec.add_argument("--episodes", type=_positive_int, default=50)
    rec.add_argument("--num-envs", type=_positive_int, default=2)
    rec.add_argument("--image-size", type=_positive_int, default=96)
    rec.add_argument("--seed", type=int, default=0)
    rec.add_argument(
        "--out", default=None, help="dataset folder (default: ./embodia_runs/record/<time>-<tasks>/dataset)"
    )
    rec.add_argument("--resume", action="store_true", help="append to the dataset at --out")
    rec.add_argument(
        "--commit-every",
        type=_positive_int,
        default=10,
        metavar="N",
        help="commit episodes to disk N at a time (default 10): a crash loses at most N; 1 commits each "
        "episode, but rewrites the growing video files every time",
    )
    rec.add_argument(
        "--keep-failures", action="store_true", help="keep failed episodes, with next.success/next.done"
    )
    rec.add_argument(
        "--split", choices=["train", "heldout", "all"], default="train", help="instruction templates"
    )
    rec.add_argument(
        "--video",
        choices=["av1", "h264-444"],
        default="av1",
        help="video encoding: av1 (LeRobot's default, yuv420p) or h264-444 (full colour resolution)",
    )
    rec.add_argument(
        "--action-noise",
        type=float,
        default=0.0,
        help="recovery data: std of a smooth perturbation of the executed arm action, in action units "
        "(SO-101: radians, e.g. 0.02); the dataset keeps the expert's clean action (default 0: off)",
    )
    rec.set_defaults(func=cmd_record)

    tr = sub.add_parser("train", help=cmd_train.__doc__)
    tr.add_argument("datasets", nargs="*", help="LeRobotDataset folders (v3.0 or v2.1)")
    tr.add_argument(
        "--preset",
        default="default",
        help="tiny | default | base | base_gpu | metaworld | metaworld_gpu | finetune",
    )
    tr.add_argument("--steps", type=_positive_int)
    tr.add_argument(
        "--minutes",
        type=_positive_float,
        help="train for this long in all (data loading included), replacing --steps: the step rate is "
        "measured on the first 20 steps and the step count (and the schedule) set to what fits",
    )
    tr.add_argument("--batch-size", type=_positive_int)
    tr.add_argument("--lr", type=float)
    tr.add_argument("--seed", type=int)
    tr.add_argument("--save-every", type=_positive_int)
    tr.add_argument("--head", choices=["flow", "l1"], help="action head (default: the preset's, flow)")
    tr.add_argument(
        "--backbone",
        help="vision: hf:<local folder> starts from a pretrained transformers vision model (config.json + "
        "model.safetensors; nothing is downloaded) instead of the built-in CNN",
    )
    tr.add_argument(
        "--weights",
        type=_positive_floats,
        help="sampling weight per dataset, comma-separated in the order given, e.g. 1,1 to co-train a small "
        "new dataset with a large one (default: in proportion to their frames)",
    )
    tr.add_argument(
        "--paraphrase",
        type=_probability,
        metavar="P",
        help="swap each sample's instruction for another phrasing of the same tabletop task with "
        "probability P (0-1; default: the preset's, 0), so the policy follows meaning, not exact strings",
    )
    tr.add_argument("--init-from", help="checkpoint folder to fine-tune")
    tr.add_argument("--freeze-encoders", action="store_true", help="with --init-from: keep vision/language")
    tr.add_argument("--no-augment", action="store_true")
    tr.add_argument("--cache-dir", help="decoded-frame cache (default ~/.cache/embodia/frames)")
    tr.add_argument("--out", help="run folder (default ./embodia_runs/train/<time>-<preset>)")
    tr.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its latest checkpoint")
    tr.add_argument("--no-preflight", action="store_true", help="skip the training doctor's static checks")
    tr.set_defaults(func=cmd_train)

    dset = sub.add_parser("dataset", help=cmd_dataset.__doc__)
    dsub = dset.add_subparsers(dest="action", required=True)
    p = dsub.add_parser("info", help="summary of a dataset")
    p.add_argument("root")
    p.add_argument("--json", action="store_true")
    p = dsub.add_parser("delete-episodes", help="copy without the given episodes")
    p.add_argument("root")
    p.add_argument("--episodes", type=int, nargs="+", required=True)
    p.add_argument("--out", required=True)
    p = dsub.add_parser(
        "split", help="shuffle episodes into named datasets, e.g. --fractions train=0.9,val=0.1"
    )
    p.add_argument("root")
    p.add_argument("--fractions", required=True)
    p.add_argument("--out", required=True, help="folder that receives one dataset per name")
    p.add_argument("--seed", type=int, default=0)
    p = dsub.add_parser("merge", help="concatenate datasets with the same features and fps")
    p.add_argument("roots", nargs="+")
    p.add_argument("--out", required=True)
    p = dsub.add_parser("recompute-stats", help="recompute stats from the data")
    p.add_argument("root")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--out", help="write a corrected copy here")
    group.add_argument("--in-place", action="store_true", help="rewrite meta/stats.json of ROOT itself")
    dset.set_defaults(func=cmd_dataset)

    doc = sub.add_parser(
        "doctor",
        help=cmd_doctor.__doc__,
        description="Exit status: 0 when no check FAILs (WARN allowed), 1 when any check FAILs, 2 on bad arguments.",
    )
    targets = doc.add_subparsers(dest="target", required=True)
    p = targets.add_parser(
        "data",
        help="check a LeRobot dataset (timestamps, episodes, actions, cameras, tasks, stats)",
        description="Check a LeRobotDataset for data bugs; writes doctor.json and report.html. "
        "Exit status: 0 when no check FAILs (WARN allowed), 1 when any check FAILs or the dataset "
        "cannot be opened, 2 on bad arguments.",
    )
    p.add_argument("dataset", help="dataset folder (v3.0 or v2.1)")
    p.add_argument("--out", help="report folder (default ./embodia_runs/doctor/<time>-data)")
    p.add_argument(
        "--fix", metavar="OUT", help="write a copy without FAIL episodes and with idle ends trimmed"
    )
    p.add_argument("--no-video", action="store_true", help="skip decoding (camera checks are skipped)")
    p.add_argument(
        "--action-kind", choices=["joint_abs", "ee_delta"], help="override the inferred action kind"
    )
    p = targets.add_parser(
        "train",
        help="check a training setup: preflight, overfit probe, open-loop replay, closed-loop gap",
        description="Exit status: 0 with no FAIL finding, 1 with any.",
    )
    p.add_argument("datasets", nargs="+", help="the dataset(s) to train on")
    p.add_argument("--checkpoint", help="a trained checkpoint: compared with the data, replayed open-loop")
    p.add_argument("--preset", default="default", help="training preset whose configuration to check")
    p.add_argument("--steps", type=_positive_int)
    p.add_argument("--lr", type=float)
    p.add_argument(
        "--suite", help="with --checkpoint: also evaluate closed-loop on this suite (e.g. pick,push)"
    )
    p.add_argument("--episodes", type=_positive_int, default=10, help="closed-loop episodes per task")
    p.add_argument("--no-overfit", action="store_true", help="skip the overfit probe (~1 minute)")
    p.add_argument("--out", help="report folder (default ./embodia_runs/doctor/<time>-train)")
    doc.set_defaults(func=cmd_doctor)

    tasks = sub.add_parser("tasks", help=cmd_tasks.__doc__)
    tasks.add_argument("--markdown", action="store_true", help="print docs/tasks.md")
    tasks.set_defaults(func=cmd_tasks)

    ev = sub.add_parser("eval", help=cmd_eval.__doc__)
    ev.add_argument(
        "checkpoint", help="checkpoint folder of a trained policy, or a policy server's URL (ws://host:port)"
    )
    ev.add_argument(
        "--api-key", default=None, help="API key of the policy server (with a URL; default $EMBODIA_API_KEY)"
    )
    ev.add_argument(
        "--suite",
        default="tabletop",
        help="'tabletop' (all families), families like 'pick,place', or 'metaworld:<task|group|list>'",
    )
    ev.add_argument(
        "--split", choices=["train", "heldout", "all"], default="train", help="instruction templates"
    )
    ev.add_argument("--episodes", type=_positive_int, default=50, help="episodes per task")
    ev.add_argument("--num-envs", type=_positive_int, default=2)
    ev.add_argument(
        "--replan-every", type=_positive_int, default=None, help="actions per chunk (default: the policy's)"
    )
    ev.add_argument(
        "--guided",
        action="store_true",
        help="inpaint each re-planned chunk toward the unexecuted rest of the previous one (real-time "
        "chunking's guidance), so re-planning corrects the plan instead of switching plans; needs "
        "--replan-every below the chunk size",
    )
    ev.add_argument("--videos", type=int, default=1, help="episodes filmed per task")
    ev.add_argument("--image-size", type=_positive_int, default=96)
    ev.add_argument("--max-steps", type=_positive_int, default=None, help="override the step limit")
    ev.add_argument("--seed", type=int, default=0, help="offset of the evaluation seeds (base 10,000,000)")
    ev.add_argument("--out", default=None, help="output folder (default: ./embodia_runs/eval/<time>-<suite>)")
    ev.set_defaults(func=cmd_eval)

    srv = sub.add_parser("serve", help=cmd_serve.__doc__)
    srv.add_argument("checkpoint", nargs="?", default=None, help="policy folder (default: the shipped base)")
    srv.add_argument("--host", default="127.0.0.1", help="address to bind; non-loopback needs --api-key")
    srv.add_argument("--port", type=int, default=8000)
    srv.add_argument("--api-key", default=None, help="required from clients (default: $EMBODIA_API_KEY)")
    srv.add_argument("--max-message-mb", type=float, default=16.0, help="largest accepted message, MiB")
    srv.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    srv.set_defaults(func=cmd_serve)

    mcp = sub.add_parser("mcp", help=cmd_mcp.__doc__)
    mcp.add_argument("--checkpoint", default=None, help="policy folder (default: the shipped base)")
    mcp.add_argument("--policy", default=None, metavar="URL", help="a policy server instead (ws://host:port)")
    mcp.add_argument(
        "--api-key", default=None, help="API key of the policy server (default $EMBODIA_API_KEY)"
    )
    mcp.add_argument("--transport", choices=["stdio", "streamable-http", "sse"], default="stdio")
    mcp.add_argument("--host", default="127.0.0.1", help="HTTP transports: address to bind (loopback only)")
    mcp.add_argument("--port", type=int, default=8765, help="HTTP transports: port (path /mcp or /sse)")
    mcp.add_argument("--seed", type=int, default=0, help="seed of the first scene")
    mcp.add_argument(
        "--task", default=None, help="instruction of the first scene (default: drawn from the seed)"
    )
    mcp.add_argument(
        "--image-size",
        type=_positive_int,
        default=None,
        help="camera size without a policy (default 96; a policy sets its own)",
    )
    mcp.add_argument(
        "--out", default=None, help="folder for do() videos (default ./embodia_runs/mcp/<time>-session)"
    )
    mcp.add_argument("--no-video", action="store_true", help="do not write do() videos")
    mcp.set_defaults(func=cmd_mcp)
    view = sub.add_parser("view", help=cmd_view.__doc__)
    view.add_argument("path", nargs="?", default=".", help="folder to browse (default: the current one)")
    view.add_argument("--port", type=int, default=8765)
    view.add_argument("--host", default="127.0.0.1", help="address to bind (loopback only: no auth)")
    view.set_defaults(func=cmd_view)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:  # bad input: say what was wrong, no traceback
        console.print(f"[bold red]error:[/] {exc}")
        return 2
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
