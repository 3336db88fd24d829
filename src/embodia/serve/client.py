"""Clients of `embodia serve` (or of any openpi-protocol policy server).

    client = embodia.Client("ws://127.0.0.1:8000")           # or http://..., api_key="..."
    client.metadata["observation"]                           # keys, shapes, dtypes the policy expects
    actions = client.act(obs)                                # (chunk_size, action_dim) float32

    policy = RemotePolicy("ws://127.0.0.1:8000")             # eval's ChunkPolicy over the wire
    embodia.eval.run.evaluate(policy, suite="pick", ...)

Imports only numpy, msgpack and websockets (no torch, no web framework), so robot-side programs stay
light. The websocket client speaks exactly what openpi's `WebsocketClientPolicy` speaks (binary msgpack
frames, metadata first, a text frame means an error); after an error the server closes the connection,
and the next call reconnects.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from embodia.serve.protocol import packb, unpackb

MSGPACK = "application/msgpack"


@functools.cache
def _legacy_flag() -> dict[str, bool]:
    # websockets 17 deprecates a bare `connect()` (a long-lived connection, which a client object
    # needs) unless `legacy=True` is passed; older versions have no such argument.
    import inspect

    from websockets.sync.client import connect

    return {"legacy": True} if "legacy" in inspect.signature(connect).parameters else {}


class ServerError(RuntimeError):
    """The server refused the request or failed; the message is the server's own."""


