"""The wire codec: msgpack with numpy arrays, byte-compatible with openpi's `msgpack_numpy`.

openpi clients (``openpi_client.websocket_client_policy``) and servers exchange msgpack maps in which
every numpy array is replaced by a map

    {b"__ndarray__": True, b"data": <raw bytes>, b"dtype": "<f4", b"shape": [H, W, 3]}

and every numpy scalar by ``{b"__npgeneric__": True, b"data": <python value>, b"dtype": "<f8"}``.
openpi writes those marker keys as msgpack *bin* (Python bytes), so this module writes them the same
way; it reads both bin and str keys, so hand-written clients in other languages that use strings work.
As in openpi, np.float64 and np.str_ scalars (subclasses of float and str) travel as plain values.

Why not pickle (or msgpack-numpy, which falls back to pickle for object arrays): a server that unpickles
network input runs arbitrary code. Here decoding can only ever produce dicts, lists, scalars, strings,
bytes and numeric/string numpy arrays; object, void (structured) and datetime dtypes are refused.

Also here: JSON conversion for the HTTP endpoints (arrays as nested lists).
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

# dtype kinds that may cross the wire: bool, signed/unsigned int, float, unicode and byte strings.
# 'O' (object) would need pickle, 'V' (void/structured) can smuggle object fields, 'c' (complex) has no
# msgpack scalar form (openpi refuses it too), 'M'/'m' (datetime) nobody needs.
ALLOWED_KINDS = frozenset("biufUS")
MAX_NDIM = 8  # an observation or action is at most rank 4 (B, H, W, C); deeper is certainly an error
# Plain msgpack lists are decoded into Python objects, item by item, holding the interpreter lock: a
# 16 MB message of small integers would stall every other client for seconds. Arrays travel as numpy
# (openpi's encoding: one bin, no per-item cost); lists may hold this many items in all (about two
# 224 x 224 RGB images written as nested lists, for clients without numpy).
MAX_LIST_ITEMS = 262_144
# Strings are decoded (UTF-8, holding the interpreter lock) before anyone can look at them: a string
# longer than any field needs (an instruction is at most 1,024 characters) is refused by its length.
MAX_STR_BYTES = 64 * 1024
_ARRAY_KEYS = ("__ndarray__", b"__ndarray__")
_SCALAR_KEYS = ("__npgeneric__", b"__npgeneric__")


class ProtocolError(ValueError):
    """A message that is not valid msgpack-numpy (bad framing, forbidden dtype, inconsistent array)."""


def _check_dtype(dtype: np.dtype) -> np.dtype:
    if dtype.kind not in ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise ProtocolError(
            f"numpy dtype {dtype.str!r} (kind {dtype.kind!r}) is not allowed on the wire; "
            "use bool, integer, float or string arrays"
        )
    return dtype


def _encode_default(obj: Any) -> Any:
    """msgpack `default` hook: numpy arrays and scalars to openpi's marker maps."""
    if isinstance(obj, np.ndarray):
        _check_dtype(obj.dtype)
        # tobytes() is C order whatever the array's layout, and the receiver rebuilds in C order.
        return {b"__ndarray__": True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": obj.shape}
    if isinstance(obj, np.generic):
        _check_dtype(obj.dtype)
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise TypeError(f"cannot encode {type(obj).__name__} in a message (no pickle on the wire)")


def _field(obj: dict, name: str) -> Any:
    if name in obj:
        return obj[name]
    key = name.encode()
    if key in obj:
        return obj[key]
    raise ProtocolError(f"numpy marker map lacks its {name!r} field (has {sorted(map(str, obj))})")


def _parse_dtype(raw: Any) -> np.dtype:
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    if not isinstance(raw, str) or len(raw) > 16:
        raise ProtocolError(f"bad numpy dtype field {raw!r}")
    try:
        dtype = np.dtype(raw)
    except TypeError as exc:
        raise ProtocolError(f"unknown numpy dtype {raw!r} ({exc})") from None
    return _check_dtype(dtype)


def _decode_hook(obj: dict) -> Any:
    """msgpack `object_hook`: marker maps back to numpy; any other map unchanged."""
    if any(k in obj for k in _ARRAY_KEYS):
        dtype = _parse_dtype(_field(obj, "dtype"))
        shape = _field(obj, "shape")
        data = _field(obj, "data")
        if not isinstance(shape, list | tuple) or len(shape) > MAX_NDIM:
            raise ProtocolError(f"array shape must be a list of at most {MAX_NDIM} ints, got {shape!r}")
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
            raise ProtocolError(f"array shape must hold non-negative ints, got {shape!r}")
        if not isinstance(data, bytes):
            raise ProtocolError(f"array data must be msgpack bin, got {type(data).__name__}")
        expected = math.prod(shape) * dtype.itemsize
        if len(data) != expected:
            raise ProtocolError(
                f"array of shape {tuple(shape)} and dtype {dtype.str} needs {expected} bytes, got {len(data)}"
            )
        # frombuffer is zero-copy and read-only; consumers that modify arrays copy them first.
        return np.frombuffer(data, dtype=dtype).reshape(shape)
    if any(k in obj for k in _SCALAR_KEYS):
        dtype = _parse_dtype(_field(obj, "dtype"))
        try:
            return dtype.type(_field(obj, "data"))
        except (TypeError, ValueError, OverflowError) as exc:
            raise ProtocolError(f"bad numpy scalar of dtype {dtype.str}: {exc}") from None
    return obj


class _ListBudget:
    """msgpack `list_hook`: counts the items of the lists decoded so far and stops past the budget."""

    def __init__(self, budget: int = MAX_LIST_ITEMS):
        self.left = budget

    def __call__(self, items: list) -> list:
        self.left -= len(items)
        if self.left < 0:
            raise ProtocolError(
                f"the message's lists hold more than {MAX_LIST_ITEMS} items in all; send arrays as numpy "
                "arrays (msgpack-numpy, as openpi clients do), not as lists"
            )
        return items


def packb(obj: Any) -> bytes:
    """Encode a message (dicts, lists, scalars, str, bytes, numpy arrays and scalars)."""
    return msgpack.packb(obj, default=_encode_default, use_bin_type=True)


def unpackb(data: bytes) -> Any:
    """Decode a message; raises ProtocolError for anything that is not well-formed msgpack-numpy."""
    try:
        # strict_map_key=False: openpi's marker keys are bin (bytes); msgpack's default refuses only
        # non-str/bytes keys anyway, but being explicit documents that bytes keys are expected.
        return msgpack.unpackb(
            data,
            object_hook=_decode_hook,
            list_hook=_ListBudget(),
            raw=False,
            strict_map_key=False,
            max_str_len=MAX_STR_BYTES,
        )
    except ProtocolError:
        raise
    except msgpack.exceptions.StackError:  # msgpack's own depth limit; its message is empty
        raise ProtocolError("message nests too deeply") from None
    except (ValueError, TypeError, msgpack.exceptions.ExtraData, msgpack.exceptions.FormatError) as exc:
        if "max_str_len" in str(exc):  # msgpack: "N exceeds max_str_len(M)"
            raise ProtocolError(
                f"a string in the message is longer than {MAX_STR_BYTES} bytes (an instruction may have at "
                "most 1,024 characters)"
            ) from None
        raise ProtocolError(f"not a valid msgpack message: {exc}") from None
    except RecursionError:
        raise ProtocolError("message nests too deeply") from None


def to_jsonable(obj: Any) -> Any:
    """Arrays to nested lists, numpy scalars to Python values, for JSON responses."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, bytes):
        raise TypeError("bytes cannot be sent as JSON; use msgpack")
    return obj
