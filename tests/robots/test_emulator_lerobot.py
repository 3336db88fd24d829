"""LeRobot's own SO-101 code against embodia's bus emulator: LeRobot 0.4.4's `SO101Follower` (its
`FeetechMotorsBus` and feetech-servo-sdk underneath) connects to the emulator's pseudo-terminal,
calibrates through its own prompts fed on stdin while the test turns the joints by hand, reads, writes
and disconnects. Runs in the LeRobot environment (`embodia lerobot setup`; CI builds it)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

from embodia.robots.emulator import BusEmulator

SESSION = Path(__file__).parents[1] / "in_lerobot_env" / "so101_session.py"
MOTORS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
# Where each shaft sits in the pose the user calls "the middle of the range" (encoder ticks), and the
# hand's sweep around it during recording: deliberately asymmetric, so that the middle of the recorded
# range (LeRobot's degree zero) is not the pose's 2047.
MIDDLE = {1: 2200, 2: 1900, 3: 2150, 4: 2000, 5: 2048, 6: 1800}
SWEEP = {1: (-900, 600), 2: (-500, 1100), 3: (-1000, 700), 4: (-800, 800), 6: (-20, 1500)}


class Console:
    """The subprocess's stdout, read in the background, so the test can wait for a prompt (input()
    prints its prompt without a newline). LeRobot redraws its range table as fast as it reads the bus, so
    the output runs to megabytes: each chunk is appended once and searched only with a short overlap;
    re-joining or re-searching all of it per chunk would hold the GIL that the emulator's thread, in this
    process, needs to answer the bus within LeRobot's 50 ms."""

    OVERLAP = 256  # longer than any needle

    def __init__(self, proc: subprocess.Popen):
        self.proc, self._cond = proc, threading.Condition()
        self._chunks: list[str] = []
        self._watch: set[str] = set()
        self._found: set[str] = set()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        last = ""
        while chunk := os.read(self.proc.stdout.fileno(), 65536):
            text = chunk.decode(errors="replace")
            window, last = last + text, (last + text)[-self.OVERLAP :]
            with self._cond:
                self._chunks.append(text)
                self._found.update(n for n in self._watch if n in window)
                self._cond.notify_all()

    @property
    def text(self) -> str:
        with self._cond:
            return "".join(self._chunks)

    def wait_for(self, needle: str, timeout: float = 60) -> None:
        with self._cond:
            self._watch.add(needle)
            if needle in "".join(self._chunks):  # printed before anyone waited for it
                self._found.add(needle)
            ok = self._cond.wait_for(lambda: needle in self._found or self.proc.poll() is not None, timeout)
            ok = ok and needle in self._found
        assert ok, f"never saw {needle!r}; output so far:\n{self.text[-3000:]}"

    def send(self, line: str) -> None:
        self.proc.stdin.write(line.encode())
        self.proc.stdin.flush()


def _sweep(bus: BusEmulator) -> None:
    for servo_id, (down, up) in SWEEP.items():
        for ticks in (MIDDLE[servo_id] + down, MIDDLE[servo_id] + up, MIDDLE[servo_id]):
            bus.move_by_hand(servo_id, ticks)
            time.sleep(0.15)  # LeRobot's recording loop sync-reads as fast as it can


