"""`embodia teleop` on emulated arms: a leader emulator driven by a hand (a test thread) steers a
follower emulator, or the simulated SO-101; the report holds the tracking error per joint, and the
follower's cameras stream live to the browser viewer while it runs."""

from __future__ import annotations

import io
import json
import math
import socket
import threading
import time
import urllib.request

import pytest
from PIL import Image

from embodia.cli import main
from embodia.robots.emulator import BusEmulator, calibrate_emulated
from embodia.robots.so101 import HOME_QPOS

pytest.importorskip("scservo_sdk", reason="feetech-servo-sdk comes with the dev extra")

MIDDLE = {1: 2048, 2: 1700, 3: 2400, 4: 2300, 5: 2048, 6: 2100}


def _hand(leader: BusEmulator, stop: threading.Event, center: dict[int, float], amplitude: float = 250.0,
          hz: float = 0.4) -> threading.Thread:  # fmt: skip
    """A person moving every joint of the leader smoothly around `center` (ticks), each with its own phase."""

    def move() -> None:
        t0 = time.monotonic()
        while not stop.is_set():
            t = time.monotonic() - t0
            for i in MIDDLE:
                leader.move_by_hand(i, center[i] + amplitude * math.sin(2 * math.pi * hz * t + i))
            time.sleep(0.01)

    thread = threading.Thread(target=move, daemon=True)
    thread.start()
    return thread


def _teleop(tmp_path, leader: BusEmulator, follower_args: list[str], center: dict[int, float] = MIDDLE,
            amplitude: float = 250.0, seconds: float = 4.0, view: list[str] = ("--no-view",)) -> dict:  # fmt: skip
    stop = threading.Event()
    hand = _hand(leader, stop, center, amplitude)
    try:
        args = ["teleop", *follower_args, "--leader", leader.port, "--leader-id", "L", "--follower-id", "F",
                "--calibration-dir", str(tmp_path), "--seconds", str(seconds), "--out", str(tmp_path / "out"), *view]  # fmt: skip
        assert main(args) == 0
    finally:
        stop.set()
        hand.join()
    return json.loads((tmp_path / "out" / "report.json").read_text())


def test_leader_emulator_drives_follower_emulator(tmp_path, capsys):
    with BusEmulator(positions=MIDDLE) as leader, BusEmulator(positions=MIDDLE) as follower:
        calibrate_emulated(leader, "leader", "L", tmp_path)
        calibrate_emulated(follower, "follower", "F", tmp_path)
        report = _teleop(tmp_path, leader, ["--follower", follower.port, "--cameras", ""])
        assert follower.violations == []
        assert all(s.get("Torque_Enable") == 0 for s in follower.servos.values())
    print(capsys.readouterr().out)
    timing = report["timing"]
    assert 118 <= timing["ticks"] + timing["ticks_missed"] <= 121  # every period of the 4 s accounted for
    assert max(report["tracking_p95"]) < 0.05  # rad: the follower keeps up with a hand's pace


def test_leader_emulator_drives_the_simulated_arm(tmp_path, capsys):
    with BusEmulator(positions=MIDDLE) as leader:
        calibrate_emulated(leader, "leader", "L", tmp_path)
        # Around the simulated arm's home pose (arm folded above the table): the calibrated ranges are
        # symmetric about the middle pose, so the model's zero is the middle pose.
        center = {
            i: MIDDLE[i] + q * 4095 / (2 * math.pi) for i, q in zip(MIDDLE, HOME_QPOS[:5], strict=False)
        }
        center[6] = MIDDLE[6]
        # 120 ticks (0.18 rad) each way: wider swings reach the blocks on the table, and a blocked joint
        # is not a tracking error.
        port = _free_port()
        seen: dict = {}
        watcher = threading.Thread(target=_watch_live, args=(f"http://127.0.0.1:{port}", seen), daemon=True)
        watcher.start()
        report = _teleop(
            tmp_path, leader, ["--sim"], center, amplitude=120.0, view=["--view-port", str(port)]
        )
        watcher.join(timeout=10)
    print(capsys.readouterr().out)
    # The browser side, while the arm moved: both cameras at --image-size (256), streamed as MJPEG.
    assert seen["cameras"] == ["front", "wrist"] and seen["live"]
    assert seen["frame_size"] == (256, 256)
    assert seen["stream_frames"] >= 2  # how many per second: benchmarks/teleop_live_view.py
    timing = report["timing"]
    assert 118 <= timing["ticks"] + timing["ticks_missed"] <= 121
    assert max(report["tracking_p95"]) < 0.1  # rad: the simulated servos' lag behind a moving target


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _watch_live(url: str, seen: dict) -> None:
    """What a browser does on the viewer's live page: read the state, a frame, and the front stream."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            live = json.loads(urllib.request.urlopen(url + "/api/live", timeout=2).read())
        except OSError:
            time.sleep(0.1)
            continue
        if live["cameras"]:
            break
        time.sleep(0.05)
    else:
        return
    seen.update(cameras=live["cameras"], live=live["live"])
    with urllib.request.urlopen(url + "/live/frame/front.jpg", timeout=5) as r:
        seen["frame_size"] = Image.open(io.BytesIO(r.read())).size
    with urllib.request.urlopen(url + "/live/stream/front", timeout=5) as r:
        assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        t0, parts = time.monotonic(), 0
        while time.monotonic() - t0 < 1.0 and (line := r.readline()):
            parts += line.startswith(b"--embodia-frame")
    seen["stream_frames"] = parts


def test_teleop_needs_one_follower_and_a_leader_for_a_real_one(capsys):
    assert main(["teleop", "--sim", "--follower", "/dev/null", "--leader", "x"]) == 2
    assert main(["teleop", "--follower", "/dev/null"]) == 2
    assert "--leader PORT is required for a real follower" in capsys.readouterr().out
    # --sim alone is the browser page (tests/view/test_teleop_api.py); it needs the viewer.
    assert main(["teleop", "--sim", "--no-view"]) == 2
