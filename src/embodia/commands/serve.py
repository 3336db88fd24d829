"""Commands that open a port: `serve` (a policy), `mcp` (the robot as agent tools), `view` (outputs)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

from rich.console import Console

from embodia.commands.arm import FollowerArm
from embodia.commands.common import CHECKPOINT_HELP, console
from embodia.configs import nested, opt, positive_float, positive_int, task_files
from embodia.configs import port as tcp_port
from embodia.policy.executor import ExecutionConfig
from embodia.serve.openpi import ObsMap, obs_map_arg


@dataclass(frozen=True)
class ServeOptions:
    checkpoint: str | None = opt(None, f"{CHECKPOINT_HELP} (default: base)", positional=True, nargs="?")
    host: str = opt("127.0.0.1", "address to bind; non-loopback needs --api-key")
    port: int = opt(8000, "port", parse=tcp_port)
    api_key: str | None = opt(None, "required from clients (default: $EMBODIA_API_KEY)")
    max_message_mb: float = opt(16.0, "largest accepted message, MiB", parse=positive_float)
    threads: int | None = opt(
        None,
        "torch threads for the model (default: the CPU cores less one, at least 1: the event loop, "
        "decoding and the network keep a core)",
        parse=positive_int,
    )
    log_level: Literal["debug", "info", "warning", "error"] = opt("info", "server log level")
    scope: Literal["catalogue", "off"] = opt(
        "catalogue",
        "catalogue: an SO-101 instruction outside the task catalogue (built in and --tasks) is refused "
        "with the closest tasks, and free text inside it reaches the policy in the matched task's "
        "catalogue phrasing; off: instructions reach the policy as sent",
        choices=("catalogue", "off"),
    )
    obs_map: ObsMap | None = opt(
        None,
        "answer openpi clients in an openpi policy's keys: requests carry SERVER_KEY, renamed to "
        "EMBODIA_KEY before they are checked, and the reply holds the chunk under action= (default "
        "actions), as openpi's servers answer; the SPEC of `embodia eval --obs-map` (resize= and steps= "
        "apply to eval only) (default: embodia's keys)",
        parse=obs_map_arg,
        metavar="SPEC",
    )
    task_files: list[str] = task_files()


def cmd_serve(o: ServeOptions) -> int:
    """Serve a policy over openpi's websocket protocol and HTTP (ws://HOST:PORT/, /v1/act, /healthz)."""
    from embodia.policy.checkpoint import CheckpointError
    from embodia.serve.server import serve

    api_key = o.api_key or os.environ.get("EMBODIA_API_KEY") or None
    console.print(
        f"serving {o.checkpoint or 'the shipped base'} on ws://{o.host}:{o.port} "
        f"(HTTP: /v1/act, /v1/metadata, /healthz){'; API key required' if api_key else ''}"
        + (f"; openpi keys {o.obs_map}" if o.obs_map else "")
    )
    try:
        serve(o.checkpoint, host=o.host, port=o.port, api_key=api_key,
              max_message_bytes=int(o.max_message_mb * 1024 * 1024), log_level=o.log_level,
              scope=o.scope, obs_map=o.obs_map, threads=o.threads)  # fmt: skip
    except CheckpointError as exc:
        if o.checkpoint:
            raise
        raise ValueError(
            f"{exc}\nPass a checkpoint folder (from `embodia train`) or a shipped name."
        ) from None
    return 0


