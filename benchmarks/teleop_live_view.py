"""Teleoperating the simulated SO-101 with its cameras live in the browser viewer: frames per second
each camera's MJPEG stream delivers, and the control loop's timing meanwhile.

    python benchmarks/teleop_live_view.py [--seconds 20] [--image-size 256] [--no-view]

Starts a leader emulator (a thread moves its joints as a hand would), runs `embodia teleop --sim` on it
with the viewer on a free port, and reads the front and wrist streams with two HTTP clients, as two
<img> elements of the live page do. Prints frames/s per camera (counted over the middle of the run) and
the report's tick lateness p50/p99 and ticks missed. `--no-view` gives the loop's timing without a viewer.
"""

from __future__ import annotations

import argparse
import json
import math
import socket
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

MIDDLE = {1: 2048, 2: 1700, 3: 2400, 4: 2300, 5: 2048, 6: 2100}


def hand(leader, stop: threading.Event) -> None:
    """Every joint of the leader swinging gently around the simulated arm's home pose."""
    from embodia.robots.so101 import HOME_QPOS

    center = {i: MIDDLE[i] + q * 4095 / (2 * math.pi) for i, q in zip(MIDDLE, HOME_QPOS[:5], strict=False)}
    center[6] = MIDDLE[6]
    t0 = time.monotonic()
    while not stop.is_set():
        t = time.monotonic() - t0
        for i in center:
            leader.move_by_hand(i, center[i] + 120 * math.sin(2 * math.pi * 0.4 * t + i))
        time.sleep(0.01)


def read_stream(url: str, times: list[float], stop: threading.Event) -> None:
    """Timestamps of every frame of one MJPEG stream until it ends."""
    while not stop.is_set():
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                while line := r.readline():
                    if line.startswith(b"--embodia-frame"):
                        times.append(time.monotonic())
                return
        except OSError:  # not up yet, or no frame yet
            time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--no-view", action="store_true")
    args = ap.parse_args()

    from embodia.cli import main as embodia
    from embodia.robots.emulator import BusEmulator, calibrate_emulated

    port, stop = free_port(), threading.Event()
    frames: dict[str, list[float]] = {"front": [], "wrist": []}
    with tempfile.TemporaryDirectory() as tmp, BusEmulator(positions=MIDDLE) as leader:
        tmp = Path(tmp)
        calibrate_emulated(leader, "leader", "L", tmp)
        threads = [threading.Thread(target=hand, args=(leader, stop), daemon=True)]
        if not args.no_view:
            threads += [threading.Thread(target=read_stream, daemon=True,
                                         args=(f"http://127.0.0.1:{port}/live/stream/{cam}", frames[cam], stop))
                        for cam in frames]  # fmt: skip
        for t in threads:
            t.start()
        view = ["--no-view"] if args.no_view else ["--view-port", str(port)]
        rc = embodia(["teleop", "--sim", "--leader", leader.port, "--leader-id", "L", "--calibration-dir", str(tmp),
                      "--seconds", str(args.seconds), "--image-size", str(args.image_size), "--out", str(tmp / "out"),
                      *view])  # fmt: skip
        stop.set()
        report = json.loads((tmp / "out" / "report.json").read_text())
    result = {"rc": rc, "image_size": args.image_size, "seconds": args.seconds, "timing": report["timing"]}
    for cam, times in frames.items():
        if len(times) > 10:  # the middle of the run: without the start-up and the last second
            lo, hi = times[0] + 1.0, times[-1] - 1.0
            inner = [t for t in times if lo <= t <= hi]
            result[f"{cam}_fps"] = round((len(inner) - 1) / max(hi - lo, 1e-9), 1)
        result[f"{cam}_frames"] = len(times)
    print(json.dumps(result, indent=1))
    return rc


if __name__ == "__main__":
    sys.exit(main())
