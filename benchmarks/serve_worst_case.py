"""Worst-case requests against `embodia serve`: what one hostile or careless client costs the others.

    python benchmarks/serve_worst_case.py [--checkpoint DIR] [--prompts 10000] [--out FILE]

The server runs as its own process (`python -m embodia.cli serve`, default message limit, an API key),
its stderr captured. Then, in order:

1. a valid websocket client alone: latency p50 / p99 over `--valid` requests;
2. for each worst-case kind below, a second client sends one such request at a time, back to back,
   while the valid client sends `--valid` requests: the valid client's p99, the worst-case request's
   own answer and latency, and the server's peak RSS (VmHWM) after the kind;
3. `--prompts` distinct prompts in the catalogue's words (one after another; the few the scope check
   refuses are counted): RSS after them;
4. the malformed corpus (`serve_load.BAD_KINDS` and the kinds below, over websocket and HTTP): how
   many were answered with a clear error (text frame + close, close 1009, or HTTP 4xx with a message);
5. 10 s idle: steady-state RSS; survival (process alive, /healthz, one more valid request); and whether
   the server's log holds a Python traceback.

Prints a table; `--out` writes the figures as JSON. Exit status 1 if the server died, logged a
traceback, or left a malformed input without a clear answer. Compare two versions of the server by
running this script with `--src DIR` pointing at another checkout's `src/`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embodia.serve.client import _legacy_flag  # noqa: E402
from embodia.serve.protocol import packb, unpackb  # noqa: E402
from serve_load import API_KEY, BAD_KINDS, bad_message, free_port, valid_obs  # noqa: E402

AUTH = {"Authorization": f"Api-Key {API_KEY}"}
WORST_KINDS = (
    "second_valid",  # the reference: a second client sending valid requests back to back
    "thin_image_23kb",  # (1, W, 3): padded to W x W before resizing in old servers
    "largest_image",  # the largest image the server documents as accepted
    "prompt_4mb",
    "state_1e30",
    "embodiment_list",
    "deep_json",
    "deep_msgpack",
    "json_near_limit",  # a JSON body of numbers just under the limit
    "oversized_17mb",
    "slow_headers",  # 200 connections that never finish their headers
    "disconnect_mid_body",
)
LARGEST_SIDE = 1920  # documented in serve/schema.py (MAX_IMAGE_SIDE)
INFER_MS: list[float] = []  # the server's own inference time of each valid request
SERVER_MS: list[float] = []  # and the time from its decoding to its reply (so: minus the network)


def largest_image_cost(meta: dict, repeats: int = 20) -> float:
    """Median ms this process (one thread, as a server worker) spends decoding, validating and fitting
    the largest accepted image: the work a request does before it waits for the model."""
    import torch

    from embodia.policy.inputs import fit_image
    from embodia.serve.protocol import unpackb as decode

    message = worst_message("largest_image", meta)
    cam, size = meta["cameras"][0], int(meta["model"]["image_size"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    times = []
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            obs = decode(message)
            fit_image(np.asarray(obs[cam]), size)  # parse_request's checks are O(1) for uint8 arrays
            times.append((time.perf_counter() - t0) * 1e3)
    finally:
        torch.set_num_threads(threads)
    return float(np.median(times))


# ------------------------------------------------------------------------------------ the server
def start(src: str | None, checkpoint: str | None, port: int, log: Path) -> subprocess.Popen:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = str(Path(src).resolve())
    cmd = [sys.executable, "-m", "embodia.cli", "serve", "--port", str(port), "--api-key", API_KEY,
           "--log-level", "warning"]  # fmt: skip
    if checkpoint:
        cmd.insert(4, checkpoint)
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited at start:\n{log.read_text()}")
        with contextlib.suppress(OSError):
            if http("GET", port, "/healthz")[0] == 200:
                return proc
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the server did not answer /healthz within 180 s")


def memory(pid: int) -> dict[str, float]:
    """Resident and peak-resident memory of a process, MB (Linux /proc)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return {"rss_mb": round(out["VmRSS"], 1), "peak_mb": round(out["VmHWM"], 1)}


