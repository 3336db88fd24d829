"""`embodia serve`: a policy behind openpi's websocket protocol and a small HTTP API, on one port.

    ws://HOST:PORT/        openpi protocol: on connect the server sends its metadata; each binary
                           msgpack observation is answered with {"actions": (H, d) float32,
                           "server_timing": {"infer_ms", ...}}. A bad message gets a text frame with
                           the error, then that connection (only) is closed.
    GET  /healthz          200 {"status": "ok", "ready": true} (no API key needed: for load balancers
                           and scripts); the port opens only once the model is loaded and warmed up
    GET  /v1/metadata      the same metadata as JSON
    POST /v1/act           one observation as JSON (arrays as nested lists; at most MAX_JSON_BYTES) or
                           msgpack, by Content-Type; the reply uses the same encoding (or the one
                           `Accept` names)

Metadata and requests are described in serve/schema.py; the codec in serve/protocol.py. With an
`ObsMap` (`embodia serve --obs-map`, serve/openpi.py) requests come in an openpi policy's keys
(`observation/image`, `prompt`, ...), are renamed to embodia's before they are checked, and the reply is
openpi's: the chunk under the map's action key ("actions") and `server_timing`.

Safety at the boundary: binds 127.0.0.1 unless told otherwise, and any other address requires an API
key (`Authorization: Api-Key <key>`, as openpi-client sends it, or `Bearer <key>`); messages larger
than `max_message_bytes` are refused before they are buffered; no pickle. Inference runs in a worker
thread under a first-come-first-served lock (the model is not re-entrant, and one request at a time in
arrival order keeps latency predictable), so the event loop keeps answering health checks and other
connections meanwhile.
"""

from __future__ import annotations

import hmac
import inspect
import itertools
import json
import logging
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio.to_thread
import numpy as np
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect
from starlette.websockets import WebSocketDisconnect, WebSocketState

from embodia.net import is_loopback
from embodia.serve.openpi import ObsMap
from embodia.serve.process import IdleTrimmer, model_threads, tune_allocator, tune_interpreter
from embodia.serve.protocol import ProtocolError, packb, to_jsonable, unpackb
from embodia.serve.schema import STATE, TASK, RequestError, ServedSpec, metadata, parse_request
from embodia.serve.transport import uvicorn_config

log = logging.getLogger("embodia.serve")

DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# JSON is parsed item by item holding the interpreter lock (~20 ms per MB, stalling every client), so
# JSON bodies are kept small: enough for the trained 96 x 96 cameras as nested lists; larger images go
# as msgpack, whose numpy arrays cost nothing to decode.
MAX_JSON_BYTES = 256 * 1024
MSGPACK_TYPES = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")
JSON_TYPES = ("application/json",)
# Websocket close codes (RFC 6455 section 7.4.1).
CLOSE_UNSUPPORTED = 1003  # a text frame where binary msgpack was expected
CLOSE_POLICY = 1008  # bad request / bad API key
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
# Instructions ("warm up" repeated) whose token counts fall in each of the fast sampler's language
# buckets (policy/fast.py, 8 tokens wide up to 32): every trace a batch-1 request can need is built.
WARM_UP_LENGTHS = (1, 6, 10, 20)
WORKER_THREADS = 8
IDLE_TRIM_S = 2.0  # after this long without a request, freed memory is handed back to the system
# A state farther than this from the training data's mean, in its standard deviations, is refused.
MAX_STATE_SIGMAS = 1000.0


SCOPES = ("catalogue", "off")
MAX_READINGS = 4096  # instructions whose reading is remembered (each costs one encoder call)


class NonFiniteActions(RequestError):
    """The policy's output for a request is NaN or inf: never sent; the client is told why."""


class FifoLock:
    """A lock granted in arrival order. `threading.Lock` promises no order, so under many clients one
    request could keep losing the race; in arrival order a request waits for those ahead of it only."""

    def __init__(self):
        self._cond = threading.Condition()
        self._next_ticket = 0
        self._now_serving = 0

    def __enter__(self) -> None:
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            while ticket != self._now_serving:
                self._cond.wait()

    def __exit__(self, *exc) -> None:
        with self._cond:
            self._now_serving += 1
            self._cond.notify_all()


