"""`embodia mcp --robot so101`: the agent tools on the emulated follower (servo-bus emulator backed by
the MuJoCo arm, cameras from video files), through the MCP SDK's own client, in process and spawned
over stdio as an agent host would."""

from __future__ import annotations

import json
import os
import sys

import anyio
import pytest
from mcp import Client, StdioServerParameters

from embodia.robots.emulator import BusEmulator, calibrate_emulated
from embodia.serve.mcp_server import TOOLS, RobotWorker, build_server

cv2 = pytest.importorskip("cv2", reason="OpenCV comes with the dev extra")
pytest.importorskip("scservo_sdk", reason="feetech-servo-sdk comes with the dev extra")


@pytest.fixture
def arm(tmp_path, camera_files):
    """An emulated follower whose servos move a MuJoCo SO-101, calibrated; yields (bus, FollowerArm)."""
    from embodia.commands.arm import FollowerArm
    from embodia.robots.emulator_arm import SimulatedArm

    with BusEmulator(arm=SimulatedArm()) as bus:
        calibrate_emulated(bus, "follower", "F", tmp_path, reach=4000)
        yield (
            bus,
            FollowerArm(
                follower=bus.port, follower_id="F", calibration_dir=str(tmp_path), cameras=camera_files
            ),
        )


def call_all(server, calls):
    async def main():
        async with Client(server) as client:
            out = [await client.call_tool(name, args) for name, args in calls]
            return client.instructions, out

    return anyio.run(main)


def test_the_tools_act_on_the_emulated_follower(arm, tmp_path):
    from embodia.serve.arm_tools import ArmTools

    bus, follower = arm
    worker = RobotWorker(lambda: ArmTools.load(follower.build, checkpoint="base", out_dir=tmp_path / "mcp"))
    try:
        init, (seen, moved, far, closed, opened, did, home, skills) = call_all(build_server(worker), [
            ("observe", {"include_wrist": True}),
            ("move_to", {"x": 0.22, "y": 0.05, "z": 0.08}),
            ("move_to", {"x": 0.6, "y": 0.0, "z": 0.05}),
            ("close_gripper", {}),
            ("open_gripper", {}),
            ("do", {"instruction": "pick up the red block", "max_steps": 30}),
            ("reset", {"task": "pick up the red block"}),
            ("list_skills", {}),
        ])  # fmt: skip
    finally:
        worker.close()
    assert "real SO-101" in init and "judges success" in init
    assert [c.type for c in seen.content] == ["image", "image", "text"]
    state = seen.structured_content
    assert state["objects_xyz_m"] is None and "no simulator" in state["objects_note"]
    assert set(state["joints_rad"]) == {
        "shoulder_pan",
        "shoulder_lift",
        "elbow_flex",
        "wrist_flex",
        "wrist_roll",
    }

    m = moved.structured_content
    assert not moved.is_error and m["reached"] and m["error_m"] <= 0.02, m["summary"]
    assert far.is_error and "nearest reachable point" in far.content[0].text
    assert (
        closed.structured_content["gripper"]["opening"]
        < 0.15
        < 0.85
        < opened.structured_content["gripper"]["opening"]
    )

    d = did.structured_content
    assert not did.is_error, did.content[0].text
    assert d["success"] is None and "not judged" in d["summary"]
    assert d["chunks"] >= 1 and d["steps"] + d["timing"]["ticks_missed"] >= 28  # 30 periods of 1/30 s
    assert (tmp_path / "mcp" / "do_001.mp4").stat().st_size > 0
    assert "home pose" in home.structured_content["summary"]
    assert home.structured_content["instruction"] == "pick up the red block"
    assert len(skills.structured_content["families"]) == 5 and skills.structured_content["policy"]["loaded"]

    assert bus.violations == []  # every goal inside the servos' limits
    assert all(s.get("Torque_Enable") == 0 for s in bus.servos.values())  # closing the server: torque off


def test_a_bad_schedule_fails_before_the_arm_is_touched(arm):
    from embodia.policy.executor import ExecutionConfig
    from embodia.serve.arm_tools import ArmTools

    bus, follower = arm
    before = dict(bus.instructions)
    with pytest.raises(ValueError, match="delay must be in"):
        ArmTools.load(follower.build, checkpoint="base", execution=ExecutionConfig(delay=2))
    assert bus.instructions == before


def test_mcp_on_the_arm_spawned_as_an_agent_host_would(arm, tmp_path):
    bus, follower = arm
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "embodia.cli", "mcp", "--robot", "so101", "--follower", follower.follower, "--follower-id", "F",
              "--calibration-dir", follower.calibration_dir, "--cameras", follower.cameras, "--no-video"],
        env={"OMP_NUM_THREADS": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")},
        cwd=str(tmp_path),
    )  # fmt: skip

    async def main():
        with anyio.fail_after(180):
            async with Client(params, read_timeout_seconds=120) as c:
                names = {t.name for t in (await c.list_tools()).tools}
                return names, await c.call_tool("observe", {}), await c.call_tool("open_gripper", {})

    names, seen, opened = anyio.run(main)
    assert names == set(TOOLS)
    assert [c.type for c in seen.content] == ["image", "text"]
    assert json.loads(seen.content[-1].text)["objects_xyz_m"] is None
    assert opened.structured_content["gripper"]["state"] == "open"
    assert bus.violations == []
    assert all(s.get("Torque_Enable") == 0 for s in bus.servos.values())  # the server exited: torque off
