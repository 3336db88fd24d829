"""`embodia calibrate` at a terminal (its prompts fed on stdin), on the bus emulator."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from embodia.robots.calibration import load_calibration
from embodia.robots.emulator import BusEmulator

MIDDLE = {1: 2100, 2: 2000, 3: 1950, 4: 2047, 5: 2300, 6: 1700}


def _run_cli(args, feed):
    """Run `embodia ARGS`; `feed(text_so_far, stdin)` answers the prompts. Returns (rc, output)."""
    proc = subprocess.Popen([sys.executable, "-m", "embodia.cli", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    out = []
    reader = threading.Thread(
        target=lambda: out.extend(iter(lambda: os.read(proc.stdout.fileno(), 4096).decode(), ""))
    )
    reader.start()
    try:
        feed(lambda: "".join(out), proc.stdin)
        rc = proc.wait(timeout=60)
    finally:
        proc.kill()
        reader.join(timeout=5)
    return rc, "".join(out)


def _wait(text, needle, timeout=30):
    deadline = time.monotonic() + timeout
    while needle not in text():
        assert time.monotonic() < deadline, f"never saw {needle!r}:\n{text()[-2000:]}"
        time.sleep(0.02)


def test_calibrate_at_the_terminal_then_write_only(tmp_path):
    with BusEmulator(positions=MIDDLE) as bus:

        def feed(text, stdin):
            _wait(text, "middle of its range of motion")
            stdin.write(b"\n")
            stdin.flush()
            _wait(text, "Press ENTER to stop")
            for servo_id in (1, 2, 3, 4, 6):
                for delta in (-600, 400, 0):
                    bus.move_by_hand(servo_id, MIDDLE[servo_id] + delta)
                    time.sleep(0.1)
            stdin.write(b"\n")
            stdin.flush()

        args = ["calibrate", "--port", bus.port, "--id", "arm", "--calibration-dir", str(tmp_path)]
        rc, out = _run_cli(args, feed)
        assert rc == 0, out
        assert "calibration saved to" in out
        cal = load_calibration(tmp_path / "arm.json")
        assert cal["elbow_flex"].homing_offset == 1950 - 2047
        assert (cal["elbow_flex"].range_min, cal["elbow_flex"].range_max) == (2047 - 600, 2047 + 400)
        assert (cal["wrist_roll"].range_min, cal["wrist_roll"].range_max) == (0, 4095)
        assert all(s.get("Torque_Enable") == 0 for s in bus.servos.values())

        bus.power_cycle()  # the calibration was written with Lock 0 (torque off): it is kept
        assert bus.servos[3].get("Homing_Offset") == 1950 - 2047
        bus.servos[3].mem[31:33] = (0).to_bytes(2, "little")  # lost: write the file back
        rc, out = _run_cli([*args, "--write-only"], lambda text, stdin: None)
        assert rc == 0, out
        assert bus.servos[3].get("Homing_Offset") == 1950 - 2047


def test_calibrate_errors_are_clear(tmp_path):
    rc, out = _run_cli(["calibrate", "--port", str(tmp_path / "ttyNONE"), "--calibration-dir", str(tmp_path)],
                       lambda text, stdin: stdin.close())  # fmt: skip
    assert rc == 1 and "could not open" in out and "Traceback" not in out
    rc, out = _run_cli(["calibrate", "--port", "x", "--write-only", "--calibration-dir", str(tmp_path)],
                       lambda text, stdin: None)  # fmt: skip
    assert rc == 2 and "no calibration file" in out and "Traceback" not in out