class InferenceService:
    """The policy and everything that touches it; its methods run in worker threads."""

    def __init__(
        self,
        policy,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        scope: str = "off",
        obs_map: ObsMap | None = None,
    ):
        from embodia import __version__

        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
        self.policy = policy
        self.scope = scope
        self._readings: dict[str, Any] = {}  # instruction -> embodia.eval.scope.Reading
        self.spec = ServedSpec.from_policy(policy)
        self.obs_map = obs_map
        if obs_map is not None:
            _check_obs_map(obs_map, self.spec)
        self.max_message_bytes = int(max_message_bytes)
        self.metadata = {
            **metadata(self.spec, self.max_message_bytes, __version__),
            "max_json_bytes": min(MAX_JSON_BYTES, self.max_message_bytes),
            # True: the policy keeps state between a connection's requests (one connection, one episode).
            "stateful": bool(getattr(policy, "stateful", False)),
        }
        if obs_map is not None:  # what an openpi client sends, and where the reply's chunk is
            self.metadata["obs_map"] = {"keys": {dst: src for src, dst in obs_map.keys},
                                        "actions": obs_map.action_key}  # fmt: skip
        self.metadata_msgpack = packb(self.metadata)
        self._lock = FifoLock()
        self._trimmer = IdleTrimmer(IDLE_TRIM_S)
        # A stateful policy (a LeRobot Diffusion's observation history, ACT's temporal ensemble) keeps
        # one episode per websocket connection: its requests are that episode's steps, in order.
        self._episodes = "episodes" in inspect.signature(policy.predict_chunk).parameters
        self._sessions = itertools.count(1)

    def new_session(self) -> list[int]:
        """[session id, requests so far]: one per connection, passed back to `act`."""
        return [next(self._sessions), 0]

    def act(self, message: Any, session: list[int] | None = None, read: bool = True) -> dict[str, Any]:
        """Validate one decoded observation map and return the reply map (arrays as numpy). `session`
        (from `new_session`; None: a one-request episode, as over HTTP) orders a connection's requests.
        `read`: the instruction goes through the scope check (when the service has one). With an
        obs map, `message` is in its server keys and the reply is openpi's."""
        t0 = time.perf_counter()
        self._trimmer.touch()
        if self.obs_map is not None:
            message = self.obs_map.from_server(message)
        req = parse_request(message, self.spec)
        self._prepare(req, read)
        with self._lock:
            t1 = time.perf_counter()
            session = session if session is not None else self.new_session()
            episode = {"episodes": [(session[0], session[1])]} if self._episodes else {}
            chunk = self.policy.predict_chunk(
                [req.observation],
                embodiment=req.embodiment,
                noise_seed=None if req.seed is None else [req.seed],
                pending=req.pending,
                delay=req.delay,
                **episode,
            )
            session[1] += 1
            infer_ms = (time.perf_counter() - t1) * 1e3
        actions = np.ascontiguousarray(np.asarray(chunk, dtype=np.float32)[0])
        if not np.all(np.isfinite(actions)):  # nothing non-finite leaves the server
            state = np.abs(np.asarray(req.observation[STATE], np.float64))
            raise NonFiniteActions(
                "the policy's actions for this observation are not finite (NaN or inf), so none are "
                f"returned; the largest |observation.state| value is {state.max():.3g}: check its units "
                f"({self.spec.embodiments[req.embodiment].state_dim} values, as in /v1/metadata)"
            )
        timing = {"infer_ms": infer_ms, "server_ms": (time.perf_counter() - t0) * 1e3}
        if self.obs_map is not None:
            return {self.obs_map.action_key: actions, "server_timing": timing}
        return {"actions": actions, "embodiment": req.embodiment, "server_timing": timing}

    def _prepare(self, req, read: bool = True) -> None:
        """The request's own work, done before it queues for the model (so one client's large image or
        new instruction does not stall the others): images fitted to the model's input, the
        instruction read against the task catalogue (scope "catalogue") and encoded into the encoder's
        cache."""
        self._check_state_range(req)
        if read:
            self._read_instruction(req)
        size = self.spec.model.get("image_size")
        if size:
            from embodia.policy.inputs import fit_image

            for cam in self.spec.embodiments[req.embodiment].cameras:
                req.observation[cam] = fit_image(req.observation[cam], int(size))
        encoder = getattr(self.policy, "encoder", None)
        if encoder is not None and hasattr(encoder, "encode"):
            encoder.encode([req.observation[TASK]])

    def _read_instruction(self, req) -> None:
        """Scope "catalogue", for the tabletop's SO-101: an instruction outside the task catalogue is
        refused (a 4xx naming the closest tasks); free text inside it reaches the policy in the matched
        task's catalogue phrasing (embodia.eval.scope)."""
        encoder = getattr(self.policy, "encoder", None)
        if self.scope != "catalogue" or req.embodiment != "so101" or not hasattr(encoder, "encode"):
            return
        from embodia.eval.scope import read_instruction

        text = req.observation[TASK]
        reading = self._readings.get(text)
        if reading is None:
            reading = read_instruction(text, encoder)
            if len(self._readings) >= MAX_READINGS:
                self._readings.clear()
            self._readings[text] = reading
        if not reading.in_scope:
            raise RequestError(reading.refusal() + " No action was computed.")
        if not reading.exact:
            req.observation[TASK] = reading.grounded

    def _check_state_range(self, req) -> None:
        """A state thousands of standard deviations from what the policy was trained on is in other
        units (or garbage): refused before it costs an inference (whose actions would be meaningless,
        or not finite)."""
        info = getattr(self.policy, "embodiments", {}).get(req.embodiment)
        norm = getattr(info, "normalizer", None)
        if norm is None:
            return
        import torch

        state = np.asarray(req.observation[STATE], np.float64)
        # The policy's own normalisation (a dimension that never varied in training stays raw).
        z = np.abs(norm.normalize_state(torch.from_numpy(state)).numpy())
        i = int(np.argmax(z))
        if z[i] > MAX_STATE_SIGMAS:
            names = getattr(info, "state_names", None) or []
            name = names[i] if i < len(names) else f"[{i}]"
            raise RequestError(
                f"'{STATE}' {name} = {state[i]:.4g} lies {z[i]:.3g} standard deviations from the values "
                f"this policy was trained on (mean {norm.state_mean[i]:.4g}, std {norm.state_std[i]:.4g}): "
                "check its units (the metadata lists the state's names; SO-101 joints are radians)"
            )

    def warm_up(self) -> None:
        """One request per embodiment, built from the metadata alone, before the server answers
        anything: the first inference (tracing, allocation, the encoder's first call) costs seconds, and
        a server that says it is healthy should answer at its usual speed."""
        for name, view in self.spec.embodiments.items():
            obs: dict[str, Any] = {"embodiment": name}
            for key, f in view.features.items():
                if key != TASK:
                    obs[key] = np.zeros(f["shape"], np.uint8 if f["dtype"] == "uint8" else np.float32)
            for words in WARM_UP_LENGTHS:  # instructions of 4, 14, 22 and 32+ tokens
                message = obs | {TASK: " ".join(["warm up"] * words)}
                if self.obs_map is not None:
                    message = self.obs_map.rename_to_server(message)
                try:
                    self.act(message, read=False)
                except NonFiniteActions as exc:  # said to the client of any such request; noted here
                    log.warning("warm-up request for %s: %s", name, exc)

    def act_encoded(
        self, body: bytes, json_body: bool = False, session: list[int] | None = None
    ) -> dict[str, Any]:
        """Decode (msgpack, or JSON with arrays as nested lists) and act. Runs in the worker thread
        too: decoding a large JSON body takes long enough to stall the event loop."""
        try:
            message = unpackb(body) if not json_body else json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RequestError(f"the body is not valid JSON ({exc})") from None
        except RecursionError:
            raise RequestError("the message nests too deeply") from None
        try:
            return self.act(message, session)
        except RecursionError:  # deeply nested lists where an array was expected
            raise RequestError("the message nests too deeply") from None


