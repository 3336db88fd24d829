"""An emulated Feetech servo bus on a pseudo-terminal: an SO-101 without the arm.

`BusEmulator` opens a pseudo-terminal and answers on it as a chain of STS3215 servos would, byte for
byte (`embodia.robots.feetech.protocol`): ping, read, write, reg write / action, sync read and sync
write, checksums, one status packet per addressed instruction and none for a broadcast. Anything that
opens a serial port can use it: `feetech-servo-sdk`, LeRobot's `FeetechMotorsBus` and `SOFollower`,
and embodia's own driver, given `emulator.port` where they would take `/dev/ttyACM0`.

    with BusEmulator() as bus:                       # servos 1..6, an SO-101's
        robot = SO101Follower(SO101FollowerConfig(port=bus.port, id="emulated"))

Each servo keeps the control table LeRobot touches (`embodia.robots.feetech.sts3215`): model number
777, firmware version, limits, gains, homing offset (Present_Position = Actual_Position -
Homing_Offset, wrapped to one turn), operating mode, torque enable, goal and present position,
velocity, load, current. A servo with torque on moves its shaft towards the goal at a bounded speed; with
torque off it stays where a hand leaves it (`move_by_hand`). EEPROM writes take effect at once and
survive `power_cycle` only when Lock was 0.

Faults, for drills: `unplug(id)` (the servo stops answering), `corrupt_replies(n)` (the next n status
packets carry a wrong checksum), `close()` (the bus goes away mid-conversation).

What the host sent is kept for checks: `goals` holds every goal position a servo accepted, and
`violations` every goal outside the servo's limits or one turn: a safety layer that works leaves it
empty.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
from dataclasses import dataclass, field

from embodia.robots.feetech import protocol as fp
from embodia.robots.feetech.sts3215 import EEPROM_END, FACTORY, MAX_POSITION, REGISTERS, RESOLUTION

SO101_IDS = (1, 2, 3, 4, 5, 6)
DEFAULT_SPEED = 2400.0  # ticks per second a servo with torque on moves at (about 210 degrees/s)


def _put(mem: bytearray, name: str, value: int) -> None:
    reg = REGISTERS[name]
    raw = fp.encode_sign_magnitude(value, reg.sign_bit) if reg.sign_bit is not None else int(value)
    mem[reg.address : reg.address + reg.size] = raw.to_bytes(reg.size, "little")


def _get(mem: bytearray, name: str) -> int:
    reg = REGISTERS[name]
    raw = int.from_bytes(mem[reg.address : reg.address + reg.size], "little")
    return fp.decode_sign_magnitude(raw, reg.sign_bit) if reg.sign_bit is not None else raw


@dataclass
class Servo:
    """One emulated STS3215. `actual` is the shaft's encoder position in ticks (0..4095, before the
    homing offset); `target` is where torque drives it."""

    servo_id: int
    actual: float = 2048.0
    speed: float = DEFAULT_SPEED
    plugged: bool = True
    mem: bytearray = field(default_factory=lambda: bytearray(256))
    saved_eeprom: bytearray = field(default_factory=lambda: bytearray(EEPROM_END))
    target: float = 2048.0
    velocity: float = 0.0
    pending: tuple[int, bytes] | None = None  # a REG WRITE waiting for ACTION

    def __post_init__(self) -> None:
        for name, value in FACTORY.items():
            _put(self.mem, name, value)
        _put(self.mem, "ID", self.servo_id)
        self.saved_eeprom[:] = self.mem[:EEPROM_END]
        self.target = self.actual
        _put(self.mem, "Goal_Position", self.present())

    def get(self, name: str) -> int:
        return _get(self.mem, name)

    @property
    def torque(self) -> bool:
        return self.get("Torque_Enable") == 1

    def present(self) -> int:
        """Present_Position: the shaft's position less the homing offset, within one turn."""
        return (round(self.actual) - self.get("Homing_Offset")) % RESOLUTION

    def advance(self, dt: float, moved_to: float | None = None) -> None:
        """Let `dt` seconds pass: with torque on, move towards the target at the servo's speed (or to
        `moved_to`, where a simulated arm put the shaft)."""
        before = self.actual
        if moved_to is not None:
            self.actual = moved_to
        elif self.torque and dt > 0:
            step = self.speed * dt
            error = self.target - self.actual
            self.actual += max(-step, min(step, error))
        self.velocity = (self.actual - before) / dt if dt > 0 else 0.0
        if not self.torque:  # a servo without torque reports its goal as where it is
            _put(self.mem, "Goal_Position", self.present())
        _put(self.mem, "Present_Position", self.present())
        speed = int(max(-32767, min(32767, round(self.velocity))))
        _put(self.mem, "Present_Velocity", speed)
        _put(self.mem, "Moving", int(self.torque and abs(self.target - self.actual) > 0.5))
        _put(self.mem, "Present_Current", 0)
        _put(self.mem, "Present_Load", 0)


