"""The real SO-101 follower arm behind embodia's `Robot` contract, on its Feetech bus.

    with SO101Follower(ArmConfig(port="/dev/ttyACM0", id="my_arm")) as arm:
        obs = arm.get_observation()["observation.state"]      # radians, embodia's units
        arm.send_action(target)                                  # through the safety layer
        arm.advance()                                            # wait for the next 1/30 s tick

On connect it reads the arm's calibration where LeRobot keeps it (`embodia.robots.calibration`) and
checks that the one stored in the servos (homing offset, position limits) matches the file, configures
the servos as LeRobot does (P 16, I 0, D 32, acceleration 254; the gripper's torque 500, protection
current 250, overload torque 25), and turns torque on holding the present pose.

Every action goes through `SafetyLayer` (finite, the right shape, the model's joint limits, at most
`max_step` per tick; the default is the embodiment's) and then into the calibrated range of each servo,
so nothing non-finite or out of range reaches a motor. A watchdog holds the arm where it is when no
action arrives for `watchdog_s`. On leaving the `with` block by an exception or Ctrl-C, the arm moves
slowly to its rest pose and then torque goes off; on any exit torque goes off; when the link is lost,
the port is reopened once to turn torque off.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from embodia.robots.calibration import (
    MOTORS,
    Calibration,
    CalibrationError,
    calibration_path,
    from_lerobot,
    load_calibration,
    to_lerobot,
)
from embodia.robots.camera import CameraConfig, OpenCVCamera
from embodia.robots.feetech.bus import BusDisconnected, BusError, FeetechBus
from embodia.robots.rate import Rate
from embodia.robots.safety import SafetyLayer
from embodia.robots.so101 import HOME_QPOS, from_lerobot_units, to_lerobot_units
from embodia.robots.spec import SO101

# LeRobot 0.4.4's SOFollower.configure(), so an arm behaves the same under either.
SERVO_SETTINGS = {"Return_Delay_Time": 0, "Maximum_Acceleration": 254, "Acceleration": 254, "Operating_Mode": 0,
                  "P_Coefficient": 16, "I_Coefficient": 0, "D_Coefficient": 32}  # fmt: skip
GRIPPER_SETTINGS = {"Max_Torque_Limit": 500, "Protection_Current": 250, "Overload_Torque": 25}


@dataclass(frozen=True)
class ArmConfig:
    port: str
    id: str = "so101"
    calibration_dir: str | None = None  # default: LeRobot's calibration folder
    max_step: tuple[float, ...] | None = None  # rad per tick; default: the embodiment's max_action_change
    watchdog_s: float = 0.5  # hold position when no action arrives for this long (0: off)
    rest_pose: tuple[float, ...] = tuple(HOME_QPOS)
    rest_speed: float = 0.6  # rad/s on the way to the rest pose
    fps: float = field(default=float(SO101.fps))
    cameras: tuple[CameraConfig, ...] = ()  # each named with embodia's camera name (front, wrist)

    def __post_init__(self) -> None:
        if len(self.rest_pose) != 6 or not np.isfinite(self.rest_pose).all():
            raise ValueError(f"rest_pose needs 6 finite joint values, got {self.rest_pose}")
        if self.max_step is not None and (len(self.max_step) != 6 or min(self.max_step) <= 0):
            raise ValueError(f"max_step needs 6 positive values (rad per tick), got {self.max_step}")
        if self.watchdog_s < 0 or self.rest_speed <= 0 or self.fps <= 0:
            raise ValueError("watchdog_s >= 0, rest_speed > 0 and fps > 0 are required")
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"camera names must be distinct: {names}")


def _bus_and_file(cfg: ArmConfig, role: str) -> tuple[FeetechBus, Path]:
    folder = None if cfg.calibration_dir is None else Path(cfg.calibration_dir)
    return FeetechBus(cfg.port, MOTORS), calibration_path(role, cfg.id, folder)


def check_stored_calibration(bus: FeetechBus, calibration: Calibration, path: Path) -> None:
    """What the servos hold must be what the file says: homing offset and position limits."""
    differ = []
    for name, c in calibration.items():
        stored = (bus.read("Homing_Offset", name), bus.read("Min_Position_Limit", name),
                  bus.read("Max_Position_Limit", name))  # fmt: skip
        if stored != (c.homing_offset, c.range_min, c.range_max):
            differ.append(f"{name}: servo {stored}, file {(c.homing_offset, c.range_min, c.range_max)}")
    if differ:
        raise CalibrationError(
            f"the calibration in the servos does not match {path} (homing offset, min, max): "
            + "; ".join(differ)
            + ". Recalibrate (embodia calibrate), or write the file's values to the servos "
            "(embodia calibrate --write-only)"
        )


class SO101Follower:
    spec = SO101

    def __init__(self, cfg: ArmConfig):
        self.cfg = cfg
        self.bus, self.calibration_file = _bus_and_file(cfg, "follower")
        self.calibration: Calibration | None = None
        self.cameras = [OpenCVCamera(c) for c in cfg.cameras]
        self.safety = SafetyLayer(self._spec_with_step())
        self._lock = threading.RLock()
        self._last_action = time.monotonic()
        self.rate = Rate(cfg.fps)  # advance() waits on it: the arm keeps its own time
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        self.watchdog_holds = 0
        self.torque_off_attempts = 0  # for the record: every exit path tries, even with the link gone
        self.torque_is_off = False

    def _spec_with_step(self):
        return (
            self.spec
            if self.cfg.max_step is None
            else replace(self.spec, max_action_change=self.cfg.max_step)
        )

    # -- Robot ------------------------------------------------------------------------------------

    def connect(self) -> None:
        self.calibration = load_calibration(self.calibration_file)
        try:
            for camera in self.cameras:  # a missing camera fails before the motors are touched
                camera.connect()
            self.bus.connect()
        except BaseException:
            self._close_cameras()
            raise
        try:
            check_stored_calibration(self.bus, self.calibration, self.calibration_file)
            self._configure()
            present = self._present_ticks()
            self.bus.sync_write("Goal_Position", self._hold(present))  # hold where it is when torque comes on
            self.bus.set_torque(True)
            self.safety.reset(self._radians(present))
        except BaseException:
            self._torque_off()
            self.bus.close()
            self._close_cameras()
            raise
        self._last_action = time.monotonic()
        self.rate.restart()
        if self.cfg.watchdog_s > 0:
            self._stop.clear()
            self._watchdog = threading.Thread(target=self._watch, name="so101-watchdog", daemon=True)
            self._watchdog.start()

    def get_observation(self) -> dict:
        with self._lock:
            state = self._radians(self._present_ticks())
        obs = {f"observation.images.{c.cfg.name}": c.latest() for c in self.cameras}
        return obs | {"observation.state": state.astype(np.float32)}

    def send_action(self, action) -> np.ndarray:
        with self._lock:
            safe = self.safety(action)  # ValueError on NaN/inf or a wrong shape: nothing is sent
            goals = from_lerobot(to_lerobot_units(safe), self.calibration)
            self.bus.sync_write("Goal_Position", goals)
            self._last_action = time.monotonic()
        return safe

    def advance(self) -> None:
        """Wait for the next 1/fps tick (a late tick is counted, not caught up: `rate.stats()`)."""
        self.rate.wait()

    def disconnect(self) -> None:
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=2)
            self._watchdog = None
        self._torque_off()
        self.bus.close()
        self._close_cameras()

    def _close_cameras(self) -> None:
        for camera in self.cameras:
            camera.disconnect()

    # -- safe exits -------------------------------------------------------------------------------

    def go_to_rest(self) -> None:
        """Move slowly (rest_speed) from where the arm is to the rest pose, one tick at a time."""
        start = self.get_observation()["observation.state"].astype(np.float64)
        rest = np.asarray(self.cfg.rest_pose, dtype=np.float64)
        steps = max(1, int(np.ceil(np.max(np.abs(rest - start)) / self.cfg.rest_speed * self.cfg.fps)))
        self.safety.reset(start)
        for k in range(1, steps + 1):
            self.send_action(start + (rest - start) * k / steps)
            self.advance()

    def __enter__(self) -> SO101Follower:
        self.connect()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None and not issubclass(exc_type, BusDisconnected):
                with contextlib.suppress(BusError, ValueError):  # torque off below is what matters now
                    self.go_to_rest()
        finally:
            self.disconnect()

    # -- internals --------------------------------------------------------------------------------

    def _present_ticks(self) -> dict[str, int]:
        return self.bus.sync_read("Present_Position")

    def _hold(self, present: dict[str, int]) -> dict[str, int]:
        """Goals that hold the present pose, inside each servo's calibrated range (a joint pushed past it
        by hand is brought back to its end, never commanded outside)."""
        return {
            n: min(self.calibration[n].range_max, max(self.calibration[n].range_min, t))
            for n, t in present.items()
        }

    def _radians(self, ticks: dict[str, int]) -> np.ndarray:
        return from_lerobot_units(to_lerobot(ticks, self.calibration))

    def _configure(self) -> None:
        self.bus.set_torque(False)
        for name in MOTORS:
            for register, value in SERVO_SETTINGS.items():
                self.bus.write(register, name, value)
        for register, value in GRIPPER_SETTINGS.items():
            self.bus.write(register, "gripper", value)

    def _watch(self) -> None:
        while not self._stop.wait(min(0.05, self.cfg.watchdog_s / 4)):
            if time.monotonic() - self._last_action < self.cfg.watchdog_s:
                continue
            try:
                with self._lock:
                    present = self._present_ticks()
                    self.bus.sync_write("Goal_Position", self._hold(present))  # hold here
                    self.safety.reset(self._radians(present))
                    self._last_action = time.monotonic()
                    self.watchdog_holds += 1
            except BusError:
                return

    def _torque_off(self) -> None:
        """Torque off on every motor; when the link is gone, reopen the port once and try again."""
        self.torque_is_off = False
        for attempt in range(2):
            self.torque_off_attempts += 1
            try:
                if not self.bus.connected:
                    if attempt == 0:
                        self.bus.connect(check=False)
                    else:
                        return
                for name in MOTORS:
                    self.bus.write("Torque_Enable", name, 0)
                self.torque_is_off = True
                return
            except BusError:
                self.bus.close()


class SO101Leader:
    """The leader arm a person moves by hand (torque off): its joints read in the follower's radians.

    Same calibration procedure and units as the follower (`embodia calibrate --role leader`); LeRobot's
    file is under `teleoperators/so_leader/`. Configured as LeRobot's leader is: return delay 0,
    acceleration 254, position mode, torque left off."""

    spec = SO101

    def __init__(self, cfg: ArmConfig):
        self.cfg = cfg
        self.bus, self.calibration_file = _bus_and_file(cfg, "leader")
        self.calibration: Calibration | None = None

    def connect(self) -> None:
        self.calibration = load_calibration(self.calibration_file)
        self.bus.connect()
        try:
            check_stored_calibration(self.bus, self.calibration, self.calibration_file)
            self.bus.set_torque(False)
            for name in MOTORS:
                for register in (
                    "Return_Delay_Time",
                    "Maximum_Acceleration",
                    "Acceleration",
                    "Operating_Mode",
                ):
                    self.bus.write(register, name, SERVO_SETTINGS[register])
        except BaseException:
            self.bus.close()
            raise

    def get_action(self) -> np.ndarray:
        """Where the person holds the leader, in radians: the follower's action."""
        ticks = self.bus.sync_read("Present_Position")
        return from_lerobot_units(to_lerobot(ticks, self.calibration)).astype(np.float32)

    def disconnect(self) -> None:
        with contextlib.suppress(BusError):
            if self.bus.connected:
                self.bus.set_torque(False)
        self.bus.close()

    def __enter__(self) -> SO101Leader:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.disconnect()
