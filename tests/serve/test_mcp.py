"""`embodia mcp`: the robot's MCP tools, driven through the MCP SDK's own client.

Most tests talk to the server in-process (the SDK's `Client(server)`), sharing one robot; one test
spawns `python -m embodia.cli mcp` and talks to it over stdio, as an agent's MCP host would.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import numpy as np
import pytest
from mcp import Client, StdioServerParameters
from PIL import Image

from embodia.serve.mcp_server import TOOLS, RobotWorker, build_server
from embodia.serve.robot_tools import RobotTools
from embodia.sim.progress import FAILURE_LABELS
from embodia.sim.tasks import FAMILIES


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("mcp_videos")


@pytest.fixture(scope="module")
def server(tiny_policy_dir, video_dir):
    worker = RobotWorker(lambda: RobotTools.load(tiny_policy_dir, out_dir=video_dir, seed=0))
    yield build_server(worker)
    worker.close()


def session(server, script):
    """Run `await script(client)` against `server` in a fresh in-process MCP session."""

    async def main():
        async with Client(server) as client:
            return await script(client)

    return anyio.run(main)


def text_of(result) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


def test_lists_the_tools_with_descriptions_and_schemas(server):
    listed = session(server, lambda c: c.list_tools()).tools
    assert {t.name for t in listed} == set(TOOLS)
    by_name = {t.name: t for t in listed}
    assert all(t.description for t in listed)
    assert set(by_name["move_to"].input_schema["required"]) == {"x", "y", "z"}
    assert by_name["do"].input_schema["required"] == ["instruction"]
    assert by_name["observe"].annotations.read_only_hint


def test_observe_returns_a_png_and_the_state(server):
    async def script(c):
        await c.call_tool("reset", {"task": "pick up the red block", "seed": 0})
        return await c.call_tool("observe", {"include_wrist": True})

    res = session(server, script)
    assert not res.is_error
    images = [c for c in res.content if c.type == "image"]
    assert len(images) == 2 and all(i.mime_type == "image/png" for i in images)
    img = Image.open(io.BytesIO(base64.b64decode(images[0].data)))
    assert img.format == "PNG" and img.size == (64, 64)  # the tiny policy's camera size
    state = res.structured_content
    assert state["instruction"] == "pick up the red block"
    assert len(state["joints_rad"]) == 5 and len(state["tool_xyz_m"]) == 3
    assert state["gripper"]["state"] in ("open", "closed", "partly open")
    assert "red_block" in state["objects_xyz_m"] and "bowl" in state["objects_xyz_m"]
    assert '"tool_xyz_m"' in text_of(res)  # the same state as text, for clients that show only text


def test_move_to_reaches_a_reachable_point_and_names_the_nearest_for_an_unreachable_one(server):
    async def script(c):
        await c.call_tool("reset", {"task": "touch the blue block", "seed": 1})
        ok = await c.call_tool("move_to", {"x": 0.2, "y": 0.05, "z": 0.08})
        down = await c.call_tool("move_to", {"x": 0.18, "y": -0.03, "z": 0.06, "pitch_deg": 90})
        far = await c.call_tool("move_to", {"x": 0.6, "y": 0.0, "z": 0.05})
        return ok, down, far

    ok, down, far = session(server, script)
    for res, target in ((ok, [0.2, 0.05, 0.08]), (down, [0.18, -0.03, 0.06])):
        assert not res.is_error, text_of(res)
        out = res.structured_content
        assert out["reached"] and out["error_m"] < 0.02
        assert out["target_m"] == target
    assert far.is_error
    assert "not reachable" in text_of(far) and "nearest reachable point" in text_of(far)


def test_gripper_opens_and_closes(server):
    async def script(c):
        await c.call_tool("reset", {"task": "pick up the red block", "seed": 2})
        closed = await c.call_tool("close_gripper", {})
        observed = await c.call_tool("observe", {})
        opened = await c.call_tool("open_gripper", {})
        return closed, observed, opened

    closed, observed, opened = session(server, script)
    assert closed.structured_content["gripper"]["opening"] < 0.2
    assert observed.structured_content["gripper"]["state"] == "closed"
    assert opened.structured_content["gripper"]["opening"] > 0.8


def test_reset_sets_the_instruction_and_is_reproducible(server):
    async def script(c):
        a = await c.call_tool("reset", {"task": "push the blue block to the left", "seed": 3})
        seen = await c.call_tool("observe", {})
        b = await c.call_tool("reset", {"task": "stack", "seed": 3})
        return a, seen, b

    a, seen, b = session(server, script)
    assert a.structured_content["instruction"] == "push the blue block to the left"
    assert a.structured_content["seed"] == 3
    assert seen.structured_content["instruction"] == "push the blue block to the left"
    assert b.structured_content["family"] == "stack"  # a family name draws a task of that family


def test_list_skills_lists_the_five_families_and_what_the_policy_was_trained_on(server):
    res = session(server, lambda c: c.call_tool("list_skills", {}))
    out = res.structured_content
    assert [f["family"] for f in out["families"]] == list(FAMILIES)
    assert all(f["examples"] and f["success"] for f in out["families"])
    assert out["policy"]["loaded"]
    # The tiny checkpoint names its training dataset, whose tasks cover all five families.
    assert out["policy"]["trained_on"] == sorted(FAMILIES)


def test_do_runs_the_policy_from_the_current_state(server, video_dir):
    async def script(c):
        await c.call_tool("reset", {"task": "pick up the red block", "seed": 0})
        await c.call_tool("move_to", {"x": 0.2, "y": 0.0, "z": 0.08})
        return await c.call_tool("do", {"instruction": "pick up the red block", "max_steps": 6})

    res = session(server, script)
    assert not res.is_error, text_of(res)
    out = res.structured_content
    assert out["steps"] <= 6 and out["chunks"] >= 1
    assert isinstance(out["success"], bool)
    assert out["judged_as"] == "pick up the red block"
    # Six steps cannot lift a block, so the attempt failed, and the answer says where it stopped.
    assert out["success"] is False and out["failure"] in FAILURE_LABELS
    assert f"(stopped at: {out['failure']})" in out["summary"]
    assert "steps" in out["summary"] and out["video"]
    assert os.path.exists(out["video"]) and os.path.dirname(out["video"]) == str(video_dir)


def test_do_refuses_an_instruction_outside_the_catalogue_and_does_not_act(server):
    async def script(c):
        before = await c.call_tool("observe", {})
        res = await c.call_tool("do", {"instruction": "what is the weather", "max_steps": 2})
        return before, res, await c.call_tool("observe", {})

    before, res, after = session(server, script)
    assert res.is_error
    msg = text_of(res)
    assert "outside what this robot's task catalogue offers" in msg and "Closest tasks" in msg
    assert "Nothing was done" in msg
    # The arm did not move: the scene is as it was.
    assert after.structured_content["joints_rad"] == before.structured_content["joints_rad"]


def test_do_gives_the_policy_the_catalogue_phrasing_of_free_text(server):
    async def script(c):
        await c.call_tool("reset", {"task": "push the blue block to the left", "seed": 0})
        return await c.call_tool(
            "do", {"instruction": "shove the blue block leftwards please", "max_steps": 2}
        )

    res = session(server, script)
    assert not res.is_error, text_of(res)
    out = res.structured_content
    assert out["judged_as"].startswith(("push", "slide", "shove", "nudge")) and "blue" in out["judged_as"]
    assert "left" in out["judged_as"] and out["policy_read"] != "shove the blue block leftwards please"


class _NanPolicy:
    """A policy gone wrong: every action is NaN."""

    chunk_size, n_action_steps = 4, 2

    def reset(self):
        pass

    def predict_chunk(self, observations):
        return np.full((len(observations), 4, 6), np.nan, np.float32)


def test_a_nan_action_is_a_tool_error_and_never_reaches_the_arm(tmp_path):
    from embodia.sim.tabletop import TabletopEnv

    worker = RobotWorker(lambda: RobotTools(TabletopEnv(image_size=64), _NanPolicy(), out_dir=tmp_path))
    try:
        before = worker.robot.env.joint_positions()

        async def script(c):
            return await c.call_tool("do", {"instruction": "touch the red block"}), await c.call_tool(
                "observe", {}
            )

        res, seen = session(build_server(worker), script)
        after = worker.robot.env.joint_positions()
    finally:
        worker.close()
    assert res.is_error and "NaN" in text_of(res) and "not executed" in text_of(res)
    assert not seen.is_error and np.allclose(before, after)


class _ExpertPolicy:
    """The scripted expert behind the ChunkPolicy interface: one privileged action per chunk."""

    chunk_size = n_action_steps = 1

    def __init__(self):
        self.env = None

    def reset(self):
        pass

    def predict_chunk(self, observations):
        return self.env.expert_action()[None, None].astype(np.float32)


def _tools_with(env, policy, tmp_path):
    policy.env = env
    return RobotWorker(lambda: RobotTools(env, policy, out_dir=tmp_path, video=False))


def test_do_reports_the_environments_success_and_the_scene_changes(tmp_path):
    """`do` with a competent policy (the expert): the env's info says success, the block moved."""
    from embodia.sim.tabletop import TabletopEnv

    env = TabletopEnv(image_size=48)
    worker = _tools_with(env, _ExpertPolicy(), tmp_path)
    try:

        async def script(c):
            await c.call_tool("reset", {"task": "pick up the blue block", "seed": 2})
            return await c.call_tool("do", {"instruction": "pick up the blue block"})

        res = session(build_server(worker), script)
        out = res.structured_content
        lifted = env.block_position("blue")[2] - env.block_start["blue"][2]
    finally:
        worker.close()
    assert not res.is_error, text_of(res)
    assert out["success"] is True and out["steps"] < FAMILIES["pick"].max_steps, out["summary"]
    assert lifted >= 0.05 - 1e-6


