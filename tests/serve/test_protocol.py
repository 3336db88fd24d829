"""The msgpack-numpy codec: round trips, openpi's byte-level layout, and what it refuses."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from embodia.serve.protocol import ProtocolError, packb, to_jsonable, unpackb


@pytest.mark.parametrize(
    "dtype", ["uint8", "int8", "int16", "int32", "int64", "uint16", "float16", "float32", "float64", "bool"]
)
def test_array_round_trip_keeps_dtype_shape_and_values(dtype):
    rng = np.random.default_rng(0)
    arr = (rng.normal(size=(2, 3, 4)) * 50).astype(dtype)
    out = unpackb(packb({"x": arr}))["x"]
    assert out.dtype == arr.dtype and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)


def test_non_contiguous_zero_size_and_string_arrays():
    arr = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2].T  # a strided view
    out = unpackb(packb(arr))
    np.testing.assert_array_equal(out, arr)
    assert unpackb(packb(np.zeros((0, 3), np.float32))).shape == (0, 3)
    words = np.array(["pick", "place"])
    np.testing.assert_array_equal(unpackb(packb(words)), words)


@pytest.mark.parametrize(
    "value", [np.float32(1.5), np.float16(0.5), np.int64(-7), np.uint8(200), np.bool_(True), np.int16(3)]
)
def test_numpy_scalars_round_trip_with_their_dtype(value):
    out = unpackb(packb({"v": value}))["v"]
    assert type(out) is type(value) and out == value


def test_float64_scalars_travel_as_plain_floats_as_in_openpi():
    # np.float64 subclasses float, so msgpack writes it natively (openpi's codec does the same).
    out = unpackb(packb(np.float64(-2.25)))
    assert out == -2.25 and isinstance(out, float)


def test_nested_messages_and_plain_values():
    msg = {"a": [1, 2.5, "x", None, True], "b": {"c": np.ones(3, np.float32)}, "d": b"raw"}
    out = unpackb(packb(msg))
    assert out["a"] == [1, 2.5, "x", None, True] and out["d"] == b"raw"
    np.testing.assert_array_equal(out["b"]["c"], np.ones(3, np.float32))


def test_wire_layout_is_openpis():
    """openpi writes its marker keys as msgpack bin (bytes), dtype as numpy's dtype.str."""
    raw = msgpack.unpackb(packb({"x": np.zeros((2, 3), "<f4"), "s": np.float32(1.0)}), raw=False)
    arr, scalar = raw["x"], raw["s"]
    assert arr == {b"__ndarray__": True, b"data": bytes(24), b"dtype": "<f4", b"shape": [2, 3]}
    assert scalar == {b"__npgeneric__": True, b"data": 1.0, b"dtype": "<f4"}


def test_reads_string_marker_keys_from_other_clients():
    data = msgpack.packb(
        {"__ndarray__": True, "data": np.arange(3, dtype="<i4").tobytes(), "dtype": "<i4", "shape": [3]}
    )
    np.testing.assert_array_equal(unpackb(data), [0, 1, 2])


def test_object_arrays_are_never_encoded_nor_decoded():
    with pytest.raises(ProtocolError, match="not allowed"):
        packb(np.array([{"a": 1}], dtype=object))
    for dtype in ("|O", "O", "V8", "<M8[s]", "<c8"):
        evil = msgpack.packb({b"__ndarray__": True, b"data": bytes(8), b"dtype": dtype, b"shape": [1]})
        with pytest.raises(ProtocolError):
            unpackb(evil)


@pytest.mark.parametrize(
    "fields",
    [
        {b"data": bytes(7), b"dtype": "<f4", b"shape": [2]},  # wrong byte count
        {b"data": bytes(8), b"dtype": "<f4", b"shape": [-2]},
        {b"data": bytes(8), b"dtype": "<f4", b"shape": "2"},
        {b"data": "text", b"dtype": "<f4", b"shape": [1]},
        {b"data": bytes(8), b"dtype": "nonsense", b"shape": [2]},
        {b"dtype": "<f4", b"shape": [2]},  # no data
    ],
)
def test_malformed_arrays_are_protocol_errors(fields):
    with pytest.raises(ProtocolError):
        unpackb(msgpack.packb({b"__ndarray__": True, **fields}))


def test_garbage_is_a_protocol_error():
    for data in (b"\xc1", b"\x92\x01", packb({"a": 1}) + b"\x00"):
        with pytest.raises(ProtocolError):
            unpackb(data)


def test_unknown_python_objects_are_refused():
    with pytest.raises(TypeError, match="no pickle"):
        packb({"x": object()})


def test_jsonable():
    out = to_jsonable({"a": np.ones((2, 2), np.float32), "b": np.int64(3), "c": (1, np.float32(0.5))})
    assert out == {"a": [[1.0, 1.0], [1.0, 1.0]], "b": 3, "c": [1, 0.5]}


def test_interoperates_with_openpi_client_codec():
    codec = pytest.importorskip("openpi_client.msgpack_numpy", reason="openpi-client is not installed")
    msg = {"img": np.arange(12, dtype=np.uint8).reshape(2, 2, 3), "s": np.float32(2.5), "t": "x"}
    ours = unpackb(codec.packb(msg))
    theirs = codec.unpackb(packb(msg))
    for out in (ours, theirs):
        np.testing.assert_array_equal(out["img"], msg["img"])
        assert out["s"] == np.float32(2.5) and out["s"].dtype == np.float32 and out["t"] == "x"
    assert packb(msg) == codec.packb(msg)  # byte for byte


def test_deep_nesting_and_list_floods_are_protocol_errors():
    from embodia.serve.protocol import MAX_LIST_ITEMS, ProtocolError, unpackb

    with pytest.raises(ProtocolError, match="nests too deeply"):
        unpackb(b"\x81" + packb("task") + b"\x91" * 100_000 + b"\x00")
    with pytest.raises(ProtocolError, match="numpy arrays"):
        unpackb(packb({"task": [0] * (MAX_LIST_ITEMS + 1)}))
    assert unpackb(packb({"task": [[0] * 96] * 96})) == {"task": [[0] * 96] * 96}  # within budget


def test_overlong_strings_are_refused_before_they_are_decoded():
    """A 4 MB instruction was decoded (UTF-8, holding the interpreter lock) before the schema refused it
    by its length; msgpack now refuses it by its header's length."""
    from embodia.serve.protocol import MAX_STR_BYTES, ProtocolError, unpackb

    with pytest.raises(ProtocolError, match=f"longer than {MAX_STR_BYTES} bytes"):
        unpackb(packb({"task": "a" * (4 << 20)}))
    assert unpackb(packb({"task": "é" * (MAX_STR_BYTES // 2)}))["task"] == "é" * (MAX_STR_BYTES // 2)
    text = np.array(["b" * 100_000])  # a numpy string array travels as bytes: not a msgpack str
    np.testing.assert_array_equal(unpackb(packb({"x": text}))["x"], text)
