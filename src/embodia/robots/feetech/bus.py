"""A Feetech STS3215 bus through `feetech-servo-sdk` (`scservo_sdk`), the SDK LeRobot drives it with.

    bus = FeetechBus("/dev/ttyACM0", {"shoulder_pan": 1, ..., "gripper": 6})
    bus.connect()                                   # ping every motor: model 777, one firmware version
    ticks = bus.sync_read("Present_Position")       # {"shoulder_pan": 2047, ...}
    bus.sync_write("Goal_Position", {"gripper": 2300})
    bus.close()

What it adds to the SDK:

* every value is checked against its register (an integer, within the register's size or its
  sign-magnitude range) before a byte goes out;
* a failed transaction (no answer, wrong checksum, an error bit) is retried after clearing the input,
  then raised as `BusError` naming the motor, its id, the register and the SDK's reason;
* a port that goes away (unplugged, closed) raises `BusDisconnected` at once, whatever the exception
  pyserial or termios throws;
* the SDK 1.0.0's packet timeout (about 34 ms, too short for a busy bus: gitee.com/ftservo/SCServoSDK
  issue IBY2S6) is replaced by the fixed formula LeRobot patches in at run time, bytes x byte time +
  3 byte times + 50 ms.
"""

from __future__ import annotations

import contextlib
import termios
from collections.abc import Iterable

from embodia.robots.feetech import protocol as fp
from embodia.robots.feetech.sts3215 import MODEL_NUMBER, REGISTERS, Register

DEFAULT_BAUDRATE = 1_000_000
RETRIES = 3


class BusError(RuntimeError):
    """A motor did not answer as it should, after retries."""


class BusDisconnected(BusError):
    """The serial port went away."""


def _sdk():
    try:
        import scservo_sdk
    except ImportError:
        raise ImportError(
            "driving a real SO-101 needs the Feetech servo SDK: pip install 'embodia[so101]' "
            "(feetech-servo-sdk)"
        ) from None
    return scservo_sdk


def _port_handler_class():
    scs = _sdk()

    class PortHandler(scs.PortHandler):
        def setPacketTimeout(self, packet_length):  # noqa: N802  (the SDK's name)
            self.packet_start_time = self.getCurrentTime()
            self.packet_timeout = self.tx_time_per_byte * packet_length + self.tx_time_per_byte * 3.0 + 50

    return PortHandler