class _SpyEnv:
    """Wraps the real env; its info says success on the 3rd step after begin_task, whatever the scene."""

    def __init__(self, env):
        self._env, self.began = env, []

    def __getattr__(self, name):
        return getattr(self._env, name)

    def begin_task(self, task):
        self.began.append(task.instruction)
        self._n = 0
        return self._env.begin_task(task)

    def step(self, action):
        obs, reward, term, trunc, info = self._env.step(action)
        self._n += 1
        return obs, reward, term, trunc, {**info, "success": self._n == 3}


def test_do_takes_success_from_the_environments_info_not_its_own_judgement(tmp_path):
    from embodia.sim.tabletop import TabletopEnv

    spy = _SpyEnv(TabletopEnv(image_size=48))
    policy = _ExpertPolicy()
    worker = _tools_with(spy, policy, tmp_path)
    policy.env = spy._env
    try:

        async def script(c):
            await c.call_tool("reset", {"task": "stack the red block on the green block", "seed": 1})
            return await c.call_tool("do", {"instruction": "stack the red block on the green block"})

        res = session(build_server(worker), script)
    finally:
        worker.close()
    out = res.structured_content
    # Stacking cannot succeed in 3 steps; only the env's (spied) info can say so.
    assert out["success"] is True and out["steps"] == 3, out["summary"]
    assert spy.began == ["stack the red block on the green block"]


