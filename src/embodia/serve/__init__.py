"""Serving: a policy behind openpi's websocket protocol and HTTP (`server`), clients (`client`), and
the action-chunk runner that executes chunks while the next one is fetched (`chunking`).

Names are imported lazily so that `import embodia.serve` costs nothing: the server pulls in FastAPI
and torch, the client only numpy, msgpack and websockets.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Client": "embodia.serve.client",
    "RemotePolicy": "embodia.serve.client",
    "ServerError": "embodia.serve.client",
    "ChunkRunner": "embodia.policy.runner",
    "create_app": "embodia.serve.server",
    "serve": "embodia.serve.server",
    "running_server": "embodia.serve.server",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'embodia.serve' has no attribute {name!r}")
