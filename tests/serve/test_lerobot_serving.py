"""A LeRobot policy (LeRobot's own code, its own environment) behind `embodia serve` and the MCP tools."""

from __future__ import annotations

import anyio
import numpy as np
import pytest
from mcp import Client as McpClient
from serve_helpers import make_obs

from embodia.policy.lerobot_policy import LeRobotPolicy
from embodia.serve.client import Client
from embodia.serve.mcp_server import RobotWorker, build_server
from embodia.serve.robot_tools import RobotTools
from embodia.serve.server import running_server


@pytest.fixture(scope="module")
def act(lerobot_policies):
    with LeRobotPolicy(lerobot_policies["act"]) as policy:
        yield policy


def test_served_act_answers_openpi_requests_with_lerobots_chunk(act):
    with running_server(act) as url, Client(url) as client:
        md = client.metadata
        assert md["model"]["head"] == "lerobot:act"
        obs = make_obs(md["observation"])
        got = client.act(obs)
        assert got.shape == (act.chunk_size, 6) and np.all(np.isfinite(got))
        np.testing.assert_allclose(got, act.predict_chunk([obs])[0], atol=1e-6)
        # Any camera size: the worker resizes to the size the policy was trained at.
        wide = obs | {"observation.images.front": np.zeros((120, 160, 3), np.uint8)}
        assert client.act(wide).shape == (act.chunk_size, 6)
        with pytest.raises(Exception, match="guided"):
            client.act(obs, pending=np.zeros((3, 6), np.float32), delay=1)
        assert client.act(obs).shape == (act.chunk_size, 6)  # the server keeps working


def test_mcp_do_runs_a_lerobot_policy(lerobot_policies, tmp_path):
    worker = RobotWorker(lambda: RobotTools.load(str(lerobot_policies["act"]), out_dir=tmp_path, seed=0))
    server = build_server(worker)

    async def main():
        async with McpClient(server) as c:
            await c.call_tool("reset", {"task": "pick up the red block", "seed": 0})
            return await c.call_tool("do", {"instruction": "pick up the red block", "max_steps": 12})

    try:
        res = anyio.run(main)
    finally:
        worker.close()
    assert not res.is_error, res.content
    out = res.structured_content
    assert out["steps"] == 12 and out["chunks"] >= 2 and out["judged_as"] == "pick up the red block"


def test_a_stateful_policy_keeps_one_episode_per_connection(lerobot_policies):
    """Diffusion (observation history): each websocket connection is one episode; two connections
    interleaved act exactly as each alone."""
    with LeRobotPolicy(lerobot_policies["diffusion"]) as policy, running_server(policy) as url:
        with Client(url) as probe:
            assert probe.metadata["stateful"] is True
            features = probe.metadata["observation"]
        frames = [make_obs(features, seed=i) for i in range(4)]
        others = [make_obs(features, seed=10 + i) for i in range(4)]
        with Client(url) as alone:
            solo = [alone.act(f, seed=5) for f in frames]
        with Client(url) as a, Client(url) as b:
            mixed = []
            for f, g in zip(frames, others, strict=True):
                b.act(g, seed=6)
                mixed.append(a.act(f, seed=5))
        for x, y in zip(solo, mixed, strict=True):
            np.testing.assert_allclose(x, y, atol=1e-5)
        assert solo[0].shape == (1, 6)


@pytest.mark.parametrize("kind", ["act_ensemble", "diffusion", "smolvla", "xvla"])
def test_each_policy_type_runs_serves_acts_as_a_tool_and_replays(kind, lerobot_policies, tmp_path):
    """The paths of the table in docs/lerobot.md for the policies the tests above do not drive through
    all of them: `run`'s episode, `serve`, the MCP `do` tool and the doctor's open-loop replay."""
    from pathlib import Path

    from embodia.eval.episode import run_episode
    from embodia.sim.tabletop import TabletopEnv
    from embodia.train.doctor import open_loop_replay

    with LeRobotPolicy(lerobot_policies[kind]) as policy:
        env = TabletopEnv(image_size=96, cameras=("front", "wrist"))
        try:
            ep = run_episode(policy, env, seed=0, task="pick up the red block", max_steps=6)
            assert ep.steps == 6
        finally:
            env.close()
        dataset = Path(__file__).parents[1] / "fixtures" / "so101_tabletop_tiny"
        replay = open_loop_replay(policy, dataset, episodes=[4], every=16)
        assert replay["chunks"] >= 1 and np.isfinite(replay["mae"])
        with running_server(policy) as url, Client(url) as client:
            reply = client.act(make_obs(client.metadata["observation"]))
            assert reply.shape == (policy.chunk_size, 6) and np.all(np.isfinite(reply))
        worker = RobotWorker(lambda: RobotTools(TabletopEnv(image_size=96, cameras=("front", "wrist")), policy,
                                                out_dir=tmp_path, video=False))  # fmt: skip
        try:

            async def main():
                async with McpClient(build_server(worker)) as c:
                    return await c.call_tool("do", {"instruction": "touch the red block", "max_steps": 4})

            res = anyio.run(main)
        finally:
            worker.close()
        assert not res.is_error, res.content
        assert res.structured_content["steps"] == 4  # (closing the tools closed the policy)