def test_bad_input_is_a_tool_error_and_the_server_keeps_working(server):
    async def script(c):
        # Scene seed 3 (push blue) has no green block on the table.
        await c.call_tool("reset", {"task": "push the blue block to the left", "seed": 3})
        calls = [
            ("move_to", {"x": "nan", "y": 0.0, "z": 0.05}),
            ("move_to", {"x": 20, "y": 0, "z": 5}),
            ("move_to", {"x": 0.2, "y": 0.0, "z": -0.1}),
            ("move_to", {"x": "left", "y": 0.0, "z": 0.1}),
            ("do", {"instruction": "   "}),
            ("do", {"instruction": "pick up the red block", "max_steps": 0}),
            ("do", {"instruction": "pick up the green block"}),
            ("reset", {"seed": -1}),
            ("reset", {"task": "pick up the orange block"}),  # a known phrasing, an unknown colour
            ("reset", {"task": "make me a sandwich"}),  # nothing like any catalogue task
            ("no_such_tool", {}),
        ]
        results = [await c.call_tool(name, args) for name, args in calls]
        return results, await c.call_tool("observe", {})

    results, after = session(server, script)
    assert all(r.is_error for r in results), [text_of(r)[:150] for r in results if not r.is_error]
    msgs = [text_of(r) for r in results]
    assert "finite" in msgs[0]
    assert "metres" in msgs[1]
    assert "below the table" in msgs[2]
    assert "instruction is empty" in msgs[4]
    assert "max_steps" in msgs[5]
    assert "green block is not on the table" in msgs[6] and "reset(" in msgs[6]
    assert "seed" in msgs[7]
    assert "unknown color 'orange'" in msgs[8] and "purple" in msgs[8]
    assert "outside what this robot's task catalogue offers" in msgs[9] and "Closest tasks" in msgs[9]
    assert not after.is_error and after.structured_content["instruction"] == "push the blue block to the left"