def http(method: str, port: int, path: str, body: bytes | None = None, ctype: str = "application/msgpack",
         timeout: float = 120) -> tuple[int, bytes]:  # fmt: skip
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {**AUTH, "Content-Type": ctype} if body is not None else dict(AUTH)
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def connect(port: int):
    from websockets.sync.client import connect as ws_connect

    url = f"ws://127.0.0.1:{port}/"
    ws = ws_connect(
        url, additional_headers=AUTH, compression=None, max_size=None, open_timeout=60, **_legacy_flag()
    )
    return ws, unpackb(ws.recv(timeout=60))


# --------------------------------------------------------------------------------- the valid client
def valid_latencies(port: int, n: int, seed: int = 0, prompts: list[str] | None = None) -> list[float]:
    rng = np.random.default_rng(seed)
    ws, meta = connect(port)
    out = []
    try:
        for i in range(n):
            obs = valid_obs(meta, rng)
            if prompts is not None:
                obs["task"] = prompts[i]
            t0 = time.perf_counter()
            ws.send(packb(obs))
            reply = ws.recv(timeout=120)
            if not isinstance(reply, bytes) or not np.isfinite(unpackb(reply)["actions"]).all():
                raise RuntimeError(f"a valid request failed: {str(reply)[:200]}")
            out.append(time.perf_counter() - t0)
            timing = unpackb(reply)["server_timing"]
            INFER_MS.append(timing["infer_ms"])
            SERVER_MS.append(timing["server_ms"])
    finally:
        ws.close()
    return out


PREFIXES = ("", "please ", "could you ", "now ", "go ahead and ", "robot, ", "i'd like you to ")
SUFFIXES = ("", " please", " now", " for me", " thanks", ", thank you")


def distinct_prompts(n: int) -> list[str]:
    """`n` distinct instructions in the catalogue's words (every phrasing of every built-in task, both
    template splits, with polite prefixes and suffixes), so nearly all are in scope and each is read,
    encoded and remembered by the server as a new text."""
    from embodia.eval.scope import all_tasks

    phrasings = [t.instruction for t in all_tasks()]
    prompts = [f"{a}{p}{b}" for a in PREFIXES for b in SUFFIXES for p in phrasings]
    if n > len(prompts):
        raise SystemExit(f"--prompts at most {len(prompts)} (distinct catalogue phrasings)")
    return prompts[:n]


def prompt_phase(port: int, prompts: list[str]) -> tuple[int, int]:
    """Send each prompt once with a valid observation: (answered with actions, refused as out of
    scope). A refusal closes the connection (as every error does); the client reconnects."""
    rng = np.random.default_rng(1)
    ws, meta = connect(port)
    answered = refused = 0
    try:
        for text in prompts:
            ws.send(packb(valid_obs(meta, rng) | {"task": text}))
            reply = ws.recv(timeout=120)
            if isinstance(reply, bytes) and np.isfinite(unpackb(reply)["actions"]).all():
                answered += 1
                continue
            if not (isinstance(reply, str) and "outside what this robot's task catalogue offers" in reply):
                raise RuntimeError(f"a catalogue prompt failed: {str(reply)[:200]}")
            refused += 1
            ws.close()
            ws, _ = connect(port)
    finally:
        ws.close()
    return answered, refused


# --------------------------------------------------------------------------------- worst-case kinds
_BUILT: dict[str, bytes] = {}


def worst_message(kind: str, meta: dict) -> bytes:
    """The message of `kind` (built once per process: building must not be what is measured)."""
    if kind not in _BUILT:
        _BUILT[kind] = _build(kind, meta)
    return _BUILT[kind]


