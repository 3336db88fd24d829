"""Human demonstrations on the emulated pair: a hand (a test thread) moves the leader emulator, the
follower emulator follows, cameras are video files through OpenCV; scripted episode controls."""

from __future__ import annotations

import json
import math
import threading
import time

import numpy as np
import pytest

from embodia.data.record_teleop import ScriptedControls, TeleopRecordConfig, record_teleop, trim_idle
from embodia.robots.camera import CameraConfig, CameraError, OpenCVCamera
from embodia.robots.emulator import BusEmulator, calibrate_emulated
from embodia.robots.feetech.bus import BusDisconnected
from embodia.robots.so101_arm import ArmConfig, SO101Follower, SO101Leader

cv2 = pytest.importorskip("cv2", reason="OpenCV comes with the dev extra")
pytest.importorskip("scservo_sdk", reason="feetech-servo-sdk comes with the dev extra")

MIDDLE = {1: 2048, 2: 1900, 3: 2200, 4: 2100, 5: 2048, 6: 2000}


def _video(path, color, frames=30, size=(160, 120)) -> str:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, size)
    for k in range(frames):
        img = np.full((size[1], size[0], 3), color, np.uint8)
        img[:, (4 * k) % size[0]] = 255  # a moving line
        writer.write(img)
    writer.release()
    return str(path)


def _hand(leader: BusEmulator, stop: threading.Event) -> threading.Thread:
    def move() -> None:
        t0 = time.monotonic()
        while not stop.is_set():
            t = time.monotonic() - t0
            for i in MIDDLE:
                leader.move_by_hand(i, MIDDLE[i] + 200 * math.sin(2 * math.pi * 0.5 * t + i))
            time.sleep(0.01)

    thread = threading.Thread(target=move, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def pair(tmp_path):
    cams = (CameraConfig("front", _video(tmp_path / "front.avi", (40, 80, 120))),
            CameraConfig("wrist", _video(tmp_path / "wrist.avi", (120, 80, 40))))  # fmt: skip
    with BusEmulator(positions=MIDDLE) as leader_bus, BusEmulator(positions=MIDDLE) as follower_bus:
        calibrate_emulated(leader_bus, "leader", "L", tmp_path)
        calibrate_emulated(follower_bus, "follower", "F", tmp_path)
        leader = SO101Leader(ArmConfig(port=leader_bus.port, id="L", calibration_dir=str(tmp_path)))
        follower = SO101Follower(ArmConfig(port=follower_bus.port, id="F", calibration_dir=str(tmp_path),
                                           watchdog_s=0, cameras=cams))  # fmt: skip
        stop = threading.Event()
        hand = _hand(leader_bus, stop)
        try:
            yield leader, follower, leader_bus, follower_bus
        finally:
            stop.set()
            hand.join()


def test_three_demonstrations_pass_the_doctor_and_load_in_lerobot(pair, tmp_path, lerobot_loads):
    leader, follower, _, follower_bus = pair
    root = tmp_path / "demos"
    cfg = TeleopRecordConfig(task="wave the arm", episodes=3, episode_s=2.0, reset_s=0.2)
    # Attempt 0 is re-recorded after 10 ticks; attempt 1 ends by "next" after 30 ticks; 2 and 3 run out.
    controls = ScriptedControls({(0, 10): "rerecord", (1, 30): "next"})
    with leader, follower:
        res = record_teleop(leader, follower, root, cfg, controls, say=lambda *a: None)
    assert (res.saved, res.rerecorded) == (3, 1)
    assert follower_bus.violations == []
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 3 and info["robot_type"] == "so101_follower"
    assert set(info["features"]) >= {
        "observation.images.front",
        "observation.images.wrist",
        "observation.state",
        "action",
    }
    from embodia.cli import main

    assert main(["doctor", "data", str(root), "--out", str(tmp_path / "doctor")]) == 0
    loaded = lerobot_loads(root)
    assert loaded == {
        "episodes": 3,
        "frames": res.frames,
        "front": [3, 96, 96],
        "task": "wave the arm",
        "success": None,
    }


def test_follower_lost_mid_episode_keeps_the_committed_ones(pair, tmp_path):
    leader, follower, _, follower_bus = pair
    root = tmp_path / "demos"
    cfg = TeleopRecordConfig(task="wave the arm", episodes=3, episode_s=5.0, reset_s=0.0)

    class PullTheCable(ScriptedControls):
        def poll(self):
            if (self.attempt, self.tick) == (1, 10):
                follower_bus.close()  # the follower's port goes away 10 ticks into the second episode
            return super().poll()

    with pytest.raises(BusDisconnected), leader, follower:
        record_teleop(leader, follower, root, cfg, PullTheCable({(0, 30): "next"}), say=lambda *a: None)
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 1
    from embodia.data.reader import LeRobotDataset

    assert LeRobotDataset.open(root).num_episodes == 1
    assert follower.torque_off_attempts >= 1


def test_idle_frames_are_trimmed():
    a = np.zeros((10, 6))
    a[3:7, 0] = np.arange(1, 5) * 0.01
    assert trim_idle(a, 0.002) == (2, 8)
    assert trim_idle(np.zeros((5, 6)), 0.002) == (0, 0)


def test_a_missing_camera_is_named(tmp_path):
    with pytest.raises(CameraError, match="camera 'wrist': could not open"):
        OpenCVCamera(CameraConfig("wrist", str(tmp_path / "none.avi"))).connect()


def test_record_so101_needs_its_arms_and_a_task(capsys):
    from embodia.cli import main

    assert main(["record", "--robot", "so101", "--follower", "sim"]) == 2
    assert "--leader PORT and --task" in capsys.readouterr().out
    assert main(["record", "--robot", "so101", "--follower", "/dev/x", "--leader", "/dev/y", "--task", "t",
                 "--cameras", "front"]) == 2  # fmt: skip
    assert "is not NAME=SOURCE" in capsys.readouterr().out
