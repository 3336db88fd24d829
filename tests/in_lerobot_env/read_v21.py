"""Open a LeRobotDataset v2.1 with LeRobot's own `LeRobotDataset` and dump some frames as JSON.

Runs ONLY inside a LeRobot environment whose `lerobot` reads v2.1 (LeRobot 0.3.x: embodia's test puts
`pip install --no-deps --target DIR lerobot==0.3.3` first on PYTHONPATH of the LeRobot 0.4.4
environment, whose torch, datasets and PyAV it uses). Needs no network (run it with HF_HUB_OFFLINE=1).

    python read_v21.py ROOT INDICES [--video-backend torchcodec|pyav]

INDICES: comma-separated global frame indices. Prints one JSON object: LeRobot's version and the
dataset's codebase_version, episode and frame counts, fps, camera keys, the aggregated stats' shapes,
and for each index every feature of `dataset[index]`: numbers as lists, the task string, and each
camera's tensor as its shape, mean and pixels (rounded to uint8, channel first, base64).
"""

import argparse
import base64
import json
import sys

import lerobot
import numpy as np
from lerobot.datasets.lerobot_dataset import CODEBASE_VERSION, LeRobotDataset


def frame_json(item: dict, cameras: list[str]) -> dict:
    out = {}
    for key, value in item.items():
        if key in cameras:
            x = value.numpy()
            pixels = np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)
            out[key] = {
                "shape": list(x.shape),
                "dtype": str(value.dtype),
                "mean": float(x.mean()),
                "uint8_b64": base64.b64encode(pixels.tobytes()).decode(),
            }
        elif isinstance(value, str):
            out[key] = value
        else:
            out[key] = value.numpy().tolist()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("indices", help="comma-separated global frame indices")
    parser.add_argument("--video-backend", default=None, help="default: LeRobot's (torchcodec when present)")
    args = parser.parse_args(argv)
    ds = LeRobotDataset("local/export_v21", root=args.root, video_backend=args.video_backend)
    cameras = list(ds.meta.camera_keys)
    result = {
        "lerobot_version": lerobot.__version__ if hasattr(lerobot, "__version__") else None,
        "lerobot_file": lerobot.__file__,
        "lerobot_codebase_version": CODEBASE_VERSION,
        "dataset_codebase_version": ds.meta.info["codebase_version"],
        "video_backend": ds.video_backend,
        "num_episodes": ds.num_episodes,
        "num_frames": ds.num_frames,
        "fps": ds.fps,
        "cameras": cameras,
        "tasks": {str(k): v for k, v in ds.meta.tasks.items()},
        "stats_shapes": {k: {s: list(np.shape(v)) for s, v in st.items()} for k, st in ds.meta.stats.items()},
        "frames": {i: frame_json(ds[int(i)], cameras) for i in args.indices.split(",")},
    }
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
