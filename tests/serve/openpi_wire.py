"""A stand-in for openpi-client's `WebsocketClientPolicy`, written from its documented wire behaviour,
for machines where the real package cannot be installed (it pins numpy < 2).

Deliberately independent of embodia's codec so that a symmetric bug in `embodia.serve.protocol` cannot
hide: arrays are written as openpi does (marker keys as msgpack bin, dtype as numpy's `dtype.str`,
shape as a list), and the handshake and framing follow openpi's client: connect without compression or
size cap, `Authorization: Api-Key <key>` when a key is given, the first frame is the metadata, each
observation is one binary frame, and a text frame in reply is an error.
"""

from __future__ import annotations

import inspect

import msgpack
import numpy as np
from websockets.sync.client import connect


def _default(obj):
    if isinstance(obj, np.ndarray):
        return {
            b"__ndarray__": True,
            b"data": obj.tobytes(),
            b"dtype": obj.dtype.str,
            b"shape": list(obj.shape),
        }
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise TypeError(type(obj))


def _hook(obj):
    if b"__ndarray__" in obj:
        return np.frombuffer(obj[b"data"], dtype=np.dtype(obj[b"dtype"])).reshape(obj[b"shape"])
    if b"__npgeneric__" in obj:
        return np.dtype(obj[b"dtype"]).type(obj[b"data"])
    return obj


class OpenpiStyleClient:
    def __init__(self, uri: str, api_key: str | None = None):
        headers = {"Authorization": f"Api-Key {api_key}"} if api_key else None
        # (legacy=True only silences websockets 17's deprecation of long-lived bare connections.)
        legacy = {"legacy": True} if "legacy" in inspect.signature(connect).parameters else {}
        self._ws = connect(uri, compression=None, max_size=None, additional_headers=headers, **legacy)
        self.metadata = msgpack.unpackb(self._ws.recv(), object_hook=_hook)

    def infer(self, obs: dict) -> dict:
        self._ws.send(msgpack.packb(obs, default=_default, use_bin_type=True))
        reply = self._ws.recv()
        if isinstance(reply, str):
            raise RuntimeError(f"Error in inference server:\n{reply}")
        return msgpack.unpackb(reply, object_hook=_hook)

    def close(self) -> None:
        self._ws.close()