class Client:
    """One connection to a policy server. Thread-safe: calls are serialised (one request in flight)."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 60.0):
        if "://" not in url:
            url = f"ws://{url}"  # "host:port", as openpi's client accepts
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname:
            raise ValueError(
                f"policy server URL must look like ws://host:port or http://host:port, got {url!r}"
            )
        self.url = url
        self.api_key = api_key
        self.timeout = float(timeout)
        self._http = parts.scheme.startswith("http")
        self._lock = threading.Lock()
        self._ws = None
        self.metadata: dict[str, Any] = self._fetch_metadata()

    # ------------------------------------------------------------------ public API
    def act(
        self,
        observation: dict[str, Any],
        pending: np.ndarray | None = None,
        delay: int = 0,
        seed: int | None = None,
        embodiment: str | None = None,
    ) -> np.ndarray:
        """The action chunk (chunk_size, action_dim) float32 for one observation.

        `pending` (P, action_dim) and `delay`: real-time chunking (the server inpaints the new chunk
        so that its first `delay` actions are pending[:delay]); `seed` fixes the sampling noise."""
        message = dict(observation)
        if pending is not None:
            message["pending"] = np.asarray(pending, dtype=np.float32)
            message["delay"] = int(delay)
        elif delay:
            raise ValueError("delay needs pending (the previous chunk's actions still to run)")
        if seed is not None:
            message["seed"] = int(seed)
        if embodiment is not None:
            message["embodiment"] = embodiment
        reply = self.infer(message)
        try:
            actions = np.asarray(reply["actions"], dtype=np.float32)
        except KeyError:
            raise ServerError(f"the server's reply has no 'actions' (keys {sorted(reply)})") from None
        except (TypeError, ValueError) as exc:
            raise ServerError(f"the server's 'actions' are not an array of numbers ({exc})") from None
        if not np.all(np.isfinite(actions)):  # any server, not only embodia's: nothing non-finite goes on
            raise ServerError("the server replied with NaN or inf actions; they were not used")
        return actions

    def infer(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one observation map, return the server's whole reply (openpi's `infer`)."""
        with self._lock:
            if self._http:
                return self._http_act(message)
            return self._ws_act(message)

    def close(self) -> None:
        with self._lock:
            if self._ws is not None:
                self._ws.close()
                self._ws = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r}, embodiment={self.metadata.get('embodiment')!r})"

    # ------------------------------------------------------------------ websocket
    def _headers(self) -> dict[str, str]:
        # openpi-client's header form, which embodia's server and openpi's both accept.
        return {"Authorization": f"Api-Key {self.api_key}"} if self.api_key else {}

    def _connect(self) -> dict[str, Any]:
        from websockets.exceptions import InvalidStatus, WebSocketException
        from websockets.sync.client import connect

        try:
            # compression=None and no size cap on replies, as openpi's client does.
            self._ws = connect(
                self.url,
                additional_headers=self._headers(),
                compression=None,
                max_size=None,
                open_timeout=self.timeout,
                **_legacy_flag(),
            )
        except InvalidStatus as exc:
            code = exc.response.status_code
            hint = " (missing or wrong API key?)" if code in (401, 403) else ""
            raise ServerError(f"{self.url} refused the connection: HTTP {code}{hint}") from None
        except (OSError, WebSocketException, TimeoutError) as exc:
            raise ConnectionError(f"cannot reach the policy server at {self.url}: {exc}") from None
        first = self._recv()
        if not isinstance(first, dict):
            raise ServerError(f"expected the server's metadata map on connect, got {type(first).__name__}")
        return first

    def _recv(self) -> Any:
        from websockets.exceptions import ConnectionClosed

        try:
            data = self._ws.recv(timeout=self.timeout)
        except ConnectionClosed as exc:
            self._ws = None
            rcvd = exc.rcvd
            why = f"code {rcvd.code}: {rcvd.reason}" if rcvd is not None else "no close frame"
            raise ServerError(f"the server closed the connection ({why})") from None
        except TimeoutError:
            self._drop()
            raise TimeoutError(f"no reply from {self.url} within {self.timeout} s") from None
        if isinstance(data, str):
            # openpi's convention: an error is a text frame; the server then closes the connection.
            self._drop()
            raise ServerError(data)
        return unpackb(data)

    def _drop(self) -> None:
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    def _ws_act(self, message: dict[str, Any]) -> dict[str, Any]:
        from websockets.exceptions import ConnectionClosed

        if self._ws is None:
            self.metadata = self._connect()
        data = packb(message)
        try:
            self._ws.send(data)
        except ConnectionClosed:
            # The server went away between calls (restart, idle proxy): one fresh connection, once.
            self._ws = None
            self.metadata = self._connect()
            self._ws.send(data)
        reply = self._recv()
        if not isinstance(reply, dict):
            raise ServerError(f"expected a reply map, got {type(reply).__name__}")
        return reply

    # ------------------------------------------------------------------ HTTP
    def _http_base(self) -> str:
        return self.url.rstrip("/")

    def _http_call(self, path: str, body: bytes | None = None) -> Any:
        headers = {"Accept": MSGPACK} | self._headers()
        if body is not None:
            headers["Content-Type"] = MSGPACK
        req = urllib.request.Request(self._http_base() + path, data=body, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                payload, ctype = resp.read(), resp.headers.get("content-type", "")
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", "replace")
            with contextlib.suppress(ValueError, AttributeError):  # our server's {"error": ...} body
                text = json.loads(text).get("error", text)
            raise ServerError(f"HTTP {exc.code} from {self.url}{path}: {text}") from None
        except urllib.error.URLError as exc:
            raise ConnectionError(f"cannot reach the policy server at {self.url}: {exc.reason}") from None
        return unpackb(payload) if MSGPACK in ctype else json.loads(payload)

    def _fetch_metadata(self) -> dict[str, Any]:
        if self._http:
            return self._http_call("/v1/metadata")
        with self._lock:
            return self._connect()

    def _http_act(self, message: dict[str, Any]) -> dict[str, Any]:
        return self._http_call("/v1/act", packb(message))


class RemotePolicy:
    """A served policy behind eval's `ChunkPolicy` protocol, so `evaluate()` (and `embodia eval
    ws://...`) runs closed-loop through the server. Batches are sent one observation at a time (the
    openpi protocol has one observation per message)."""

    def __init__(self, url_or_client: str | Client, api_key: str | None = None, seed: int | None = None):
        self.client = url_or_client if isinstance(url_or_client, Client) else Client(url_or_client, api_key)
        md = self.client.metadata
        try:
            self.chunk_size = int(md["chunk_size"])
            self.n_action_steps = int(md.get("n_action_steps", self.chunk_size))
            self.embodiment = str(md["embodiment"])
        except KeyError as exc:
            raise ServerError(f"the server's metadata lacks {exc} (is it an embodia server?)") from None
        self._default = self.embodiment
        self.embodiments = tuple(md.get("embodiments", {self.embodiment: None}))
        self.checkpoint_hash = str((md.get("checkpoint") or {}).get("hash", ""))
        self.seed = seed  # fixed noise for every call (reproducible evaluations)

    def predict_chunk(
        self,
        observations: dict[str, Any] | list[dict[str, Any]],
        pending: np.ndarray | None = None,
        delay: int = 0,
        noise_seed: int | list[int] | None = None,
    ) -> np.ndarray:
        """One request per observation; `noise_seed` (one per observation, as the executor passes them)
        goes on the wire as each request's `seed`, so a served policy samples the same noise as the
        same policy run locally. Without it, the client's fixed `seed` (or none)."""
        if isinstance(observations, dict):
            observations = [observations]
        seeds = [noise_seed] if isinstance(noise_seed, int) else noise_seed
        if seeds is not None and len(seeds) != len(observations):
            raise ValueError(
                f"noise_seed needs one seed per observation ({len(observations)}), got {len(seeds)}"
            )
        # `evaluate` may switch `embodiment` to the one its suite runs; only then name it on the wire.
        embodiment = None if self.embodiment == self._default else self.embodiment
        chunks = []
        for i, obs in enumerate(observations):
            p = None if pending is None else np.asarray(pending)[i] if np.ndim(pending) == 3 else pending
            seed = self.seed if seeds is None else int(seeds[i])
            chunks.append(self.client.act(obs, pending=p, delay=delay, seed=seed, embodiment=embodiment))
        return np.stack(chunks)

    @property
    def image_size(self) -> int | None:
        """Camera height the served policy was trained on, from the server's metadata (None: unsaid)."""
        for key, feat in (self.client.metadata.get("observation") or {}).items():
            if key.startswith("observation.images.") and feat.get("shape"):
                return int(feat["shape"][0])
        return None

    def reset(self) -> None:
        """The server is stateless between requests."""

    def close(self) -> None:
        self.client.close()

    def __repr__(self) -> str:
        return f"RemotePolicy({self.client.url!r}, chunk {self.chunk_size}, executes {self.n_action_steps})"