@dataclass(frozen=True)
class McpOptions:
    robot: str = opt("sim", "the robot: 'sim' (the simulated tabletop) or 'so101' (a follower arm: --follower)",
                     choices=("sim", "so101"))  # fmt: skip
    arm: FollowerArm = nested(FollowerArm, "the follower arm (--robot so101)")
    execution: ExecutionConfig = nested(ExecutionConfig, "how do() executes the policy's chunks")
    checkpoint: str | None = opt(None, f"{CHECKPOINT_HELP} (default: base)")
    policy: str | None = opt(None, "a policy server instead (ws://host:port)", metavar="URL")
    api_key: str | None = opt(None, "API key of the policy server (default $EMBODIA_API_KEY)")
    transport: Literal["stdio", "streamable-http", "sse"] = opt("stdio", "MCP transport")
    host: str = opt("127.0.0.1", "HTTP transports: address to bind (loopback only)")
    port: int = opt(8765, "HTTP transports: port (path /mcp or /sse)", parse=tcp_port)
    seed: int = opt(0, "seed of the first scene (a real arm: of the first do() call's noise)")
    task: str | None = opt(None, "instruction of the first scene (default: drawn from the seed)")
    image_size: int | None = opt(
        None, "camera size without a policy (default 96; a policy sets its own)", parse=positive_int
    )
    out: str | None = opt(None, "folder for do() videos (default ./embodia_runs/mcp/<time>-session)")
    no_video: bool = opt(False, "do not write do() videos")
    task_files: list[str] = task_files()


def cmd_mcp(o: McpOptions) -> int:
    """Serve a robot (the simulated tabletop, or a real SO-101 follower) and the VLA as MCP tools for LLM agents."""
    from embodia.net import is_loopback
    from embodia.runs import stop_on_sigterm
    from embodia.serve.mcp_server import serve_mcp

    # stdout is the MCP wire under stdio: everything this command says goes to stderr.
    err = Console(stderr=True)
    if o.checkpoint and o.policy:
        err.print("[bold red]error:[/] give either --checkpoint or --policy, not both")
        return 2
    if o.transport != "stdio" and not is_loopback(o.host):
        err.print(
            f"[bold red]error:[/] refusing to serve MCP on {o.host}: these tools have no authentication. "
            "Bind 127.0.0.1 and reach it through an SSH tunnel or an authenticating proxy."
        )
        return 2
    if o.robot == "so101" and o.arm.follower is None:
        err.print("[bold red]error:[/] --robot so101 needs --follower PORT (or sim)")
        return 2
    common = {"checkpoint": o.checkpoint, "policy_url": o.policy, "out_dir": o.out, "video": not o.no_video,
              "api_key": o.api_key or os.environ.get("EMBODIA_API_KEY") or None, "seed": o.seed, "task": o.task,
              "execution": o.execution}  # fmt: skip
    if o.robot == "so101":
        from embodia.serve.arm_tools import ArmTools

        factory = partial(ArmTools.load, o.arm.build, **common)
    else:
        from embodia.serve.robot_tools import RobotTools

        factory = partial(RobotTools.load, image_size=o.image_size, **common)
    where = "stdio" if o.transport == "stdio" else f"{o.transport} on {o.host}:{o.port}"
    err.print(f"embodia mcp: loading the robot, then serving over {where}")
    try:
        with stop_on_sigterm():  # `kill` stops like Ctrl-C: a real arm goes to rest, then torque off
            serve_mcp(factory, transport=o.transport, host=o.host, port=o.port)
    except (ValueError, TypeError, ConnectionError, RuntimeError) as exc:
        err.print(f"[bold red]error:[/] {exc}")
        return 2
    return 0


@dataclass(frozen=True)
class ViewOptions:
    path: str = opt(
        ".", "folder to browse (default: the current one), or a Hub dataset id", positional=True, nargs="?"
    )
    port: int = opt(8765, "port", parse=tcp_port)
    host: str = opt("127.0.0.1", "address to bind (loopback only: no authentication)")


def cmd_view(o: ViewOptions) -> int:
    """Browse datasets, evaluation results and training runs in a local web app (default: this folder)."""
    from embodia.hub import resolve_folder
    from embodia.view.viewer import serve_viewer

    root = resolve_folder(o.path, "dataset") or Path(o.path)  # a Hub dataset id is pulled first
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder (give a dataset, eval, training-run or parent folder)")
    console.print(
        f"embodia view: browsing [bold]{root.resolve()}[/] at [bold]http://{o.host}:{o.port}/[/] "
        "(Ctrl-C to stop)"
    )
    serve_viewer(root, host=o.host, port=o.port)  # refuses non-loopback hosts: no authentication
    return 0
