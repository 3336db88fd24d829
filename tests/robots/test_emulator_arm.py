"""Units end to end on the MuJoCo-backed emulator: calibrate an arm whose horns were fitted off-centre
from an off-centre middle pose (so the recorded ranges are asymmetric about 2047), then command poses in
embodia's radians: each must land where the simulated arm says, and read back as such."""

from __future__ import annotations

import numpy as np
import pytest

from embodia.robots.calibrate import calibrate_arm
from embodia.robots.calibration import MOTORS, calibration_path, save_calibration
from embodia.robots.emulator import BusEmulator
from embodia.robots.emulator_arm import TICKS_PER_RAD, SimulatedArm
from embodia.robots.feetech.bus import FeetechBus
from embodia.robots.so101_arm import ArmConfig, SO101Follower
from embodia.robots.spec import SO101

pytest.importorskip("scservo_sdk", reason="feetech-servo-sdk comes with the dev extra")

MOUNT = {1: 2300, 2: 1850, 3: 2200, 4: 1900, 5: 2150, 6: 1700}  # shaft ticks at the model's zero
# The pose the user calls "the middle": off the model's zero by this much (rad), except wrist_roll, whose
# zero is by LeRobot's convention the middle pose itself (its range is fixed to the full turn).
OFF_MIDDLE = {1: 0.35, 2: -0.5, 3: 0.3, 4: -0.25, 5: 0.0, 6: 0.4}


def test_commanded_radians_land_where_the_simulated_arm_says(tmp_path):
    arm_model = SimulatedArm(mount=MOUNT)
    middle = {i: MOUNT[i] + OFF_MIDDLE[i] * TICKS_PER_RAD for i in MOUNT}
    with BusEmulator(positions=middle, arm=arm_model) as bus:
        fb = FeetechBus(bus.port, MOTORS)
        fb.connect()
        # Each joint to both hard stops (the hand pushes past them; the stops hold), then back.
        moves = [(i, middle[i] + d) for i in (1, 2, 3, 4, 6) for d in (-4000, 4000, 0)]
        calibration = calibrate_arm(
            fb, lambda: None, lambda ranges: not moves or bus.move_by_hand(*moves.pop(0))
        )
        fb.close()
        for name in ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex"):
            c = calibration[name]
            assert abs((c.range_min + c.range_max) / 2 - 2047) > 100  # asymmetric about the middle pose
        save_calibration(calibration_path("follower", "sim", tmp_path), calibration)

        rng = np.random.default_rng(0)
        low, high = np.array(SO101.action_low), np.array(SO101.action_high)
        margin = 0.1 * (high - low)
        errors, readback = [], []
        with SO101Follower(
            ArmConfig(port=bus.port, id="sim", calibration_dir=str(tmp_path), watchdog_s=0)
        ) as arm:
            for _ in range(4):
                target = rng.uniform(low + margin, high - margin)
                for _ in range(75):  # 2.5 s at 30 Hz: rate-limited on the way, then settled
                    arm.send_action(target)
                    arm.advance()
                angles = np.array([arm_model.angle(i) for i in range(1, 7)])
                errors.append(np.abs(angles - target))
                readback.append(np.abs(arm.get_observation()["observation.state"] - angles))
        assert bus.violations == []
    errors, readback = np.array(errors), np.array(readback)
    print("max |simulated - commanded| per joint (rad):", errors.max(axis=0).round(4).tolist())
    print("max |reading - simulated| per joint (rad):", readback.max(axis=0).round(4).tolist())
    assert errors.max() < 0.01  # a few encoder ticks (1 tick = 1.5 mrad) and the servo's steady error
    assert readback.max() < 0.005