def lerobot_calibrates(
    lerobot_python, bus: BusEmulator, cal_dir: Path, robot_id: str, goals: dict
) -> Console:
    """Run LeRobot's SO101Follower session with no calibration file: answer its two prompts, turning the
    joints by hand while it records; return its console once it has disconnected."""
    proc = subprocess.Popen(
        [str(lerobot_python), "-I", str(SESSION), bus.port, str(cal_dir), robot_id, json.dumps(goals)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    console = Console(proc)
    try:
        console.wait_for("middle of its range of motion and press ENTER")
        console.send("\n")
        console.wait_for("Recording positions. Press ENTER to stop")
        _sweep(bus)
        console.send("\n")
        console.wait_for('{"disconnected": true}')
        assert proc.wait(timeout=30) == 0, console.text[-3000:]
    finally:
        proc.kill()
    return console


def test_lerobot_so101_follower_calibrates_reads_and_writes_on_the_emulator(lerobot_python, tmp_path):
    goals = {"shoulder_pan": 30.0, "elbow_flex": -20.0, "gripper": 40.0}
    with BusEmulator(positions=MIDDLE) as bus:
        console = lerobot_calibrates(lerobot_python, bus, tmp_path / "cal", "arm0", goals)
        torque_after = {i: s.get("Torque_Enable") for i, s in bus.servos.items()}
        registers = {i: {n: s.get(n) for n in ("Homing_Offset", "Min_Position_Limit", "Max_Position_Limit",
                                                "P_Coefficient", "I_Coefficient", "D_Coefficient")}
                     for i, s in bus.servos.items()}  # fmt: skip
        gripper = bus.servos[6]
        assert (
            gripper.get("Max_Torque_Limit"),
            gripper.get("Protection_Current"),
            gripper.get("Overload_Torque"),
        ) == (500, 250, 25)
        violations, goals_seen = list(bus.violations), list(bus.goals)

    calibration = json.loads((tmp_path / "cal" / "arm0.json").read_text())
    assert list(calibration) == list(MOTORS)
    for k, name in enumerate(MOTORS, start=1):
        entry = calibration[name]
        assert entry["id"] == k and entry["drive_mode"] == 0
        assert entry["homing_offset"] == MIDDLE[k] - 2047  # the middle pose reads 2047 after homing
        if k == 5:  # wrist_roll: the full turn, whatever was recorded
            assert (entry["range_min"], entry["range_max"]) == (0, 4095)
        else:
            assert (entry["range_min"], entry["range_max"]) == (2047 + SWEEP[k][0], 2047 + SWEEP[k][1])
        # What LeRobot wrote into the servo is what it saved, and the gains of its configure().
        assert registers[k]["Homing_Offset"] == entry["homing_offset"]
        assert (registers[k]["Min_Position_Limit"], registers[k]["Max_Position_Limit"]) == (
            entry["range_min"],
            entry["range_max"],
        )
        assert (
            registers[k]["P_Coefficient"],
            registers[k]["I_Coefficient"],
            registers[k]["D_Coefficient"],
        ) == (16, 0, 32)

    lines = [json.loads(line) for line in console.text.splitlines() if line.startswith("{")]
    first, sent, last = lines[0]["observation"], lines[1]["sent"], lines[2]["observation"]
    # At the middle pose, LeRobot's degrees are those of 2047 against the middle of the recorded range.
    for k, name in enumerate(MOTORS[:4], start=1):
        lo, hi = 2047 + SWEEP[k][0], 2047 + SWEEP[k][1]
        assert abs(first[f"{name}.pos"] - (2047 - (lo + hi) / 2) * 360 / 4095) < 1e-6
    lo, hi = 2047 + SWEEP[6][0], 2047 + SWEEP[6][1]
    assert abs(first["gripper.pos"] - (2047 - lo) / (hi - lo) * 100) < 1e-6
    # The action landed: the goal ticks LeRobot computed, the shafts moved, the reading matches.
    assert sent == {f"{k}.pos": v for k, v in goals.items()}
    pan_lo, pan_hi = 2047 + SWEEP[1][0], 2047 + SWEEP[1][1]
    assert (1, int(30.0 * 4095 / 360 + (pan_lo + pan_hi) / 2)) in goals_seen
    for name, value in goals.items():
        assert abs(last[f"{name}.pos"] - value) < 0.2, (name, last[f"{name}.pos"])
    assert violations == []
    assert set(torque_after.values()) == {0}  # disconnect turned torque off on every servo


def test_calibration_files_cross_between_lerobot_and_embodia(lerobot_python, tmp_path):
    """A file LeRobot wrote drives embodia's driver, and one embodia wrote drives LeRobot's, with the same
    readings in LeRobot's units."""
    from embodia.robots.calibrate import calibrate_arm
    from embodia.robots.calibration import MOTORS, calibration_path, save_calibration
    from embodia.robots.feetech.bus import FeetechBus
    from embodia.robots.so101 import to_lerobot_units
    from embodia.robots.so101_arm import ArmConfig, SO101Follower

    with BusEmulator(positions=MIDDLE) as bus:
        # embodia calibrates and writes the file; LeRobot connects with it: no prompt, same readings.
        fb = FeetechBus(bus.port, MOTORS)
        fb.connect()
        moves = [(i, MIDDLE[i] + d) for i, (lo, hi) in SWEEP.items() for d in (lo, hi, 0)]
        calibration = calibrate_arm(
            fb, lambda: None, lambda ranges: not moves or bus.move_by_hand(*moves.pop(0))
        )
        fb.close()
        save_calibration(calibration_path("follower", "arm1", tmp_path), calibration)
        with SO101Follower(
            ArmConfig(port=bus.port, id="arm1", calibration_dir=str(tmp_path), watchdog_s=0)
        ) as arm:
            ours = to_lerobot_units(arm.get_observation()["observation.state"])
        out = subprocess.run(
            [str(lerobot_python), "-I", str(SESSION), bus.port, str(tmp_path), "arm1", json.dumps({"gripper": 70.0})],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
        theirs = lines[0]["observation"]
        for k, name in enumerate(MOTORS):
            assert abs(theirs[f"{name}.pos"] - ours[k]) < 1e-3, (name, theirs[f"{name}.pos"], ours[k])
        after_lerobot = lines[2]["observation"]
        # ...and LeRobot's file (the same folder, rewritten by nobody) drives embodia's driver again.
        with SO101Follower(
            ArmConfig(port=bus.port, id="arm1", calibration_dir=str(tmp_path), watchdog_s=0)
        ) as arm:
            again = to_lerobot_units(arm.get_observation()["observation.state"])
        assert (
            abs(after_lerobot["gripper.pos"] - 70.0) < 0.2
            and abs(again[5] - after_lerobot["gripper.pos"]) < 0.2
        )


def test_embodia_reads_a_file_lerobot_wrote(lerobot_python, tmp_path):
    from embodia.robots.calibration import load_calibration
    from embodia.robots.so101 import to_lerobot_units
    from embodia.robots.so101_arm import ArmConfig, SO101Follower

    with BusEmulator(positions=MIDDLE) as bus:
        console = lerobot_calibrates(lerobot_python, bus, tmp_path, "arm2", {"elbow_flex": 15.0})
        last = [json.loads(line) for line in console.text.splitlines() if line.startswith("{")][2][
            "observation"
        ]
        assert set(load_calibration(tmp_path / "arm2.json")) == set(MOTORS)
        with SO101Follower(
            ArmConfig(port=bus.port, id="arm2", calibration_dir=str(tmp_path), watchdog_s=0)
        ) as arm:
            ours = to_lerobot_units(arm.get_observation()["observation.state"])
    for k, name in enumerate(MOTORS):
        assert abs(ours[k] - last[f"{name}.pos"]) < 0.1, (name, ours[k], last[f"{name}.pos"])
