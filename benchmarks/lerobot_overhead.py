"""What embodia's LeRobot adapter costs on top of LeRobot's own inference, per chunk.

    python benchmarks/lerobot_overhead.py FOLDER [--image-size 96] [--repeats 200] [--batch 1]

FOLDER is a LeRobot `pretrained_model` folder (e.g. an ACT from `lerobot-train`). Two timings of one
chunk for the same observation (uint8 images, state, instruction), taken alternately in rounds so that
both see the same machine load:

* LeRobot's own: in the LeRobot environment, the path `lerobot-eval` takes: uint8 HWC -> float CHW in
  [0, 1], preprocessor -> `predict_action_chunk` -> postprocessor (run by a script in that
  environment, timed there);
* embodia's: `LeRobotPolicy.predict_chunk` from embodia's process: the same work in the worker plus the
  pipe, the units conversion and the checks.

A stateful policy (Diffusion, ACT with temporal ensembling) runs step by step, so it has no chunk to
compare and is refused.

Prints the medians and p90s, the overhead in ms and in percent of LeRobot's own median. Target (issue
26): <= 10 %.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REFERENCE = """
import json, sys, time, numpy as np, torch
from lerobot.configs.policies import PreTrainedConfig
from lerobot.policies.factory import get_policy_class, make_pre_post_processors
folder, size, batch, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_grad_enabled(False)
cfg = PreTrainedConfig.from_pretrained(folder); cfg.device = "cpu"
policy = get_policy_class(cfg.type).from_pretrained(folder, config=cfg).eval()
pre, post = make_pre_post_processors(cfg, pretrained_path=folder,
    preprocessor_overrides={"device_processor": {"device": "cpu"}})
rng = np.random.default_rng(0)
cams = [k for k, f in cfg.input_features.items() if str(f.type).endswith("VISUAL")]
images = {k: rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8) for k in cams}
state = rng.uniform(-1, 1, (batch, cfg.input_features["observation.state"].shape[0])).astype(np.float32)
def once():
    obs = {k: torch.from_numpy(v).permute(0, 3, 1, 2).float().div_(255) for k, v in images.items()}
    obs["observation.state"] = torch.from_numpy(state)
    obs["task"] = ["pick up the red block"] * batch
    return post(policy.predict_action_chunk(pre(obs)))
for _ in range(3):
    once()
print("ready", flush=True)
for line in sys.stdin:
    t = time.perf_counter(); once(); print("ms", json.dumps((time.perf_counter() - t) * 1e3), flush=True)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder")
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args()

    from embodia.policy.lerobot_policy import LeRobotPolicy, env_python

    folder = Path(args.folder)
    with LeRobotPolicy(folder) as probe:
        if probe.stateful:  # Diffusion, ACT with temporal ensembling: select_action per step, no chunk
            raise SystemExit(f"{probe!r} is stateful: embodia drives it step by step (select_action), so there "
                             "is no chunk to compare; give a chunk-mode policy (ACT, SmolVLA, X-VLA)")  # fmt: skip
    ref = subprocess.Popen([str(env_python()), "-I", "-c", REFERENCE, str(folder), str(args.image_size),
                            str(args.batch), str(args.repeats)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           text=True)  # fmt: skip
    while (line := ref.stdout.readline()) and line.strip() != "ready":  # LeRobot prints as it loads
        pass
    if not line:
        raise SystemExit("the reference process in the LeRobot environment failed (see above)")
    rng = np.random.default_rng(0)
    with LeRobotPolicy(folder) as policy:
        cams = policy.info.cameras
        size = args.image_size
        obs = [{**{c: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in cams},
                "observation.state": rng.uniform(-1, 1, policy.info.state_dim).astype(np.float32),
                "task": "pick up the red block"} for _ in range(args.batch)]  # fmt: skip
        for _ in range(3):
            policy.predict_chunk(obs)
        own, ours = [], []
        for _ in range(args.repeats):  # alternate: both see the same load
            ref.stdin.write("go\n")
            ref.stdin.flush()
            while not (line := ref.stdout.readline()).startswith("ms "):
                if not line:
                    raise SystemExit("the reference process stopped")
            own.append(json.loads(line[3:]))
            t = time.perf_counter()
            policy.predict_chunk(obs)
            ours.append((time.perf_counter() - t) * 1e3)
        print(f"{policy!r}, {len(cams)} camera(s) at {size} px, batch {args.batch}, {args.repeats} rounds")
    ref.stdin.close()
    ref.wait()
    own_m, ours_m = float(np.median(own)), float(np.median(ours))
    print(f"LeRobot's own chunk:  median {own_m:.2f} ms, p90 {np.percentile(own, 90):.2f} ms")
    print(f"through embodia:      median {ours_m:.2f} ms, p90 {np.percentile(ours, 90):.2f} ms")
    print(
        f"overhead: {ours_m - own_m:+.2f} ms = {(ours_m - own_m) / own_m:+.1%} of LeRobot's own (target <= 10 %)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
