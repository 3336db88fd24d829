"""Load and abuse test of `embodia serve`: N concurrent clients on loopback for T seconds.

    python benchmarks/serve_load.py [--checkpoint DIR] [--clients 16] [--seconds 30] [--bad-every 5]

The server runs as its own process (`python -m embodia.cli serve`, with an API key), exactly as a user
starts it. Each client keeps one connection and sends valid observations built from the server's
metadata alone; every `--bad-every`-th request of a client is instead one of the malformed inputs
below, in turn. A malformed input must get a clear error (a text frame on the websocket, a 4xx over
HTTP, HTTP 403 for a wrong key) and cost only its own connection: the client reconnects and goes on.
One client in four speaks HTTP (`POST /v1/act`, msgpack) instead of the websocket.

Prints requests/s, latency p50/p99 of the valid requests, the malformed inputs sent (by kind) with how
many were answered with a clear error, unexpected errors, and whether the server survived (the process
is alive and answers /healthz and a valid request after the run). Exit status 1 if it did not, or if
any malformed input went unanswered or any valid request failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np

from embodia.serve.client import _legacy_flag
from embodia.serve.protocol import packb, unpackb

API_KEY = "load-test-key"
MAX_MB = 2.0  # a small limit so that the oversized message stays cheap to build

BAD_KINDS = (
    "not_msgpack",
    "wrong_shape",
    "wrong_dtype",
    "object_dtype",
    "nan_state",
    "inf_image",
    "missing_key",
    "wrong_rank",
    "oversized",
    "text_frame",
    "not_a_map",
    "wrong_api_key",
    "thin_image",  # (1, W, 3): refused by its aspect ratio before any work (once padded to W x W)
    "state_1e30",  # refused before inference (once: NaN actions returned as success)
    "embodiment_list",  # unhashable: once a 500
    "deep_msgpack",  # a list nested 100,000 deep
    "list_flood",  # 300,000 small integers as a plain msgpack list (seconds of decoding, once)
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def valid_obs(meta: dict, rng: np.random.Generator) -> dict:
    """An observation built from the metadata alone: keys, shapes and dtypes."""
    obs = {}
    for key, f in meta["observation"].items():
        if f["dtype"] == "str":
            obs[key] = "pick up the red block"
        elif f["dtype"] == "uint8":
            obs[key] = rng.integers(0, 256, f["shape"], dtype=np.uint8)
        else:
            obs[key] = (rng.normal(size=f["shape"]) * 0.3).astype(f["dtype"])
    return obs


def bad_message(kind: str, meta: dict, rng: np.random.Generator) -> bytes | str:
    """One malformed request of `kind`, as the bytes (or text) that go on the wire."""
    obs = valid_obs(meta, rng)
    state_key = next(k for k, f in meta["observation"].items() if f["dtype"] not in ("str", "uint8"))
    image_key = meta["cameras"][0]
    if kind == "not_msgpack":
        return b"\xc1" + rng.bytes(64)  # 0xc1 is never used by msgpack
    if kind == "wrong_shape":
        obs[state_key] = np.zeros(len(obs[state_key]) + 3, np.float32)
    elif kind in ("wrong_dtype", "object_dtype"):
        # Our own encoder refuses these dtypes, so the array map is written by hand: complex numbers, or
        # an object array (whose bytes a careless server would unpickle).
        dtype, data = (
            ("<c8", np.zeros(4, np.complex64).tobytes()) if kind == "wrong_dtype" else ("|O", b"\x80\x04N.")
        )
        obs[state_key] = {b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": [4]}
    elif kind == "nan_state":
        obs[state_key][0] = np.nan
    elif kind == "inf_image":
        obs[image_key] = np.full(obs[image_key].shape, np.inf, np.float32)
    elif kind == "missing_key":
        del obs[state_key]
    elif kind == "wrong_rank":
        obs[image_key] = obs[image_key][..., 0]
    elif kind == "oversized":
        obs["padding"] = rng.bytes(int(MAX_MB * 1024 * 1024) + 1024)
    elif kind == "text_frame":
        return json.dumps({"state": [0.0]})
    elif kind == "not_a_map":
        return packb([1, 2, 3])
    elif kind == "thin_image":
        obs[image_key] = rng.integers(0, 256, (1, 7_850, 3), dtype=np.uint8)
    elif kind == "state_1e30":
        obs[state_key] = np.full_like(obs[state_key], 1e30)
    elif kind == "embodiment_list":
        obs["embodiment"] = ["so101"]
    elif kind == "deep_msgpack":
        return b"\x81" + packb("task") + b"\x91" * 100_000 + b"\x00"
    elif kind == "list_flood":
        obs["task"] = [0] * 300_000
    return packb(obs)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.slowest: list[tuple[float, str, int]] = []  # (latency, client kind, request number)
        self.sent_bad: Counter = Counter()
        self.clear_bad: Counter = Counter()
        self.unexpected: list[str] = []

    def add(self, latency=None, bad=None, clear=False, unexpected=None, where=("", 0)):
        with self.lock:
            if latency is not None:
                self.latencies.append(latency)
                self.slowest = sorted([*self.slowest, (latency, *where)], reverse=True)[:5]
            if bad is not None:
                self.sent_bad[bad] += 1
                self.clear_bad[bad] += int(clear)
            if unexpected:
                self.unexpected.append(unexpected)


def ws_client(url: str, deadline: float, bad_every: int, seed: int, stats: Stats) -> None:
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    rng = np.random.default_rng(seed)
    headers = {"Authorization": f"Api-Key {API_KEY}"}
    ws, meta, n, k = None, None, 0, seed
    while time.monotonic() < deadline:
        if ws is None:
            ws = connect(url, additional_headers=headers, compression=None, max_size=None, **_legacy_flag())
            meta = unpackb(ws.recv(timeout=30))
        n += 1
        if bad_every and n % bad_every == 0:
            kind = BAD_KINDS[k % len(BAD_KINDS)]
            k += 1
            if kind == "wrong_api_key":
                try:
                    connect(
                        url, additional_headers={"Authorization": "Api-Key wrong"}, **_legacy_flag()
                    ).close()
                    stats.add(bad=kind, clear=False)
                except InvalidStatus as exc:
                    stats.add(bad=kind, clear=exc.response.status_code == 403)
                continue
            try:
                ws.send(bad_message(kind, meta, rng))
                reply = ws.recv(timeout=30)
                # openpi's convention: the error is a text frame, then the server closes.
                stats.add(bad=kind, clear=isinstance(reply, str) and len(reply) > 10)
            except ConnectionClosed as exc:
                # Closed with a reason, or with the standard code for "message too big" (1009).
                rcvd = exc.rcvd
                stats.add(bad=kind, clear=rcvd is not None and (bool(rcvd.reason) or rcvd.code == 1009))
            ws.close()
            ws = None
            continue
        t0 = time.perf_counter()
        try:
            ws.send(packb(valid_obs(meta, rng)))
            reply = unpackb(ws.recv(timeout=30))
            actions = np.asarray(reply["actions"])
            if actions.shape != tuple(meta["action"]["shape"]) or not np.isfinite(actions).all():
                stats.add(unexpected=f"bad reply: actions {actions.shape}")
            else:
                stats.add(latency=time.perf_counter() - t0, where=("ws", n))
        except Exception as exc:  # noqa: BLE001 - every failure of a valid request is a finding
            stats.add(unexpected=f"ws valid request failed: {type(exc).__name__}: {exc}")
            ws = None
    if ws is not None:
        ws.close()


def warm_up(url: str) -> None:
    from websockets.sync.client import connect

    with connect(url, additional_headers={"Authorization": f"Api-Key {API_KEY}"}, max_size=None) as ws:
        meta = unpackb(ws.recv(timeout=30))
        ws.send(packb(valid_obs(meta, np.random.default_rng(0))))
        reply = ws.recv(timeout=300)
        if not isinstance(reply, bytes):
            raise RuntimeError(f"the warm-up request failed: {reply}")


def http_client(base: str, deadline: float, bad_every: int, seed: int, stats: Stats) -> None:
    rng = np.random.default_rng(seed)
    meta = json.loads(_http(base + "/v1/metadata", None, {"Authorization": f"Bearer {API_KEY}"})[1])
    n, k = 0, seed
    while time.monotonic() < deadline:
        n += 1
        headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/msgpack"}
        bad = bad_every and n % bad_every == 0
        if bad:
            kind = BAD_KINDS[k % len(BAD_KINDS)]
            k += 1
            if kind == "text_frame":
                kind = "not_msgpack"  # HTTP has no frames; send garbage instead
            if kind == "wrong_api_key":
                headers["Authorization"] = "Bearer wrong"
                body = packb(valid_obs(meta, rng))
            else:
                body = bad_message(kind, meta, rng)
            status, text = _http(base + "/v1/act", body, headers)
            stats.add(bad=kind, clear=400 <= status < 500 and len(text) > 10)
            continue
        t0 = time.perf_counter()
        status, text = _http(base + "/v1/act", packb(valid_obs(meta, rng)), headers)
        if status != 200:
            stats.add(unexpected=f"http valid request: HTTP {status}: {text[:200]!r}")
            continue
        actions = np.asarray(unpackb(text)["actions"])
        if actions.shape != tuple(meta["action"]["shape"]):
            stats.add(unexpected=f"http bad reply shape {actions.shape}")
        else:
            stats.add(latency=time.perf_counter() - t0, where=("http", n))


def _http(url: str, body: bytes | None, headers: dict) -> tuple[int, bytes]:
    if body is not None and len(body) > MAX_MB * 1024 * 1024:
        return _http_oversized(url, body, headers)
    req = urllib.request.Request(
        url, data=body, headers=headers, method="POST" if body is not None else "GET"
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _http_oversized(url: str, body: bytes, headers: dict) -> tuple[int, bytes]:
    """POST a body over the limit. The server answers 413 from Content-Length without reading the body
    and closes, so the upload breaks off (as with any HTTP server); the answer is read all the same."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.putrequest("POST", parts.path)
        for k, v in {**headers, "Content-Length": str(len(body))}.items():
            conn.putheader(k, v)
        conn.endheaders()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.send(body)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def start_server(checkpoint: str | None, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "embodia.cli", "serve", "--port", str(port), "--api-key", API_KEY,
           "--max-message-mb", str(MAX_MB), "--log-level", "error"]  # fmt: skip
    if checkpoint:
        cmd.insert(4, checkpoint)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited at start:\n{proc.stderr.read()}")
        try:
            if _http(f"http://127.0.0.1:{port}/healthz", None, {})[0] == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the server did not answer /healthz within 120 s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="policy folder (default: the shipped base)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--bad-every", type=int, default=5, help="every k-th request of a client is malformed")
    ap.add_argument("--out", default=None, help="also write the figures as JSON here")
    args = ap.parse_args()
    if args.clients < 1 or args.seconds <= 0 or args.bad_every < 0:
        ap.error("--clients >= 1, --seconds > 0 and --bad-every >= 0 are required")

    os.environ.setdefault("MUJOCO_GL", "egl")
    port = free_port()
    server = start_server(args.checkpoint, port)
    stats = Stats()
    try:
        # The first inference traces the model (seconds); it is not part of the load figures.
        warm_up(f"ws://127.0.0.1:{port}/")
        deadline = time.monotonic() + args.seconds
        threads = []
        for i in range(args.clients):
            if i % 4 == 3:
                target, url = http_client, f"http://127.0.0.1:{port}"
            else:
                target, url = ws_client, f"ws://127.0.0.1:{port}/"
            threads.append(
                threading.Thread(target=_guard(target, stats), args=(url, deadline, args.bad_every, i, stats))
            )
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        # Survival: the process lives, answers /healthz and serves one more valid request.
        alive = server.poll() is None
        healthy = alive and _http(f"http://127.0.0.1:{port}/healthz", None, {})[0] == 200
        after = Stats()
        if healthy:
            ws_client(f"ws://127.0.0.1:{port}/", time.monotonic() + 0.5, 0, 999, after)
        survived = healthy and bool(after.latencies) and not after.unexpected
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()

    lat = np.array(stats.latencies) * 1e3
    result = {
        "clients": args.clients,
        "seconds": round(wall, 1),
        "valid_requests": len(lat),
        "requests_per_s": round(len(lat) / wall, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None,
        "malformed_sent": dict(stats.sent_bad),
        "malformed_total": sum(stats.sent_bad.values()),
        "malformed_clear_error": sum(stats.clear_bad.values()),
        "unexpected_errors": len(stats.unexpected),
        "server_survived": survived,
        "server_crashes": 0 if alive else 1,
    }
    _print(result, stats)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    ok = survived and not stats.unexpected and result["malformed_clear_error"] == result["malformed_total"]
    return 0 if ok else 1


def _guard(fn, stats: Stats):
    def run(*a):
        try:
            fn(*a)
        except Exception as exc:  # noqa: BLE001 - a client thread dying is itself a finding
            stats.add(unexpected=f"client thread died: {type(exc).__name__}: {exc}")

    return run


def _print(result: dict, stats: Stats) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"embodia serve under load: {result['clients']} clients x {result['seconds']} s")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key in ("valid_requests", "requests_per_s", "p50_ms", "p99_ms", "malformed_total",
                "malformed_clear_error", "unexpected_errors", "server_crashes", "server_survived"):  # fmt: skip
        table.add_row(key, str(result[key]))
    console.print(table)
    kinds = Table(title="malformed inputs sent (answered with a clear error / sent)")
    kinds.add_column("kind")
    kinds.add_column("clear / sent", justify="right")
    for kind in sorted(stats.sent_bad):
        kinds.add_row(kind, f"{stats.clear_bad[kind]} / {stats.sent_bad[kind]}")
    console.print(kinds)
    slow = ", ".join(f"{lat * 1e3:.0f} ms ({kind} request {n})" for lat, kind, n in stats.slowest)
    console.print(f"slowest valid requests: {slow}")
    for line in stats.unexpected[:10]:
        console.print(f"[red]unexpected:[/] {line}")


if __name__ == "__main__":
    sys.exit(main())
