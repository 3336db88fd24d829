"""A policy on the emulated SO-101 follower through `embodia run --robot so101`: the loop's timing.

    python benchmarks/so101_policy_loop.py [--seconds 60] [--checkpoint base] [--sim-arm]
                                           [--served] [-- EXTRA `embodia run` FLAGS, e.g. --replan-every 6 --delay 2]

Starts the servo-bus emulator (`--sim-arm`: backed by the MuJoCo SO-101), calibrates it as a person
would (LeRobot's procedure), writes two short videos as the front and wrist cameras (read through
OpenCV like devices), then runs `embodia run "pick up the red block" --robot so101` on it and prints the
report: ticks at 30 Hz, tick lateness p50/p99, ticks missed, the policy's time per tick and per chunk,
ticks that waited for a chunk, and the goals the emulator saw outside the servos' limits (must be 0).
`--served` serves the checkpoint with `embodia serve`'s server in this process and gives the arm its
URL, so every chunk is a websocket round trip fetched by the `ChunkRunner`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np


def write_video(path: Path, color: tuple[int, int, int], frames: int = 60) -> str:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (160, 120))
    for k in range(frames):
        img = np.full((120, 160, 3), color, np.uint8)
        img[:, (3 * k) % 160] = 255
        writer.write(img)
    writer.release()
    return str(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--checkpoint", default="base")
    ap.add_argument("--sim-arm", action="store_true", help="back the emulated servos with the MuJoCo arm")
    ap.add_argument("--served", action="store_true", help="fetch chunks from a policy server (websocket)")
    ap.add_argument("extra", nargs="*", help="more `embodia run` flags, after --")
    args = ap.parse_args()

    from embodia.cli import main as embodia
    from embodia.robots.emulator import BusEmulator, calibrate_emulated

    arm = None
    if args.sim_arm:
        from embodia.robots.emulator_arm import SimulatedArm

        arm = SimulatedArm()
    with contextlib.ExitStack() as stack:
        policy = args.checkpoint
        if args.served:
            from embodia.policy.loading import load_policy
            from embodia.serve.server import running_server

            policy = stack.enter_context(running_server(load_policy(args.checkpoint)))
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        bus = stack.enter_context(BusEmulator(arm=arm))
        calibrate_emulated(bus, "follower", "bench", tmp, reach=4000 if arm else 600)
        cams = f"front={write_video(tmp / 'front.avi', (40, 80, 120))},wrist={write_video(tmp / 'wrist.avi', (120, 80, 40))}"
        rc = embodia(["run", "pick up the red block", "--robot", "so101", "--follower", bus.port, "--follower-id",
                      "bench", "--calibration-dir", str(tmp), "--cameras", cams, "--seconds", str(args.seconds),
                      "--checkpoint", policy, *args.extra])  # fmt: skip
        reports = sorted(Path("embodia_runs/run").glob("*-so101*/report.json"))
        report = json.loads(reports[-1].read_text()) if reports else {}
        print(json.dumps({"rc": rc, "limit_violations": len(bus.violations), "goals": len(bus.goals),
                          "timing": report.get("timing"), "policy_ms_p50": report.get("policy_ms_p50"),
                          "policy_ms_p99": report.get("policy_ms_p99"), "chunk_ms_p50": report.get("chunk_ms_p50"),
                          "chunk_ms_max": report.get("chunk_ms_max"), "chunks": report.get("chunks"),
                          "waits": report.get("waits"), "execution": report.get("execution")}, indent=1))  # fmt: skip
    return rc


if __name__ == "__main__":
    sys.exit(main())
