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
