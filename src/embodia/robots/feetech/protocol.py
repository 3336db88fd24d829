"""The Feetech SCS/STS serial protocol (protocol 1.0): packets, checksums, instructions.

Everything on the bus is a packet:

    instruction  FF FF ID LEN INSTR PARAM... CHK      LEN = len(PARAM) + 2
    status       FF FF ID LEN ERROR PARAM... CHK      CHK = ~(ID + LEN + INSTR|ERROR + sum(PARAM)) & 0xFF

Multi-byte registers are little-endian. ID 0xFE is the broadcast: every servo executes the instruction
and none answers, except PING, to which every servo answers in turn. SYNC READ (0x82) is addressed to
the broadcast id with (address, length, id...) and each listed servo answers with its own status
packet, in the order listed; SYNC WRITE (0x83) carries (address, length, then id + data for each
servo) and nobody answers.

This module is what `feetech-servo-sdk` (`scservo_sdk`) puts on the wire and expects back; embodia's
emulator (`embodia.robots.emulator`) speaks it from the servo side. It is plain bytes and ints, with
no serial port, so it is tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

HEADER = b"\xff\xff"
BROADCAST_ID = 0xFE
MAX_ID = 0xFC

PING = 0x01
READ = 0x02
WRITE = 0x03
REG_WRITE = 0x04
ACTION = 0x05
SYNC_READ = 0x82
SYNC_WRITE = 0x83
INSTRUCTIONS = {PING: "ping", READ: "read", WRITE: "write", REG_WRITE: "reg_write", ACTION: "action",
                SYNC_READ: "sync_read", SYNC_WRITE: "sync_write"}  # fmt: skip

# Status packet error bits (scservo_sdk's ERRBIT_*).
ERR_VOLTAGE = 0x01
ERR_ANGLE = 0x02
ERR_OVERHEAT = 0x04
ERR_OVERELE = 0x08
ERR_OVERLOAD = 0x20

MAX_PACKET = 250  # the SDK's TXPACKET_MAX_LEN / RXPACKET_MAX_LEN


def checksum(body: bytes) -> int:
    """Checksum of the bytes after the header (ID, LEN, INSTR/ERROR, PARAM...)."""
    return ~sum(body) & 0xFF


def instruction(servo_id: int, instr: int, params: bytes = b"") -> bytes:
    """An instruction packet, as the SDK writes it."""
    return _packet(servo_id, instr, params)


def status(servo_id: int, error: int = 0, params: bytes = b"") -> bytes:
    """A status packet, as a servo answers."""
    return _packet(servo_id, error, params)


def _packet(servo_id: int, code: int, params: bytes) -> bytes:
    if not 0 <= servo_id <= BROADCAST_ID:
        raise ValueError(f"servo id {servo_id} out of 0..{BROADCAST_ID}")
    if len(params) + 6 > MAX_PACKET:
        raise ValueError(f"packet of {len(params) + 6} bytes exceeds {MAX_PACKET}")
    body = bytes([servo_id, len(params) + 2, code]) + bytes(params)
    return HEADER + body + bytes([checksum(body)])


@dataclass(frozen=True)
class Packet:
    """One packet read off the bus. `code` is the instruction (from the host) or the error byte (from
    a servo); `valid` is False when the checksum did not match."""

    servo_id: int
    code: int
    params: bytes
    valid: bool

    @property
    def name(self) -> str:
        return INSTRUCTIONS.get(self.code, f"0x{self.code:02x}")


class PacketReader:
    """Splits a byte stream into packets: resynchronises on the FF FF header after garbage, keeps a
    partial packet until the rest arrives. A packet with a wrong checksum is returned with
    `valid=False` (a servo ignores it; the emulator's tests count it)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.skipped = 0  # bytes dropped while looking for a header

    def feed(self, data: bytes) -> list[Packet]:
        self._buf += data
        out: list[Packet] = []
        while True:
            start = self._buf.find(HEADER)
            if start < 0:
                keep = 1 if self._buf.endswith(b"\xff") else 0  # half a header may follow
                self.skipped += len(self._buf) - keep
                del self._buf[: len(self._buf) - keep]
                return out
            if start:
                self.skipped += start
                del self._buf[:start]
            if len(self._buf) < 4:
                return out
            servo_id, length = self._buf[2], self._buf[3]
            if servo_id == 0xFF or length < 2:  # FF FF FF ...: the header starts one byte later
                self.skipped += 1
                del self._buf[:1]
                continue
            total = length + 4
            if len(self._buf) < total:
                return out
            body = bytes(self._buf[2 : total - 1])
            out.append(Packet(servo_id, body[2], body[3:], checksum(body) == self._buf[total - 1]))
            del self._buf[:total]


def u16(value: int) -> bytes:
    return int(value & 0xFFFF).to_bytes(2, "little")


def encode_sign_magnitude(value: int, sign_bit: int) -> int:
    """Feetech's signed registers (Homing_Offset bit 11, Goal/Present velocity bit 15, ...): the
    magnitude in the low bits, the sign in `sign_bit` (scservo_sdk's SCS_TOSCS)."""
    magnitude = abs(int(value))
    if magnitude >= 1 << sign_bit:
        raise ValueError(f"{value} does not fit a sign-magnitude field with the sign at bit {sign_bit}")
    return magnitude | (1 << sign_bit) if value < 0 else magnitude


def decode_sign_magnitude(raw: int, sign_bit: int) -> int:
    """Inverse of `encode_sign_magnitude` (scservo_sdk's SCS_TOHOST)."""
    return -(raw & ~(1 << sign_bit)) if raw & (1 << sign_bit) else raw