class BusEmulator:
    """STS3215 servos on a pseudo-terminal. Use as a context manager, or `start()` / `close()`.

    `positions` maps servo id to its shaft's starting position in ticks (default: 2048, mid-turn).
    `arm`: a `SimulatedArm` (embodia.robots.emulator_arm) whose joints the shafts are: goals move it,
    readings come from it, its hard stops bound the hand."""

    def __init__(
        self, ids=SO101_IDS, positions: dict[int, float] | None = None, speed: float = DEFAULT_SPEED, arm=None
    ):
        positions = positions or {}
        self.arm = arm
        self.servos: dict[int, Servo] = {}
        for i in ids:
            if not 0 <= i <= fp.MAX_ID:
                raise ValueError(f"servo id {i} out of 0..{fp.MAX_ID}")
            self.servos[i] = Servo(i, actual=float(positions.get(i, 2048.0)), speed=speed)
            if arm is not None:
                self.servos[i].actual = self.servos[i].target = arm.place(i, self.servos[i].actual)
                self.servos[i].advance(0.0)
        self.goals: list[tuple[int, int]] = []  # (servo id, goal position accepted)
        self.violations: list[str] = []
        self.bad_checksums = 0  # instruction packets dropped for a wrong checksum
        self.instructions: dict[str, int] = {}  # count per instruction name
        self._corrupt = 0
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master = self._slave = -1
        self._last = time.monotonic()
        self.port = ""

    # -- lifetime ---------------------------------------------------------------------------------

    def start(self) -> BusEmulator:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # the host's serial library sets raw mode too; no echo in between
        self.port = os.ttyname(self._slave)
        self._last = time.monotonic()
        self._thread = threading.Thread(target=self._serve, name="feetech-emulator", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """The bus goes away: the host's next read or write fails."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1

    def __enter__(self) -> BusEmulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the world around the servos ------------------------------------------------------------

    def move_by_hand(self, servo_id: int, actual: float) -> None:
        """Turn a servo's shaft to `actual` ticks, as a hand would (torque on: it then drives back)."""
        with self._lock:
            self._tick()
            s = self.servos[servo_id]
            s.actual = float(actual) % RESOLUTION if self.arm is None else self.arm.place(servo_id, actual)
            s.advance(0.0)

    def actual(self, servo_id: int) -> float:
        with self._lock:
            self._tick()
            return self.servos[servo_id].actual

    def unplug(self, servo_id: int) -> None:
        with self._lock:
            self.servos[servo_id].plugged = False

    def plug(self, servo_id: int) -> None:
        with self._lock:
            self.servos[servo_id].plugged = True

    def corrupt_replies(self, n: int) -> None:
        """The next `n` status packets go out with a wrong checksum."""
        with self._lock:
            self._corrupt = n

    def power_cycle(self) -> None:
        """Power off and on: RAM back to factory values, torque off, EEPROM as last saved (Lock 0)."""
        with self._lock:
            for s in self.servos.values():
                fresh = Servo(s.servo_id, actual=s.actual, speed=s.speed, plugged=s.plugged)
                fresh.mem[:EEPROM_END] = s.saved_eeprom
                fresh.saved_eeprom[:] = s.saved_eeprom
                fresh.advance(0.0)
                self.servos[s.servo_id] = fresh

    # -- the bus ----------------------------------------------------------------------------------

    def _serve(self) -> None:
        reader = fp.PacketReader()
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], 0.02)
                if not ready:
                    continue
                data = os.read(self._master, 4096)
            except OSError:
                return
            for packet in reader.feed(data):
                reply = self.handle(packet)
                if reply:
                    try:
                        os.write(self._master, reply)
                    except OSError:
                        return

    def handle(self, packet: fp.Packet) -> bytes:
        """The bytes the bus answers to one instruction packet (empty: nobody answers)."""
        with self._lock:
            if not packet.valid:
                self.bad_checksums += 1
                return b""
            self._tick()
            self.instructions[packet.name] = self.instructions.get(packet.name, 0) + 1
            if packet.code == fp.PING:
                targets = self.servos.values() if packet.servo_id == fp.BROADCAST_ID else [
                    self.servos.get(packet.servo_id)]  # fmt: skip
                return b"".join(self._status(s) for s in targets if s is not None and s.plugged)
            if packet.code == fp.SYNC_READ:
                return self._sync_read(packet.params)
            if packet.code == fp.SYNC_WRITE:
                self._sync_write(packet.params)
                return b""
            if packet.code == fp.ACTION:
                for s in self._addressed(packet.servo_id):
                    if s.pending is not None:
                        self._write(s, *s.pending)
                        s.pending = None
                return b""
            servo = self.servos.get(packet.servo_id)
            if servo is None or not servo.plugged:
                return b""  # nobody there: the host times out
            if packet.code == fp.READ and len(packet.params) == 2:
                address, length = packet.params
                return self._status(servo, bytes(servo.mem[address : address + length]).ljust(length, b"\0"))
            if packet.code in (fp.WRITE, fp.REG_WRITE) and len(packet.params) >= 2:
                address, data = packet.params[0], packet.params[1:]
                if packet.code == fp.WRITE:
                    self._write(servo, address, data)
                else:
                    servo.pending = (address, data)
                return self._status(servo) if packet.servo_id != fp.BROADCAST_ID else b""
            return self._status(servo, error=fp.ERR_ANGLE)  # an instruction this servo does not know

    def _addressed(self, servo_id: int) -> list[Servo]:
        if servo_id == fp.BROADCAST_ID:
            return [s for s in self.servos.values() if s.plugged]
        s = self.servos.get(servo_id)
        return [s] if s is not None and s.plugged else []

    def _status(self, servo: Servo, params: bytes = b"", error: int = 0) -> bytes:
        packet = bytearray(fp.status(servo.get("ID"), error, params))
        if self._corrupt > 0:
            self._corrupt -= 1
            packet[-1] ^= 0xFF
        return bytes(packet)

    def _sync_read(self, params: bytes) -> bytes:
        if len(params) < 3:
            return b""
        address, length, ids = params[0], params[1], params[2:]
        out = b""
        for i in ids:  # in the order asked: the SDK reads them in that order
            s = self.servos.get(i)
            if s is not None and s.plugged:
                out += self._status(s, bytes(s.mem[address : address + length]).ljust(length, b"\0"))
        return out

    def _sync_write(self, params: bytes) -> None:
        if len(params) < 2:
            return
        address, length, body = params[0], params[1], params[2:]
        for k in range(0, len(body) - length, length + 1):
            s = self.servos.get(body[k])
            if s is not None and s.plugged:
                self._write(s, address, body[k + 1 : k + 1 + length])

    def _write(self, servo: Servo, address: int, data: bytes) -> None:
        end = address + len(data)
        if end > len(servo.mem):
            return
        writable = bytearray(servo.mem)
        writable[address:end] = data
        for reg in REGISTERS.values():  # read-only registers keep their value
            if reg.read_only and reg.address < end and address < reg.address + reg.size:
                writable[reg.address : reg.address + reg.size] = servo.mem[
                    reg.address : reg.address + reg.size
                ]
        torque_before = servo.torque
        servo.mem[:] = writable
        if address < EEPROM_END and _get(servo.mem, "Lock") == 0:
            servo.saved_eeprom[address : min(end, EEPROM_END)] = servo.mem[address : min(end, EEPROM_END)]
        self._apply(servo, address, end, torque_before)

    def _apply(self, servo: Servo, start: int, end: int, torque_before: bool) -> None:
        def touched(name: str) -> bool:
            reg = REGISTERS[name]
            return start < reg.address + reg.size and reg.address < end

        if touched("ID"):
            new_id = servo.get("ID")
            if new_id != servo.servo_id and new_id <= fp.MAX_ID and new_id not in self.servos:
                del self.servos[servo.servo_id]
                servo.servo_id = new_id
                self.servos[new_id] = servo
        if touched("Torque_Enable") and servo.torque and not torque_before:
            self._set_goal(servo, servo.get("Goal_Position"), record=False)
        if touched("Goal_Position"):
            self._set_goal(servo, servo.get("Goal_Position"), record=True)
        servo.advance(0.0)

    def _set_goal(self, servo: Servo, goal: int, record: bool) -> None:
        lo, hi = servo.get("Min_Position_Limit"), servo.get("Max_Position_Limit")
        if record:
            self.goals.append((servo.servo_id, goal))
            if not (0 <= goal <= MAX_POSITION) or ((lo, hi) != (0, 0) and not lo <= goal <= hi):
                self.violations.append(
                    f"servo {servo.servo_id}: goal {goal} outside its limits [{lo}, {hi}] (0..{MAX_POSITION})"
                )
        if (lo, hi) != (0, 0):
            goal = max(lo, min(hi, goal))  # the servo itself clamps to its limits in position mode
        if servo.torque:
            servo.target = float((goal + servo.get("Homing_Offset")) % RESOLUTION)

    def _tick(self) -> None:
        now = time.monotonic()
        dt, self._last = now - self._last, now
        if self.arm is not None:
            self.arm.step(dt, self.servos)
        for i, s in self.servos.items():
            s.advance(dt, None if self.arm is None else self.arm.ticks(i))


def calibrate_emulated(bus: BusEmulator, role: str, robot_id: str, folder=None, reach: float = 600.0):
    """Calibrate an emulated arm by LeRobot's procedure, as a person would: its present pose is the
    middle, then a hand turns each joint `reach` ticks each way (a MuJoCo-backed arm stops at its hard
    stops). Saves the calibration file (LeRobot's folders, or `folder/<id>.json`) and returns its path."""
    from embodia.robots.calibrate import FULL_TURN, calibrate_arm
    from embodia.robots.calibration import MOTORS, calibration_path, save_calibration
    from embodia.robots.feetech.bus import FeetechBus

    start = {i: bus.actual(i) for i in bus.servos}
    moves = [
        (MOTORS[n], start[MOTORS[n]] + d) for n in MOTORS if n not in FULL_TURN for d in (-reach, reach, 0)
    ]

    def recording_done(ranges) -> bool:
        if not moves:
            return True
        bus.move_by_hand(*moves.pop(0))
        return False

    driver = FeetechBus(bus.port, MOTORS)
    driver.connect()
    try:
        calibration = calibrate_arm(driver, lambda: None, recording_done)
    finally:
        driver.close()
    path = calibration_path(role, robot_id, folder)
    save_calibration(path, calibration)
    return path