def _check_obs_map(obs_map: ObsMap, spec: ServedSpec) -> None:
    """Every embodia key the map names is one this policy takes (of any of its embodiments)."""
    known = {key for view in spec.embodiments.values() for key in view.features} | {TASK}
    unknown = [src for src, _ in obs_map.keys if src not in known]
    if unknown:
        raise ValueError(
            f"--obs-map names {', '.join(unknown)}, which this policy does not take; it takes {sorted(known)}"
        )


def _authorized(headers, api_key: str | None) -> bool:
    if api_key is None:
        return True
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() not in ("api-key", "bearer"):
        return False
    # Constant-time comparison: response timing must not reveal how much of a guessed key was right.
    return hmac.compare_digest(token.strip().encode(), api_key.encode())


def _error_text(exc: BaseException) -> tuple[str, int]:
    """(message, close code): client mistakes say what was expected; internal errors are logged. The
    failed request's frames are then cleared (`_release`)."""
    try:
        if isinstance(exc, ProtocolError | RequestError | ValueError):
            return f"bad request: {exc}", CLOSE_POLICY
        log.exception("inference failed")
        return f"internal server error: {type(exc).__name__}: {exc}", CLOSE_INTERNAL
    finally:
        _release(exc)


def _release(exc: BaseException) -> None:
    """Drop the locals of the frames a failed request's exceptions (and those they chain) hold: the
    message's bytes and its decoded objects. The exception reaches the event loop through the worker
    thread's future, a reference cycle that only the cyclic collector frees, so a client sending bad
    multi-MB messages back to back would otherwise keep many of them resident at once."""
    stack, seen = [exc], set()
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        traceback.clear_frames(e.__traceback__)  # (frames still executing are left as they are)
        stack += [e.__context__, e.__cause__]