def _build(kind: str, meta: dict) -> bytes:
    rng = np.random.default_rng(1)
    obs = valid_obs(meta, rng)
    cam = meta["cameras"][0]
    if kind == "thin_image_23kb":
        obs[cam] = rng.integers(0, 256, (1, 23 * 1024 // 3, 3), dtype=np.uint8)
    elif kind == "largest_image":
        obs[cam] = rng.integers(0, 256, (LARGEST_SIDE, LARGEST_SIDE, 3), dtype=np.uint8)
    elif kind == "prompt_4mb":
        obs["task"] = "pick up the red block " * (4 * 1024 * 1024 // 22)
    elif kind == "state_1e30":
        obs["observation.state"] = np.full_like(obs["observation.state"], 1e30)
    elif kind == "embodiment_list":
        obs["embodiment"] = ["so101"]
    elif kind == "deep_msgpack":
        return _pack_deep(obs)
    elif kind == "oversized_17mb":
        obs["padding"] = rng.bytes(17 * 1024 * 1024)
    return packb(obs)


def _pack_deep(obs: dict) -> bytes:
    """msgpack of `obs` with 'task' replaced by a list nested 100,000 deep (0x91 = fixarray of one)."""
    head = packb({k: v for k, v in obs.items() if k != "task"})
    # A fixmap header counts its entries: add one entry ("task": [[[...]]]).
    n = head[0] & 0x0F
    return bytes([0x80 | (n + 1)]) + head[1:] + packb("task") + b"\x91" * 100_000 + b"\x00"


def send_worst(kind: str, port: int, meta: dict) -> tuple[bool, str]:
    """Send one worst-case request; (answered with a clear error or a valid reply, what came back)."""
    if kind == "second_valid":
        return bool(valid_latencies(port, 1, seed=11)), "actions"
    if kind == "deep_json":
        body = b'{"task": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        status, text = http("POST", port, "/v1/act", body, "application/json")
        return 400 <= status < 500, f"HTTP {status} {text[:80]!r}"
    if kind == "json_near_limit":
        limit = int(meta.get("max_message_bytes", 16 * 1024 * 1024))
        n = (limit - 64) // 2
        body = b'{"task": "x", "observation.state": [' + b"0," * (n - 1) + b"0]}"
        status, text = http("POST", port, "/v1/act", body, "application/json")
        return 400 <= status < 500, f"HTTP {status} {text[:80]!r}"
    if kind == "slow_headers":
        return slow_headers(port, 200)
    if kind == "disconnect_mid_body":
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"POST /v1/act HTTP/1.1\r\nHost: x\r\nAuthorization: Api-Key " + API_KEY.encode()
                      + b"\r\nContent-Type: application/msgpack\r\nContent-Length: 1000000\r\n\r\n"
                      + b"\x00" * 1000)  # fmt: skip
        time.sleep(0.2)
        return True, "sent 1 KB of a 1 MB body, then closed"
    from websockets.exceptions import ConnectionClosed

    ws, _ = connect(port)
    try:
        ws.send(worst_message(kind, meta))
        reply = ws.recv(timeout=120)
        if isinstance(reply, bytes):
            return kind == "largest_image", "actions" if kind == "largest_image" else "actions (no error)"
        return True, reply[:100]
    except ConnectionClosed as exc:
        rcvd = exc.rcvd
        ok = rcvd is not None and (bool(rcvd.reason) or rcvd.code == 1009)
        return ok, f"closed {None if rcvd is None else (rcvd.code, rcvd.reason[:60])}"
    finally:
        ws.close()


def slow_headers(port: int, n: int, wait: float = 15.0) -> tuple[bool, str]:
    """Open n connections that send half a request line and stop; count those the server closed."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    time.sleep(wait)
    closed = 0
    for s in socks:
        s.settimeout(0.05)
        try:
            closed += s.recv(1) == b""
        except TimeoutError:
            pass
        except OSError:
            closed += 1
        s.close()
    return closed == n, f"{closed} of {n} closed by the server within {wait:.0f} s"


def _attack(kind: str, port: int, meta: dict, stop, answers) -> None:
    """The second client, in its own process (its message building must not hold the measuring
    process's interpreter lock): one worst-case request at a time until told to stop."""
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            ok, text = send_worst(kind, port, meta)
        except Exception as exc:  # noqa: BLE001 - the answer (or its absence) is the finding
            ok, text = False, f"{type(exc).__name__}: {exc}"[:120]
        answers.put((ok, text, time.perf_counter() - t0))
        if kind == "slow_headers":
            break


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_kind(kind: str, port: int, meta: dict, n_valid: int, server_pid: int) -> dict:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    stop, queue = ctx.Event(), ctx.Queue()
    attacker = ctx.Process(target=_attack, args=(kind, port, meta, stop, queue), daemon=True)
    attacker.start()
    first = queue.get(timeout=300)  # the attacker is up and its first request answered
    server_cpu, attacker_cpu, t0 = cpu_seconds(server_pid), cpu_seconds(attacker.pid), time.perf_counter()
    first_timing = len(INFER_MS)
    lat = valid_latencies(port, n_valid, seed=7)
    infer, server = np.array(INFER_MS[first_timing:]), np.array(SERVER_MS[first_timing:])
    server_cpu = cpu_seconds(server_pid) - server_cpu
    attacker_cpu, wall = cpu_seconds(attacker.pid) - attacker_cpu, time.perf_counter() - t0
    stop.set()
    answers = [first]
    while attacker.is_alive() or not queue.empty():
        try:
            answers.append(queue.get(timeout=1))
        except Exception:  # noqa: BLE001 - queue.Empty: the attacker finished its last request
            if not attacker.is_alive():
                break
    attacker.join(timeout=60)
    return {
        "valid_p99_ms": round(float(np.percentile(np.array(lat) * 1e3, 99)), 1),
        # Where the valid client's time went: the model's own time, and the server's time in all
        # (decoding, checks, waiting for the model, the model) from the request's arrival in a worker.
        "valid_infer_p50_ms": round(float(np.percentile(infer, 50)), 1),
        "valid_infer_p99_ms": round(float(np.percentile(infer, 99)), 1),
        "valid_server_p99_ms": round(float(np.percentile(server, 99)), 1),
        "worst_sent": len(answers),
        "worst_clear": sum(a[0] for a in answers),
        "worst_answer": answers[0][1],
        "worst_mean_s": round(float(np.mean([a[2] for a in answers])), 3),
        # While the valid client was measured: CPU used per second of wall time (2.0 = both cores).
        "server_cpu_per_s": round(server_cpu / wall, 2),
        "attacker_cpu_per_s": round(attacker_cpu / wall, 2),
    }


# ---------------------------------------------------------------------------------- malformed corpus
def corpus(port: int, meta: dict) -> tuple[int, int, list[str]]:
    """Every malformed kind once over websocket and once over HTTP: (sent, clearly answered, misses)."""
    from websockets.exceptions import ConnectionClosed

    rng = np.random.default_rng(3)
    sent, clear, misses = 0, 0, []
    # serve_load's "oversized" is sized for its 2 MB limit: here the 17 MB kind stands for it.
    ws_kinds = [k for k in BAD_KINDS if k not in ("wrong_api_key", "oversized")] + [
        k for k in WORST_KINDS if k not in ("second_valid", "largest_image", "prompt_4mb", "deep_json", "json_near_limit",
                                            "slow_headers", "disconnect_mid_body")]  # fmt: skip
    for kind in ws_kinds:
        msg = worst_message(kind, meta) if kind in WORST_KINDS else bad_message(kind, meta, rng)
        ws, _ = connect(port)
        sent += 1
        try:
            ws.send(msg)
            reply = ws.recv(timeout=120)
            ok = isinstance(reply, str) and len(reply) > 10
        except ConnectionClosed as exc:
            ok = exc.rcvd is not None and (bool(exc.rcvd.reason) or exc.rcvd.code == 1009)
        finally:
            ws.close()
        clear += ok
        if not ok:
            misses.append(f"ws {kind}")
    http_kinds = [k for k in ws_kinds if k not in ("text_frame", "oversized", "oversized_17mb")]
    for kind in [*http_kinds, "deep_json", "json_near_limit"]:
        sent += 1
        if kind in ("deep_json", "json_near_limit"):
            ok, _ = send_worst(kind, port, meta)
        else:
            msg = worst_message(kind, meta) if kind in WORST_KINDS else bad_message(kind, meta, rng)
            status, text = http("POST", port, "/v1/act", msg)
            ok = 400 <= status < 500 and len(text) > 10
        clear += ok
        if not ok:
            misses.append(f"http {kind}")
    return sent, clear, misses


# ------------------------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="policy folder (default: the shipped base)")
    ap.add_argument("--src", default=None, help="run the server from this src/ folder (compare versions)")
    ap.add_argument("--valid", type=int, default=200, help="valid requests per measurement")
    ap.add_argument("--prompts", type=int, default=10_000, help="distinct prompts sent")
    ap.add_argument("--kinds", default=",".join(WORST_KINDS), help="comma-separated worst-case kinds")
    ap.add_argument("--out", default=None, help="also write the figures as JSON here")
    args = ap.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = sorted(set(kinds) - set(WORST_KINDS))
    if unknown or args.valid < 10 or args.prompts < 0:
        ap.error(f"unknown kinds {unknown} (have {WORST_KINDS}); --valid >= 10; --prompts >= 0")

    os.environ.setdefault("MUJOCO_GL", "egl")
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="serve-worst-")) / "server.log"
    server = start(args.src, args.checkpoint, port, log)
    result: dict = {"kinds": {}}
    try:
        valid_latencies(port, 5)  # the first inference traces the model
        _, meta = connect(port)
        result["memory_start"] = memory(server.pid)
        cpu0, t0 = cpu_seconds(server.pid), time.perf_counter()
        alone = np.array(valid_latencies(port, args.valid)) * 1e3
        result["alone_server_cpu_per_s"] = round(
            (cpu_seconds(server.pid) - cpu0) / (time.perf_counter() - t0), 2
        )
        result["alone_p50_ms"] = round(float(np.percentile(alone, 50)), 1)
        result["alone_p99_ms"] = round(float(np.percentile(alone, 99)), 1)
        result["infer_ms_median"] = round(float(np.median(INFER_MS)), 1)
        result["largest_image_prep_ms"] = round(largest_image_cost(meta), 1)
        for kind in kinds:
            result["kinds"][kind] = {
                **run_kind(kind, port, meta, args.valid, server.pid),
                **memory(server.pid),
            }
            print(kind, result["kinds"][kind], flush=True)
        if args.prompts:
            t0 = time.perf_counter()
            answered, refused = prompt_phase(port, distinct_prompts(args.prompts))
            result["prompts"] = {"n": args.prompts, "answered": answered, "refused_out_of_scope": refused,
                                 "seconds": round(time.perf_counter() - t0, 1), **memory(server.pid)}  # fmt: skip
        sent, clear, misses = corpus(port, meta)
        result["corpus"] = {"sent": sent, "clear": clear, "misses": misses}
        time.sleep(10)
        result["memory_idle"] = memory(server.pid)
        alive = server.poll() is None
        result["survived"] = (
            alive and http("GET", port, "/healthz")[0] == 200 and bool(valid_latencies(port, 3))
        )
    finally:
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=10)
        if server.poll() is None:
            server.kill()
    text = log.read_text(errors="replace")
    result["log_tracebacks"] = text.count("Traceback")
    result["log_tail"] = text[-600:]
    start_rss = result["memory_start"]["rss_mb"]
    result["rss_growth_idle_mb"] = round(result["memory_idle"]["rss_mb"] - start_rss, 1)
    result["rss_growth_peak_mb"] = round(result["memory_idle"]["peak_mb"] - start_rss, 1)
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    ok = result["survived"] and not result["log_tracebacks"] and not result["corpus"]["misses"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
