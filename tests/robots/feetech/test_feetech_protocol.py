"""The Feetech packet layer: the exact bytes scservo_sdk writes, checksums, resynchronisation."""

import pytest

from embodia.robots.feetech import protocol as fp


def test_packets_match_the_sdk_bytes():
    # Bytes written by feetech-servo-sdk 1.0.0 (through LeRobot's FeetechMotorsBus) for these calls.
    assert fp.instruction(fp.BROADCAST_ID, fp.PING) == bytes.fromhex("fffffe0201fe")
    assert fp.instruction(1, fp.READ, bytes([3, 2])) == bytes.fromhex("ffff01040203 02f3".replace(" ", ""))
    sync_read = fp.instruction(fp.BROADCAST_ID, fp.SYNC_READ, bytes([0x38, 2, 1, 2]))
    assert sync_read == bytes.fromhex("fffffe0682380201023c")
    goal_m5 = fp.encode_sign_magnitude(-5, 15).to_bytes(2, "little")
    sync_write = fp.instruction(
        fp.BROADCAST_ID, fp.SYNC_WRITE, bytes([0x2A, 2, 1]) + goal_m5 + bytes([2]) + fp.u16(100)
    )
    assert sync_write == bytes.fromhex("fffffe0a832a02010580026400 5c".replace(" ", ""))


def test_reader_resynchronises_and_flags_bad_checksums():
    good = fp.status(3, 0, b"\x10\x08")
    bad = bytearray(fp.status(4, 0, b"\x00\x00"))
    bad[-1] ^= 0x55
    reader = fp.PacketReader()
    stream = b"\x00\x17\xff" + good + bytes(bad) + good
    packets = [p for i in range(0, len(stream), 3) for p in reader.feed(stream[i : i + 3])]  # in pieces
    assert [(p.servo_id, p.params, p.valid) for p in packets] == [
        (3, b"\x10\x08", True), (4, b"\x00\x00", False), (3, b"\x10\x08", True)]  # fmt: skip
    assert reader.skipped == 3


@pytest.mark.parametrize(("value", "bit"), [(0, 11), (2047, 11), (-2047, 11), (-5, 15), (32767, 15)])
def test_sign_magnitude_round_trip(value, bit):
    assert fp.decode_sign_magnitude(fp.encode_sign_magnitude(value, bit), bit) == value


def test_sign_magnitude_refuses_what_does_not_fit():
    with pytest.raises(ValueError, match="sign-magnitude"):
        fp.encode_sign_magnitude(2048, 11)