def test_without_a_policy_do_explains_and_the_other_tools_work(tmp_path, monkeypatch):
    from embodia.policy.checkpoint import SHIPPED_POLICIES

    # No shipped base in this folder: the server starts anyway, without a policy.
    monkeypatch.setitem(SHIPPED_POLICIES, "base", tmp_path)
    worker = RobotWorker(lambda: RobotTools.load(None, image_size=64, video=False))
    try:
        server = build_server(worker)

        async def script(c):
            return (
                await c.call_tool("do", {"instruction": "pick up the red block"}),
                await c.call_tool("observe", {}),
                await c.call_tool("list_skills", {}),
            )

        do, seen, skills = session(server, script)
    finally:
        worker.close()
    assert do.is_error and "no policy is loaded" in text_of(do) and "--checkpoint" in text_of(do)
    assert not seen.is_error
    assert skills.structured_content["policy"]["loaded"] is False


def test_stdio_server_spawned_as_an_agent_host_would(tiny_policy_dir, tmp_path):
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "embodia.cli", "mcp", "--checkpoint", str(tiny_policy_dir), "--no-video", "--seed", "5"],
        env={"OMP_NUM_THREADS": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")},
        cwd=str(tmp_path),
    )

    async def main():
        with anyio.fail_after(180):
            return await talk()

    async def talk():
        async with Client(params, read_timeout_seconds=120) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            seen = await c.call_tool("observe", {})
            bad = await c.call_tool("move_to", {"x": 0.6, "y": 0.0, "z": 0.05})
            skills = await c.call_tool("list_skills", {})
            return names, seen, bad, skills

    names, seen, bad, skills = anyio.run(main)
    assert names == set(TOOLS)
    assert [c.type for c in seen.content] == ["image", "text"]
    assert bad.is_error and "nearest reachable point" in text_of(bad)
    assert len(skills.structured_content["families"]) == 5


# ---------------------------------------------------------------------------------- examples/agent_mcp.py
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agent_mcp.py"
LLM_VARS = ("EMBODIA_LLM_BASE_URL", "EMBODIA_LLM_API_KEY", "EMBODIA_LLM_MODEL")


def test_agent_example_says_which_variables_to_set():
    env = {k: v for k, v in os.environ.items() if k not in LLM_VARS}
    proc = subprocess.run([sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert all(v in proc.stderr for v in LLM_VARS)


def _fake_llm(turns: list[dict]):
    """A scripted OpenAI-compatible chat-completions endpoint on loopback; records the requests."""
    requests: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            requests.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            message = turns[min(len(requests), len(turns)) - 1]
            body = json.dumps({"choices": [{"index": 0, "message": message}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, requests


def _do_call(i: int, instruction: str) -> dict:
    args = json.dumps({"instruction": instruction, "max_steps": 3})
    return {"id": f"call_{i}", "type": "function", "function": {"name": "do", "arguments": args}}


def test_agent_example_turns_the_models_tool_calls_into_do_calls(tiny_policy_dir, tmp_path):
    turns = [
        {"role": "assistant", "content": None, "tool_calls": [_do_call(0, "put the red block in the bowl")]},
        {"role": "assistant", "content": None, "tool_calls": [_do_call(1, "put the blue block in the bowl")]},
        {"role": "assistant", "content": "Both attempts ran."},
    ]
    server, requests = _fake_llm(turns)
    env = os.environ | {
        "EMBODIA_LLM_BASE_URL": f"http://127.0.0.1:{server.server_address[1]}/v1",
        "EMBODIA_LLM_API_KEY": "test",
        "EMBODIA_LLM_MODEL": "scripted",
        "OMP_NUM_THREADS": "1",
    }
    try:
        cmd = [sys.executable, str(EXAMPLE), "--checkpoint", str(tiny_policy_dir), "--max-turns", "5"]
        proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    finally:
        server.shutdown()
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("-> do(") == 2 and "agent: Both attempts ran." in proc.stdout
    assert {t["function"]["name"] for t in requests[0]["tools"]} == set(TOOLS)
    tool_reply = json.loads(requests[1]["messages"][-1]["content"])
    assert tool_reply["instruction"] == "put the red block in the bowl" and tool_reply["steps"] <= 3
    assert len(list(tmp_path.glob("embodia_runs/mcp/*/do_*.mp4"))) == 2