def create_app(
    service: InferenceService | Any,
    api_key: str | None = None,
    max_message_bytes: int | None = None,
) -> FastAPI:
    """The ASGI app serving `service` (an InferenceService, or a Policy that is wrapped in one)."""
    if not isinstance(service, InferenceService):
        service = InferenceService(service, max_message_bytes or DEFAULT_MAX_MESSAGE_BYTES)
    limit = service.max_message_bytes
    if api_key is not None and not api_key.strip():
        raise ValueError("the API key is empty")
    app = FastAPI(title="embodia policy server", version=str(service.metadata["version"]))
    app.state.service = service
    unauthorized = "missing or wrong API key (send 'Authorization: Api-Key <key>' or 'Bearer <key>')"

    @app.websocket("/")
    async def websocket_endpoint(ws: WebSocket) -> None:
        if not _authorized(ws.headers, api_key):
            await ws.close(code=CLOSE_POLICY, reason="missing or wrong API key")  # before accept: HTTP 403
            return
        await ws.accept()
        prev_total_ms = None
        session = service.new_session()
        try:
            await ws.send_bytes(service.metadata_msgpack)
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes")
                if data is None:
                    await _fail(ws, "expected binary msgpack frames, got a text frame", CLOSE_UNSUPPORTED)
                    return
                if len(data) > limit:  # uvicorn enforces this earlier; other ASGI servers may not
                    await _fail(
                        ws, f"message of {len(data)} bytes exceeds the limit of {limit}", CLOSE_TOO_BIG
                    )
                    return
                t0 = time.perf_counter()
                try:
                    reply = await anyio.to_thread.run_sync(
                        service.act_encoded, data, False, session, limiter=_limiter(app)
                    )
                except Exception as exc:  # every failure is reported to this client only
                    await _fail(ws, *_error_text(exc))
                    return
                if prev_total_ms is not None:
                    reply["server_timing"]["prev_total_ms"] = prev_total_ms
                await ws.send_bytes(packb(reply))
                prev_total_ms = (time.perf_counter() - t0) * 1e3
        except WebSocketDisconnect:
            return  # the client left, e.g. while its request was being computed: nothing to answer

    @app.get("/healthz")
    async def healthz() -> dict:
        # `serve` warms the model up before it binds the port: an answer here means ready to act.
        return {"status": "ok", "ready": True}

    @app.get("/")
    async def index() -> dict:
        return {
            "server": "embodia",
            "websocket": "/ (openpi protocol)",
            "endpoints": ["/healthz", "/v1/metadata", "/v1/act"],
        }

    @app.get("/v1/metadata")
    async def get_metadata(request: Request) -> Response:
        if not _authorized(request.headers, api_key):
            return JSONResponse({"error": unauthorized}, status_code=401)
        return JSONResponse(service.metadata)

    @app.post("/v1/act")
    async def act(request: Request) -> Response:
        if not _authorized(request.headers, api_key):
            return JSONResponse({"error": unauthorized}, status_code=401)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in MSGPACK_TYPES + JSON_TYPES:
            return JSONResponse(
                {"error": f"Content-Type must be application/json or application/msgpack, got {ctype!r}"},
                status_code=415,
            )
        try:
            body = await _read_limited(
                request, limit if ctype in MSGPACK_TYPES else min(limit, MAX_JSON_BYTES)
            )
        except ClientDisconnect:  # gone mid-body (or timed out): nobody to answer, nothing to log
            return Response(status_code=400)
        if body is None:
            text = f"request body exceeds the limit of {limit} bytes"
            if ctype in JSON_TYPES and limit > MAX_JSON_BYTES:
                text = (f"a JSON body may be at most {MAX_JSON_BYTES} bytes (JSON is slow to parse); "
                        f"send larger requests as msgpack (up to {limit} bytes)")  # fmt: skip
            return JSONResponse({"error": text}, status_code=413)
        accept = request.headers.get("accept", "")
        as_msgpack = any(t in accept for t in MSGPACK_TYPES) or (
            ctype in MSGPACK_TYPES and "json" not in accept
        )
        try:
            reply = await anyio.to_thread.run_sync(
                service.act_encoded, body, ctype in JSON_TYPES, limiter=_limiter(app)
            )
        except Exception as exc:  # reported to this client; internal errors are logged too
            text, code = _error_text(exc)
            return JSONResponse({"error": text}, status_code=422 if code == CLOSE_POLICY else 500)
        if as_msgpack:
            return Response(packb(reply), media_type=MSGPACK_TYPES[0])
        return JSONResponse(to_jsonable(reply))

    return app


