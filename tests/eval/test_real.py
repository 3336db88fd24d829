"""`embodia run --robot so101`: the shipped base acting on the emulated follower (OpenCV cameras from
video files) through the chunk executor, at 30 Hz."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embodia.cli import main
from embodia.robots.emulator import BusEmulator, calibrate_emulated

cv2 = pytest.importorskip("cv2", reason="OpenCV comes with the dev extra")
pytest.importorskip("scservo_sdk", reason="feetech-servo-sdk comes with the dev extra")


def _video(path, color) -> str:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (128, 96))
    for k in range(30):
        img = np.full((96, 128, 3), color, np.uint8)
        img[:, (4 * k) % 128] = 255
        writer.write(img)
    writer.release()
    return str(path)


def test_base_acts_on_the_emulated_follower(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cams = (
        f"front={_video(tmp_path / 'f.avi', (40, 80, 120))},wrist={_video(tmp_path / 'w.avi', (120, 80, 40))}"
    )
    with BusEmulator() as bus:
        calibrate_emulated(bus, "follower", "F", tmp_path)
        rc = main(["run", "pick up the red block", "--robot", "so101", "--follower", bus.port, "--follower-id", "F",
                   "--calibration-dir", str(tmp_path), "--cameras", cams, "--seconds", "3"])  # fmt: skip
        assert rc == 0, capsys.readouterr().out
        assert bus.violations == [] and len(bus.goals) >= 80
        assert all(s.get("Torque_Enable") == 0 for s in bus.servos.values())
    (report_path,) = (tmp_path / "embodia_runs" / "run").glob("*-so101/report.json")
    report = json.loads(report_path.read_text())
    assert report["timing"]["ticks"] >= 80 and report["chunks"] >= 5
    assert report["timing"]["ticks_missed"] <= 3  # a tick is 33 ms; a chunk of the base takes a few
    assert "ticks missed" in capsys.readouterr().out


def test_run_on_the_arm_needs_a_follower(capsys):
    assert main(["run", "pick up the red block", "--robot", "so101"]) == 2
    assert "--follower PORT" in capsys.readouterr().out
