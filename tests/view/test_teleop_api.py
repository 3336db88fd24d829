"""The teleoperation page's web API (embodia.view.teleop) with the session's loop running: its errors, and
a whole recording made through it by the scripted driver (examples/teleop_driver.py), which `embodia
doctor data` passes and LeRobot 0.4.4 loads. The page itself is driven by Chromium in test_browser.py."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def driver():
    spec = importlib.util.spec_from_file_location("teleop_driver", EXAMPLES / "teleop_driver.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Api:
    """The driver's client (get / post) over FastAPI's TestClient: the same requests as over HTTP."""

    def __init__(self, client):
        self.client = client

    def get(self) -> dict:
        return self.client.get("/api/teleop").json()

    def post(self, path: str, body: dict) -> dict:
        res = self.client.post("/api/teleop/" + path, json=body)
        assert res.status_code == 200, res.json()
        return res.json()


@pytest.fixture
def teleop(tmp_path):
    from fastapi.testclient import TestClient

    from embodia.data.sim_teleop import SimTeleop, SimTeleopConfig
    from embodia.robots.rate import Rate
    from embodia.view.viewer import create_viewer_app

    root = tmp_path / "demos"
    with SimTeleop(SimTeleopConfig(task="pick", dataset=str(root), seed=100)) as session:
        client = TestClient(create_viewer_app(tmp_path, teleop=session), base_url="http://127.0.0.1")
        # The same loop and the same 1/30 s of simulated time per tick, paced at 10 ticks per wall-clock
        # second: the driver is a closed loop that acts once per tick, and on a loaded CI machine, at 30
        # ticks/s, it fell behind the arm (an episode failed, or a late correction was recorded as a jump).
        session.rate = Rate(10)
        with session.running():
            yield client, session, root


def test_bad_requests_are_4xx_and_move_nothing(teleop):
    client, session, _ = teleop
    before = session.leader.q.copy()
    for body in ({"move": [1, 0]}, {"move": [1, "x", 0]}, {"move": [0, 0, 0], "speed": 9}, {"gripper": "half"},
                 {"pitch": "NaN"}):  # fmt: skip
        res = client.post("/api/teleop/command", json=body)
        assert res.status_code == 422 and "malformed request" in res.json()["error"], body
    res = client.post(
        "/api/teleop/command", content=b'{"move": [NaN, 0, 0]}', headers={"Content-Type": "application/json"}
    )
    assert res.status_code == 422
    res = client.post(
        "/api/teleop/command", json={"move": [1, 0, 0]}, headers={"Origin": "http://evil.example"}
    )
    assert res.status_code == 403 and "may not drive the arm" in res.json()["error"]
    assert (session.leader.q == before).all()
    assert client.post("/api/teleop/episode", json={"action": "save"}).status_code == 409
    assert client.post("/api/teleop/episode", json={"action": "start", "seed": 3}).status_code == 422
    res = client.post("/api/teleop/episode", json={"action": "new", "task": "juggle the blocks"})
    assert res.status_code == 400 and "unknown task" in res.json()["error"]
    state = client.get("/api/teleop").json()
    assert {k["key"] for k in state["keys"]} >= {"w", "a", "s", "d", "r", "f", "q", "e"} and state["gamepad"][
        "help"
    ]
    # Requests from the page itself (same origin) are the page's job.
    assert (
        client.post("/api/teleop/command", json={}, headers={"Origin": "http://127.0.0.1"}).status_code == 200
    )


def test_a_scripted_recording_through_the_api_passes_the_doctor_and_loads_in_lerobot(
    teleop, tmp_path, lerobot_loads
):
    client, session, root = teleop
    drv, api = driver(), Api(client)
    results = [drv.demonstrate(api) for _ in range(2)]
    assert [r["kept"] for r in results] == [True, True], [r["last_saved"] for r in results]
    assert session.state()["saved"] == 2
    from embodia.cli import main
    from embodia.data.reader import LeRobotDataset

    assert LeRobotDataset.open(root).num_episodes == 2
    assert main(["doctor", "data", str(root), "--out", str(tmp_path / "doctor")]) == 0  # 1 on any FAIL
    loaded = lerobot_loads(root)
    frames = sum(r["last_saved"]["frames"] for r in results)
    assert loaded == {"episodes": 2, "frames": frames, "front": [3, 96, 96], "success": True,
                      "task": results[1]["last_saved"]["task"]}  # fmt: skip


def test_embodia_teleop_sim_serves_the_page_and_reports(tmp_path, capsys):
    from embodia.cli import main

    out = tmp_path / "run"
    assert (
        main(["teleop", "--sim", "--task", "pick", "--seconds", "1.5", "--view-port", "0", "--out", str(out)])
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert report["ticks"] > 20 and report["saved"] == 0 and report["dataset"] is None
    assert "#/teleop" in capsys.readouterr().out
    assert main(["teleop", "--sim", "--no-view", "--seconds", "1"]) == 2  # nothing to drive it with
    assert main(["teleop", "--sim", "--task", "juggle the blocks", "--seconds", "1", "--view-port", "0"]) == 2


def test_kill_stops_browser_teleoperation_like_ctrl_c(tmp_path):
    """`kill` (SIGTERM) ends `embodia teleop --sim` through the Ctrl-C path: the report is written."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    args = [sys.executable, "-m", "embodia.cli", "teleop", "--sim", "--task", "pick", "--view-port", "0",
            "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "200"}
    )
    try:
        seen = b""
        deadline = time.monotonic() + 120
        while b"#/teleop" not in seen:  # the page is up and the loop running
            assert proc.poll() is None and time.monotonic() < deadline, seen.decode()[-2000:]
            seen += os.read(proc.stdout.fileno(), 4096)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[0]
    finally:
        proc.kill()
    assert proc.returncode == 0, (seen + rest).decode()[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["ticks"] > 5 and report["saved"] == 0