def encode(register: Register, value: int) -> bytes:
    """The register's bytes for `value`, or ValueError before anything is sent."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            as_int = int(value)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"{register.name}: {value!r} is not an integer") from None
        if as_int != value:
            raise ValueError(f"{register.name}: {value!r} is not an integer")
        value = as_int
    if register.sign_bit is not None:
        raw = fp.encode_sign_magnitude(value, register.sign_bit)
    elif not 0 <= value < 1 << (8 * register.size):
        raise ValueError(f"{register.name}: {value} does not fit {register.size} byte(s) unsigned")
    else:
        raw = value
    return raw.to_bytes(register.size, "little")


def decode(register: Register, raw: int) -> int:
    return fp.decode_sign_magnitude(raw, register.sign_bit) if register.sign_bit is not None else raw


class FeetechBus:
    def __init__(
        self, port: str, motors: dict[str, int], baudrate: int = DEFAULT_BAUDRATE, retries: int = RETRIES
    ):
        ids = list(motors.values())
        if len(set(ids)) != len(ids) or not all(isinstance(i, int) and 0 <= i <= fp.MAX_ID for i in ids):
            raise ValueError(f"motor ids must be distinct integers in 0..{fp.MAX_ID}: {motors}")
        if retries < 1:
            raise ValueError("retries must be at least 1")
        self.port_name, self.motors, self.baudrate, self.retries = port, dict(motors), baudrate, retries
        self._port = None
        self._ph = None

    # -- lifetime ---------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._port is not None

    def connect(self, check: bool = True) -> None:
        """Open the port and (with `check`) ping every motor: each must be an STS3215 (model 777), all
        on the same firmware."""
        scs = _sdk()
        port = _port_handler_class()(self.port_name)
        try:
            opened = port.openPort() and port.setBaudRate(self.baudrate)
        except Exception as exc:  # pyserial raises SerialException (an OSError) or worse
            raise BusDisconnected(
                f"could not open {self.port_name}: {exc}. Is the arm plugged in and powered?"
            ) from None
        if not opened:
            raise BusDisconnected(f"could not open {self.port_name} at {self.baudrate} baud")
        self._port, self._ph = port, scs.PacketHandler(0)
        if check:
            try:
                self.check_motors()
            except BaseException:
                self.close()
                raise

    def check_motors(self) -> None:
        missing, wrong, firmware = [], [], {}
        for name, motor_id in self.motors.items():
            try:
                model = self.read("Model_Number", name)
            except BusDisconnected:
                raise
            except BusError:
                missing.append(f"{name} (id {motor_id})")
                continue
            if model != MODEL_NUMBER:
                wrong.append(f"{name} (id {motor_id}) is model {model}")
            firmware[name] = (
                f"{self.read('Firmware_Major_Version', name)}.{self.read('Firmware_Minor_Version', name)}"
            )
        if missing:
            raise BusError(
                f"{self.port_name}: no answer from {', '.join(missing)}: check the cable and power, and that the "
                "ids were set (lerobot-setup-motors)"
            )
        if wrong:
            raise BusError(
                f"{self.port_name}: expected STS3215 servos (model {MODEL_NUMBER}): {'; '.join(wrong)}"
            )
        if len(set(firmware.values())) > 1:
            raise BusError(f"{self.port_name}: motors run different firmware versions: {firmware}")

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(Exception):  # the port may already be gone; nothing more to release
                port.closePort()

    # -- transactions -----------------------------------------------------------------------------

    def read(self, register: str, motor: str) -> int:
        reg, motor_id = REGISTERS[register], self._id(motor)
        calls = {1: self._ph.read1ByteTxRx, 2: self._ph.read2ByteTxRx, 4: self._ph.read4ByteTxRx}
        value = self._retry(
            f"read {register} of {motor} (id {motor_id})",
            lambda: calls[reg.size](self._port, motor_id, reg.address),
        )
        return decode(reg, value)

    def write(self, register: str, motor: str, value: int) -> None:
        reg, motor_id = REGISTERS[register], self._id(motor)
        if reg.read_only:
            raise ValueError(f"{register} is read-only")
        data = list(encode(reg, value))
        self._retry(
            f"write {register}={value} to {motor} (id {motor_id})",
            lambda: (None, *self._ph.writeTxRx(self._port, motor_id, reg.address, reg.size, data)),
        )

    def sync_read(self, register: str, motors: Iterable[str] | None = None) -> dict[str, int]:
        scs = _sdk()
        reg = REGISTERS[register]
        names = list(self.motors if motors is None else motors)
        group = scs.GroupSyncRead(self._port, self._ph, reg.address, reg.size)
        for name in names:
            group.addParam(self._id(name))
        last = ""
        for _ in range(self.retries):
            result = self._guard(group.txRxPacket)
            if result == scs.COMM_SUCCESS:
                return {n: decode(reg, group.getData(self._id(n), reg.address, reg.size)) for n in names}
            absent = [
                f"{n} (id {self._id(n)})"
                for n in names
                if not group.isAvailable(self._id(n), reg.address, reg.size)
            ]
            last = (
                f"{self._ph.getTxRxResult(result)} (no valid answer from {', '.join(absent) or 'some motor'})"
            )
            self._reset_input()
        raise BusError(f"{self.port_name}: sync read of {register} failed {self.retries} times: {last}")

    def sync_write(self, register: str, values: dict[str, int]) -> None:
        scs = _sdk()
        reg = REGISTERS[register]
        if reg.read_only:
            raise ValueError(f"{register} is read-only")
        encoded = {name: list(encode(reg, v)) for name, v in values.items()}  # all checked before sending
        group = scs.GroupSyncWrite(self._port, self._ph, reg.address, reg.size)
        for name, data in encoded.items():
            group.addParam(self._id(name), data)
        result = self._guard(group.txPacket)
        if result != scs.COMM_SUCCESS:
            raise BusError(
                f"{self.port_name}: sync write of {register} failed: {self._ph.getTxRxResult(result)}"
            )

    def set_torque(self, on: bool, motors: Iterable[str] | None = None) -> None:
        """Torque_Enable then Lock for each motor (LeRobot's order: unlocked EEPROM while torque is off)."""
        for name in self.motors if motors is None else motors:
            self.write("Torque_Enable", name, int(on))
            self.write("Lock", name, int(on))

    # -- internals --------------------------------------------------------------------------------

    def _id(self, motor: str) -> int:
        if self._port is None:
            raise BusDisconnected(f"{self.port_name}: not connected")
        try:
            return self.motors[motor]
        except KeyError:
            raise ValueError(f"unknown motor {motor!r}; this bus has {list(self.motors)}") from None

    def _retry(self, what: str, call):
        """Run an SDK call returning (value, comm_result, error) up to `retries` times."""
        scs = _sdk()
        last = ""
        for _ in range(self.retries):
            value, result, error = self._guard(call)
            if result == scs.COMM_SUCCESS and error == 0:
                return value
            last = (
                self._ph.getTxRxResult(result)
                if result != scs.COMM_SUCCESS
                else self._ph.getRxPacketError(error)
            )
            self._reset_input()
        raise BusError(f"{self.port_name}: {what} failed {self.retries} times: {last}")

    def _guard(self, call):
        try:
            return call()
        except (OSError, termios.error) as exc:  # pyserial's SerialException is an OSError
            self.close()
            raise BusDisconnected(f"{self.port_name}: the serial link went away ({exc})") from None

    def _reset_input(self) -> None:
        """Drop what a failed exchange left on the line, so the next answer is read from its start."""
        ser = getattr(self._port, "ser", None)
        if ser is not None:
            self._guard(ser.reset_input_buffer)
        if self._port is not None:
            self._port.is_using = False