def _limiter(app: FastAPI) -> anyio.CapacityLimiter:
    """At most WORKER_THREADS requests are decoded, checked and prepared at once (anyio's default
    pool is 40 threads: each in-flight request holds its message, and every thread that touched torch
    keeps its own allocator arena)."""
    if getattr(app.state, "limiter", None) is None:
        app.state.limiter = anyio.CapacityLimiter(WORKER_THREADS)
    return app.state.limiter


async def _fail(ws: WebSocket, text: str, code: int) -> None:
    """openpi's convention: the error as a text frame, then close this connection."""
    if ws.client_state != WebSocketState.CONNECTED:
        return
    try:
        await ws.send_text(text)
        # A close reason is limited to 123 bytes; the full text went in the frame above.
        await ws.close(code=code, reason=text[:120])
    except (WebSocketDisconnect, RuntimeError):
        pass  # the client left first


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None once it exceeds `limit` (checked while streaming, so nothing big is buffered)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():  # ClientDisconnect if the client leaves mid-body
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def check_binding(host: str, api_key: str | None) -> None:
    if not is_loopback(host) and not api_key:
        raise ValueError(
            f"serving on {host} makes the policy reachable from other machines: give --api-key KEY "
            "(or set EMBODIA_API_KEY); clients send it as 'Authorization: Api-Key KEY'"
        )


def serve(
    checkpoint: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    log_level: str = "info",
    scope: str = "catalogue",
    obs_map: ObsMap | None = None,
    threads: int | None = None,
) -> None:
    """Load `checkpoint` (a folder or a shipped name such as 'base'; None: the shipped base) and serve
    it until interrupted. `threads`: torch's threads for the model (None: `model_threads()`). `scope`: "catalogue" reads SO-101 instructions against the task catalogue
    (refused outside it, grounded inside it), "off" passes them to the policy as sent. `obs_map`:
    requests in an openpi policy's keys, openpi's reply (serve/openpi.py)."""
    import uvicorn

    from embodia.policy.loading import load_policy

    check_binding(host, api_key)
    if max_message_bytes <= 0:
        raise ValueError(f"max_message_bytes must be positive, got {max_message_bytes}")
    check_port(port)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    tune_allocator()
    policy = load_policy(checkpoint)
    import torch

    # Once the policy has loaded (a failed start leaves the calling process as it was), before the
    # warm-up traces the model: threads, and the interpreter's switch interval (serve/process.py).
    torch.set_num_threads(threads or model_threads())
    tune_interpreter()
    service = InferenceService(policy, max_message_bytes, scope=scope, obs_map=obs_map)
    service.warm_up()
    app = create_app(service, api_key=api_key)
    server = uvicorn.Server(uvicorn_config(app, host, port, max_message_bytes, log_level))
    server.run()
    if not server.started:  # uvicorn logged why (e.g. the port is in use) and gave up
        raise OSError(f"could not listen on {host}:{port} (see the message above; is the port in use?)")


def check_port(port: int) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer in 0..65535, got {port!r}")


@contextmanager
def running_server(
    policy_or_service,
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    log_level: str = "warning",
    scope: str = "off",
    obs_map: ObsMap | None = None,
) -> Iterator[str]:
    """Serve in a background thread (tests, benchmarks, notebooks); yields 'ws://host:port'.

    Port 0 picks a free port. The server stops when the block exits. `scope` as `serve`'s (default
    "off" here: the building block passes instructions as sent; `embodia serve` checks them);
    `obs_map` as `serve`'s (used when a policy, not a service, is given)."""
    import uvicorn

    check_binding(host, api_key)
    check_port(port)
    service = policy_or_service
    if not isinstance(service, InferenceService):
        service = InferenceService(service, max_message_bytes, scope=scope, obs_map=obs_map)
        service.warm_up()
    app = create_app(service, api_key=api_key)
    server = uvicorn.Server(uvicorn_config(app, host, port, service.max_message_bytes, log_level))
    thread = threading.Thread(target=server.run, name="embodia-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the policy server did not start on {host}:{port}")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()
    try:
        yield f"ws://{host}:{bound[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
