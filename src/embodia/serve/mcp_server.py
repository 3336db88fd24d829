"""`embodia mcp`: the robot as MCP tools for LLM agents, on the official MCP Python SDK (MCPServer).

    embodia mcp --checkpoint PATH                       # stdio (what Claude Desktop, Cursor, ... spawn)
    embodia mcp --policy ws://127.0.0.1:8000            # a policy served by `embodia serve`
    embodia mcp --transport streamable-http --port 8765 # http://127.0.0.1:8765/mcp
    embodia mcp --robot so101 --follower /dev/ttyACM0  # a real SO-101 follower and its cameras

Tools: observe, do, move_to, open_gripper, close_gripper, reset, list_skills (logic in
`robot_tools.py` for the simulated tabletop, `arm_tools.py` for a real arm; this module is only the MCP
wiring). Every call runs on one dedicated worker thread:
the simulator is not thread-safe, MuJoCo's GL context is best kept on one thread, and the event loop
stays free to answer pings while `do` runs the policy for seconds. Anticipated failures (bad
coordinates, unknown task, no policy, NaN) come back as MCP tool errors (`isError: true`) with the
reason; anything else is logged with its traceback and also returned as a tool error, so a bad call
never takes the server down.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ImageContent, TextContent, ToolAnnotations
from pydantic import Field

from embodia.serve.robot_tools import RobotTools
from embodia.serve.tool_args import MAX_DO_STEPS, RobotError, ToolOutput

log = logging.getLogger("embodia.mcp")

INSTRUCTIONS = """\
You control a simulated SO-101 robot arm on a tabletop with coloured 2.5 cm blocks (red, green, blue,
purple) and a bowl. Coordinates are metres in the robot base frame: x forward (away from the base),
y to the robot's left, z up; the table top is z = 0 and the arm reaches about 0.1-0.35 m forward.
Typical loop: observe() to see the scene, do("<one instruction>") to let the vision-language-action
policy carry it out (one block per call: split compound requests), observe() again to check.
move_to / open_gripper / close_gripper drive the arm directly; reset() lays out a new scene;
list_skills() lists the instructions the policy knows."""

# Parameter descriptions live at module level: the SDK resolves the (string) annotations in the
# module's namespace, not in build_server's.
TASK_HELP = "an instruction to lay the scene out for (any phrasing) or a family name; default: random"
SEED_HELP = "scene seed (same seed, same layout); default: random"
TOOLS = ("observe", "do", "move_to", "open_gripper", "close_gripper", "reset", "list_skills")


class RobotWorker:
    """Owns a `RobotTools` (or a real arm's `ArmTools`) and runs every call on one thread (the one that
    created it)."""

    def __init__(self, factory: Callable[[], RobotTools]):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embodia-robot")
        # Built on the worker thread so that the renderer's GL context is created where it is used;
        # errors (a bad checkpoint, an unreachable policy server) surface here, before serving.
        self.robot: RobotTools = self._pool.submit(factory).result()

    async def call(self, name: str, **kwargs: Any) -> CallToolResult:
        future = self._pool.submit(getattr(self.robot, name), **kwargs)
        try:
            out = await asyncio.wrap_future(future)
        except (RobotError, ValueError) as exc:
            raise ToolError(str(exc)) from None
        except Exception as exc:
            log.exception("tool %s failed", name)
            raise ToolError(
                f"{name} failed unexpectedly ({type(exc).__name__}: {exc}). The server is still running; "
                "observe() shows the current state and reset() starts a new scene."
            ) from None
        return to_result(out)

    def close(self) -> None:
        try:
            self._pool.submit(self.robot.close).result(timeout=30)
        finally:
            self._pool.shutdown(wait=False)


def to_result(out: ToolOutput) -> CallToolResult:
    """Images first (PNG), then the data as JSON text for the model, and as structured content."""
    content: list[Any] = [
        ImageContent(type="image", data=base64.b64encode(img).decode("ascii"), mime_type="image/png")
        for img in out.images
    ]
    content.append(TextContent(type="text", text=json.dumps(out.data)))
    return CallToolResult(content=content, structured_content=out.data)


def build_server(worker: RobotWorker, name: str = "embodia") -> MCPServer:
    """The MCP server with the robot's tools bound to `worker`."""
    from embodia import __version__

    instructions = getattr(worker.robot, "instructions", INSTRUCTIONS)  # a real arm says what it cannot do
    mcp = MCPServer(name=name, instructions=instructions, version=str(__version__))
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)
    acts = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)

    @mcp.tool(annotations=read_only, structured_output=False)
    async def observe(
        include_wrist: Annotated[bool, Field(description="also return the wrist camera's image")] = False,
    ) -> CallToolResult:
        """Look at the scene: the front camera image (PNG) and the robot's state: joint positions
        (rad), gripper opening (0 closed .. 1 open), the grasp point's xyz (metres) and the current
        instruction; in simulation also what the gripper touches and where the blocks and the bowl are."""
        return await worker.call("observe", include_wrist=include_wrist)

    @mcp.tool(annotations=acts, structured_output=False)
    async def do(
        instruction: Annotated[
            str,
            Field(description='one short instruction about one block, e.g. "put the red block in the bowl"'),
        ],
        max_steps: Annotated[
            int | None,
            Field(description=f"cap on 1/30 s control steps (1..{MAX_DO_STEPS}); default: the task's limit"),
        ] = None,
    ) -> CallToolResult:
        """Let the vision-language-action policy carry out `instruction` closed-loop from the current
        scene (nothing is reset). Returns whether it succeeded (in simulation, judged by the physics check
        for the closest known task; on a real arm null: observe() to check), steps and policy chunks
        used, and where the video was written. One block per call: split "put the red and the blue
        block in the bowl" into two calls."""
        return await worker.call("do", instruction=instruction, max_steps=max_steps)

    @mcp.tool(annotations=acts, structured_output=False)
    async def move_to(
        x: Annotated[float, Field(description="metres forward from the base (e.g. 0.2)")],
        y: Annotated[float, Field(description="metres to the robot's left (negative: right)")],
        z: Annotated[float, Field(description="metres above the table top (>= 0)")],
        pitch_deg: Annotated[
            float | None,
            Field(description="approach angle below horizontal, 90 = pointing straight down; default: any"),
        ] = None,
    ) -> CallToolResult:
        """Move the gripper's grasp point (between the jaws) to (x, y, z) in the robot base frame with
        inverse kinematics. Returns the reached position and the error; an unreachable target is an
        error naming the nearest reachable point."""
        return await worker.call("move_to", x=x, y=y, z=z, pitch_deg=pitch_deg)

    @mcp.tool(annotations=acts, structured_output=False)
    async def open_gripper() -> CallToolResult:
        """Open the gripper (releases a held block). Returns the gripper state."""
        return await worker.call("open_gripper")

    @mcp.tool(annotations=acts, structured_output=False)
    async def close_gripper() -> CallToolResult:
        """Close the gripper (grasps a block between the jaws). Returns the gripper state and which
        blocks it touches."""
        return await worker.call("close_gripper")

    replaces = ToolAnnotations(destructive_hint=True, open_world_hint=False)

    @mcp.tool(annotations=replaces, structured_output=False)
    async def reset(
        task: Annotated[str | None, Field(description=TASK_HELP)] = None,
        seed: Annotated[int | None, Field(description=SEED_HELP)] = None,
    ) -> CallToolResult:
        """Start a new scene (new block and bowl positions, arm at home), optionally for an instruction;
        the instruction becomes the current one. Returns the seed and which blocks are on the table. On a
        real arm: the arm goes home and a person arranges the table."""
        return await worker.call("reset", task=task, seed=seed)

    @mcp.tool(annotations=read_only, structured_output=False)
    async def list_skills() -> CallToolResult:
        """The task families the robot knows (pick, place, push, stack, touch) with example
        instructions, colours, directions, how success is judged, and which families the loaded policy
        was trained on when its checkpoint says so."""
        return await worker.call("list_skills")

    return mcp


def serve_mcp(
    factory: Callable[[], RobotTools],
    transport: str = "stdio",
    host: str = "127.0.0.1",
    port: int = 8765,
) -> None:
    """Build the robot (on its worker thread), then serve until the client disconnects or Ctrl-C."""
    if transport not in ("stdio", "streamable-http", "sse"):
        raise ValueError(f"unknown transport {transport!r}; valid: ['sse', 'stdio', 'streamable-http']")
    if transport == "stdio":
        # stdout becomes the MCP wire: stray prints while loading (libraries, warnings) go to stderr.
        # Only while loading: the SDK's stdio transport must find the real sys.stdout to claim it.
        with contextlib.redirect_stdout(sys.stderr):
            worker = RobotWorker(factory)
    else:
        worker = RobotWorker(factory)
    try:
        server = build_server(worker)
        if transport == "stdio":
            server.run("stdio")
        else:
            server.run(transport, host=host, port=port)  # type: ignore[call-overload]
    finally:
        worker.close()
