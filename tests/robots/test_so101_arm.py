"""embodia's SO-101 driver on the bus emulator: calibration, units, safety, the watchdog and the exits."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import numpy as np
import pytest

from embodia.robots.calibrate import calibrate_arm
from embodia.robots.calibration import (
    MOTORS,
    CalibrationError,
    calibration_path,
    load_calibration,
    save_calibration,
    to_lerobot,
)
from embodia.robots.emulator import BusEmulator
from embodia.robots.feetech.bus import BusDisconnected, BusError, FeetechBus
from embodia.robots.so101 import to_lerobot_units
from embodia.robots.so101_arm import ArmConfig, SO101Follower

pytest.importorskip("scservo_sdk", reason="feetech-servo-sdk comes with the dev extra")

# The middle pose's shaft positions and an asymmetric sweep around it (see test_emulator_lerobot.py).
MIDDLE = {1: 2200, 2: 1900, 3: 2150, 4: 2000, 5: 2048, 6: 1800}
SWEEP = {1: (-900, 600), 2: (-500, 1100), 3: (-1000, 700), 4: (-800, 800), 6: (-20, 1500)}
IDS = {v: k for k, v in MOTORS.items()}


def sweep_by_hand(bus: BusEmulator):
    """A `recording_done` that turns each joint to both ends of its sweep, then stops."""
    moves = [(i, MIDDLE[i] + d) for i, (lo, hi) in SWEEP.items() for d in (lo, hi, 0)]

    def recording_done(ranges) -> bool:
        if not moves:
            return True
        bus.move_by_hand(*moves.pop(0))
        return False

    return recording_done


def calibrated(bus: BusEmulator, folder) -> None:
    fb = FeetechBus(bus.port, MOTORS)
    fb.connect()
    try:
        cal = calibrate_arm(fb, lambda: None, sweep_by_hand(bus))
    finally:
        fb.close()
    save_calibration(calibration_path("follower", "arm0", folder), cal)


@pytest.fixture
def arm_bus(tmp_path):
    with BusEmulator(positions=MIDDLE) as bus:
        calibrated(bus, tmp_path)
        yield bus, ArmConfig(port=bus.port, id="arm0", calibration_dir=str(tmp_path), watchdog_s=0)


def test_calibration_follows_lerobots_procedure(arm_bus, tmp_path):
    bus, _ = arm_bus
    cal = load_calibration(tmp_path / "arm0.json")
    for name, c in cal.items():
        assert c.homing_offset == MIDDLE[c.id] - 2047
        expected = (0, 4095) if name == "wrist_roll" else (2047 + SWEEP[c.id][0], 2047 + SWEEP[c.id][1])
        assert (c.range_min, c.range_max) == expected
        servo = bus.servos[c.id]
        assert (servo.get("Homing_Offset"), servo.get("Min_Position_Limit"), servo.get("Max_Position_Limit")) == (
            c.homing_offset, c.range_min, c.range_max)  # fmt: skip
    assert json.loads((tmp_path / "arm0.json").read_text())["gripper"] == {
        "id": 6, "drive_mode": 0, "homing_offset": 1800 - 2047, "range_min": 2027, "range_max": 3547}  # fmt: skip


def test_a_joint_that_never_moved_is_refused(tmp_path):
    with BusEmulator(positions=MIDDLE) as bus:
        fb = FeetechBus(bus.port, MOTORS)
        fb.connect()
        with pytest.raises(CalibrationError, match="did not move"):
            calibrate_arm(fb, lambda: None, lambda ranges: True)
        fb.close()


def test_observation_is_lerobots_reading_in_radians(arm_bus, tmp_path):
    bus, cfg = arm_bus
    cal = load_calibration(tmp_path / "arm0.json")
    with SO101Follower(cfg) as arm:
        state = arm.get_observation()["observation.state"]
        ticks = {IDS[i]: s.present() for i, s in bus.servos.items()}
    np.testing.assert_allclose(to_lerobot_units(state), to_lerobot(ticks, cal), atol=1e-4)
    # The middle pose is not the recorded range's middle: LeRobot's zero, and so embodia's, is off it.
    assert abs(state[0] - (2047 - (2047 + (SWEEP[1][0] + SWEEP[1][1]) / 2)) * 2 * np.pi / 4095) < 1e-5


def test_commanded_pose_lands_and_bad_actions_never_reach_a_motor(arm_bus):
    bus, cfg = arm_bus
    with SO101Follower(cfg) as arm:
        start = arm.get_observation()["observation.state"].astype(np.float64)
        target = start + np.array([0.2, -0.15, 0.1, 0.2, 0.3, 0.2])
        for _ in range(40):
            arm.send_action(target)
            arm.advance()
        np.testing.assert_allclose(arm.get_observation()["observation.state"], target, atol=3e-3)
        sent = len(bus.goals)
        for bad in ([np.nan] * 6, [0.0, 0.0, np.inf, 0.0, 0.0, 0.0], [0.0] * 5, "left"):
            with pytest.raises(ValueError):
                arm.send_action(bad)
        assert len(bus.goals) == sent  # nothing reached the bus
        arm.send_action(np.array([9.0, -9.0, 9.0, -9.0, 9.0, 9.0]))  # far out: clamped, rate-limited
        step = arm.safety.last_report
        assert step.clamped_to_bounds and step.rate_limited
        for _ in range(60):
            arm.send_action(np.array([9.0, -9.0, 9.0, -9.0, 9.0, 9.0]))
    assert bus.violations == []  # every goal inside each servo's calibrated limits
    assert all(s.get("Torque_Enable") == 0 for s in bus.servos.values())


def test_a_joint_pushed_past_its_range_is_held_at_its_end(arm_bus, tmp_path):
    bus, cfg = arm_bus
    c = load_calibration(tmp_path / "arm0.json")["elbow_flex"]
    bus.move_by_hand(3, c.range_max + 80 + (MIDDLE[3] - 2047))  # 80 ticks past the recorded range
    with SO101Follower(replace(cfg, watchdog_s=0.1)) as arm:
        time.sleep(0.3)  # the watchdog holds too
        assert arm.watchdog_holds >= 1
    assert bus.violations == []  # neither the hold on connect nor the watchdog's went outside the range
    assert (3, c.range_max) in bus.goals


def test_calibration_in_the_servos_must_match_the_file(arm_bus, tmp_path):
    bus, cfg = arm_bus
    bus.servos[3].mem[31:33] = (5).to_bytes(2, "little")  # someone recalibrated elbow_flex elsewhere
    with pytest.raises(CalibrationError, match="elbow_flex: servo"):
        SO101Follower(cfg).connect()
    assert all(s.get("Torque_Enable") == 0 for s in bus.servos.values())


def test_watchdog_holds_position_when_actions_stop(arm_bus):
    bus, cfg = arm_bus
    with SO101Follower(replace(cfg, watchdog_s=0.2)) as arm:
        start = arm.get_observation()["observation.state"].astype(np.float64)
        bus.servos[1].speed = 100.0  # a slow joint: the move takes 1.6 s
        goal_ticks = bus.servos[1].actual + 0.25 * 4095 / (2 * np.pi)
        arm.send_action(start + np.array([0.25, 0, 0, 0, 0, 0]))  # a move, then silence
        time.sleep(0.6)
        assert arm.watchdog_holds >= 1
        held = bus.actual(1)
        time.sleep(0.4)
        assert abs(bus.actual(1) - held) < 1  # it stopped where it was...
        assert goal_ticks - held > 100  # ...well short of the last goal


def test_ctrl_c_moves_to_rest_then_torque_off(arm_bus):
    bus, cfg = arm_bus
    with pytest.raises(KeyboardInterrupt), SO101Follower(cfg) as arm:
        arm.send_action(arm.get_observation()["observation.state"])
        raise KeyboardInterrupt
    assert all(s.get("Torque_Enable") == 0 for s in bus.servos.values())
    assert arm.torque_is_off
    rest = np.array(cfg.rest_pose)
    with SO101Follower(cfg) as arm:  # reconnect and look where it stopped
        np.testing.assert_allclose(arm.get_observation()["observation.state"][:5], rest[:5], atol=0.05)
    assert bus.violations == []


def test_corrupted_replies_are_retried_then_named(arm_bus):
    bus, cfg = arm_bus
    with SO101Follower(cfg) as arm:
        bus.corrupt_replies(2)
        arm.get_observation()  # two bad answers, the third is good
        bus.corrupt_replies(100)
        with pytest.raises(BusError, match="sync read of Present_Position failed 3 times"):
            arm.get_observation()
        bus.corrupt_replies(0)
        bus.unplug(4)
        with pytest.raises(BusError, match=r"wrist_flex \(id 4\)"):
            arm.get_observation()
        bus.plug(4)


def test_link_lost_mid_motion_stops_cleanly(arm_bus):
    bus, cfg = arm_bus
    arm = SO101Follower(cfg)
    with pytest.raises(BusDisconnected), arm:
        start = arm.get_observation()["observation.state"].astype(np.float64)
        arm.send_action(start + 0.2)
        bus.close()  # the cable is pulled
        arm.send_action(start + 0.2)
    assert arm.torque_off_attempts == 2  # on the open link, then once more on a reopened port
    assert not arm.torque_is_off and not arm.bus.connected  # the port is gone: nothing more to do


def test_missing_motor_and_wrong_port_are_clear(tmp_path):
    with (
        BusEmulator(ids=(1, 2, 3, 4, 5)) as bus,
        pytest.raises(BusError, match=r"no answer from gripper \(id 6\)"),
    ):
        FeetechBus(bus.port, MOTORS).connect()
    with pytest.raises(BusDisconnected, match="could not open"):
        FeetechBus(str(tmp_path / "ttyNONE"), MOTORS).connect()


def test_leader_reads_by_hand_and_drives_a_follower(tmp_path):
    from embodia.robots.so101_arm import SO101Leader

    with BusEmulator(positions=MIDDLE) as leader_bus, BusEmulator(positions=MIDDLE) as follower_bus:
        for bus, role in ((leader_bus, "leader"), (follower_bus, "follower")):
            fb = FeetechBus(bus.port, MOTORS)
            fb.connect()
            cal = calibrate_arm(fb, lambda: None, sweep_by_hand(bus))
            fb.close()
            save_calibration(calibration_path(role, "pair", tmp_path / role), cal)
        leader_cfg = ArmConfig(port=leader_bus.port, id="pair", calibration_dir=str(tmp_path / "leader"))
        follower_cfg = ArmConfig(
            port=follower_bus.port, id="pair", calibration_dir=str(tmp_path / "follower"), watchdog_s=0
        )
        with SO101Leader(leader_cfg) as leader, SO101Follower(follower_cfg) as follower:
            assert all(s.get("Torque_Enable") == 0 for s in leader_bus.servos.values())
            leader_bus.move_by_hand(3, MIDDLE[3] + 150)  # the person bends the leader's elbow
            for _ in range(30):
                follower.send_action(leader.get_action())
                follower.advance()
            np.testing.assert_allclose(
                follower.get_observation()["observation.state"], leader.get_action(), atol=3e-3
            )
        assert follower_bus.violations == []
