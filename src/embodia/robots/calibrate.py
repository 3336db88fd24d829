"""Calibrating an SO-101, follower or leader, by LeRobot 0.4.4's procedure.

1. Torque off (the joints move by hand), position mode.
2. The user puts the arm in the middle of its range of motion; the homing offsets are set so that this
   pose reads 2047 on every servo (Present = Actual - Homing_Offset).
3. The user moves every joint except wrist_roll through its whole range while the positions are
   sampled; each joint's range is the smallest and largest reading. wrist_roll gets the full turn.
4. Homing offsets and ranges are written to the servos (offset, then min and max limits) and saved to
   the calibration file, in LeRobot's format and folder.

`calibrate_arm` takes the two waits as callables, so the same steps run from the terminal
(`embodia calibrate`) and from a test driving the bus emulator.
"""

from __future__ import annotations

import select
import sys
from collections.abc import Callable

from embodia.robots.calibration import MIDDLE, MOTORS, Calibration, CalibrationError, MotorCalibration
from embodia.robots.feetech.bus import FeetechBus
from embodia.robots.feetech.sts3215 import MAX_POSITION

FULL_TURN = ("wrist_roll",)
MIDDLE_PROMPT = "Move the arm to the middle of its range of motion and press ENTER..."
RANGE_PROMPT = (
    "Move all joints except 'wrist_roll' through their entire ranges of motion. Press ENTER to stop..."
)


def calibrate_arm(
    bus: FeetechBus,
    wait_middle: Callable[[], None],
    recording_done: Callable[[dict[str, tuple[int, int, int]]], bool],
) -> Calibration:
    """Run the procedure on a connected bus and write the result to the servos.

    `wait_middle()` returns once the arm is in its middle pose; `recording_done(ranges)` is called after
    every sample with {motor: (min, present, max)} and returns True to stop recording."""
    bus.set_torque(False)
    for name in MOTORS:
        bus.write("Operating_Mode", name, 0)
    wait_middle()
    for name in MOTORS:  # readings in raw ticks first
        bus.write("Homing_Offset", name, 0)
        bus.write("Min_Position_Limit", name, 0)
        bus.write("Max_Position_Limit", name, MAX_POSITION)
    pose = bus.sync_read("Present_Position")
    offsets = {}
    for name, ticks in pose.items():
        offsets[name] = ticks - MIDDLE
        if abs(offsets[name]) > MIDDLE:
            raise CalibrationError(
                f"{name} reads {ticks}, at the very end of its turn: move it off and start again"
            )
        bus.write("Homing_Offset", name, offsets[name])
    moving = [n for n in MOTORS if n not in FULL_TURN]
    start = bus.sync_read("Present_Position", moving)
    low, high = dict(start), dict(start)
    while True:
        now = bus.sync_read("Present_Position", moving)
        for name, ticks in now.items():
            low[name], high[name] = min(low[name], ticks), max(high[name], ticks)
        if recording_done({n: (low[n], now[n], high[n]) for n in moving}):
            break
    still = [n for n in moving if low[n] == high[n]]
    if still:
        raise CalibrationError(
            f"{', '.join(still)} did not move while recording: move every joint through its range"
        )
    calibration = {
        name: MotorCalibration(
            id=motor_id,
            drive_mode=0,
            homing_offset=offsets[name],
            range_min=0 if name in FULL_TURN else low[name],
            range_max=MAX_POSITION if name in FULL_TURN else high[name],
        )  # fmt: skip
        for name, motor_id in MOTORS.items()
    }
    write_calibration(bus, calibration)
    return calibration


def write_calibration(bus: FeetechBus, calibration: Calibration) -> None:
    """Homing offset, then min and max limits, per motor (LeRobot's order)."""
    for name, c in calibration.items():
        bus.write("Homing_Offset", name, c.homing_offset)
        bus.write("Min_Position_Limit", name, c.range_min)
        bus.write("Max_Position_Limit", name, c.range_max)


def terminal_waits(out=sys.stdout, stdin=sys.stdin):
    """The two waits for a person at a terminal: ENTER after the middle pose; a live table of the
    ranges, ENTER to stop (checked without blocking, as LeRobot does)."""

    def wait_middle() -> None:
        out.write(MIDDLE_PROMPT)
        out.flush()
        if not stdin.readline():
            raise CalibrationError("stdin closed before the middle pose was confirmed")
        out.write(RANGE_PROMPT + "\n")
        out.flush()

    def recording_done(ranges: dict[str, tuple[int, int, int]]) -> bool:
        rows = [f"{name:<14} {lo:>5} {now:>5} {hi:>5}" for name, (lo, now, hi) in ranges.items()]
        out.write(
            "\n".join([f"{'motor':<14} {'min':>5} {'now':>5} {'max':>5}", *rows]) + f"\x1b[{len(rows) + 1}A\r"
        )
        out.flush()
        if select.select([stdin], [], [], 0.02)[0]:
            stdin.readline()
            out.write("\n" * (len(rows) + 1))
            return True
        return False

    return wait_middle, recording_done
