"""Both directions with LeRobot's own `LeRobotDataset`, which runs in a separate environment.

    python benchmarks/lerobot_compat.py --lerobot-python /path/to/lerobot-env/bin/python [--dataset PATH]

1. LeRobot loads a dataset embodia recorded: state, action, task and every camera frame must equal what
   embodia's reader returns.
2. embodia reads the dataset LeRobot wrote (`../shared/fixtures/lerobot_v3_metaworld3`) with values equal
   to LeRobot's.
3. LeRobot's training-loader throughput on the embodia dataset (batch 64, action chunk 16), beside
   embodia's (`benchmarks/loader.py`).

lerobot is not a dependency of embodia: the helper below runs with the other interpreter and hands
back plain arrays in an .npz file (numpy's format, loaded with allow_pickle=False).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

from embodia.data.reader import LeRobotDataset

REPO = Path(__file__).resolve().parents[1]
LEROBOT_FIXTURE = REPO.parent / "shared" / "fixtures" / "lerobot_v3_metaworld3"

HELPER = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np, torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    root, out, bench = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    ds = LeRobotDataset("local/compat", root=root, video_backend="pyav")
    cams = list(ds.meta.camera_keys)
    arrays = {"state": [], "action": [], "task": [], **{c: [] for c in cams}}
    for i in range(len(ds)):
        s = ds[i]
        arrays["state"].append(s["observation.state"].numpy())
        arrays["action"].append(s["action"].numpy())
        arrays["task"].append(s["task"])
        for c in cams:
            arrays[c].append((s[c].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    res = {k: np.stack(v) if k != "task" else np.array(v) for k, v in arrays.items()}
    np.savez(out, **{k.replace(".", "__"): v for k, v in res.items()})
    info = {"cameras": cams, "frames": len(ds)}
    if bench:
        fps = ds.meta.fps
        chunk = LeRobotDataset("local/compat", root=root, video_backend="pyav",
                               delta_timestamps={"action": [i / fps for i in range(16)]})
        loader = torch.utils.data.DataLoader(chunk, batch_size=64, shuffle=True, num_workers=0)
        n, t0 = 0, time.perf_counter()
        for b in loader:
            n += len(b["index"])
            if n >= 1024:
                break
        info["lerobot_samples_per_s"] = n / (time.perf_counter() - t0)
    print(json.dumps(info))
    """
)


def run_lerobot(python: str, root: Path, bench: bool) -> tuple[dict, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "lerobot.npz"
        res = subprocess.run(
            [python, "-c", HELPER, str(root), str(out), "1" if bench else "0"],
            capture_output=True,
            text=True,
            env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
            timeout=1800,
        )
        if res.returncode != 0:
            sys.exit(f"lerobot failed on {root}:\n{res.stderr[-3000:]}")
        info = json.loads(res.stdout.strip().splitlines()[-1])
        with np.load(out, allow_pickle=False) as z:
            arrays = {k.replace("__", "."): z[k] for k in z.files}
    return info, arrays


def compare(root: Path, python: str, bench: bool) -> dict:
    info, lr = run_lerobot(python, root, bench)
    ours = LeRobotDataset.open(root)
    data = [ours.episode_data(e["episode_index"]) for e in ours.episodes]
    state = np.concatenate([d["observation.state"] for d in data])
    action = np.concatenate([d["action"] for d in data])
    tasks = np.concatenate([[ours.tasks[t] for t in d["task_index"]] for d in data])
    report = {
        "dataset": str(root),
        "frames": int(ours.num_frames),
        "state_equal": bool(
            np.array_equal(state, lr["observation.state"] if "observation.state" in lr else lr["state"])
        ),
        "action_equal": bool(np.array_equal(action, lr["action"])),
        "task_equal": bool(np.array_equal(tasks, lr["task"])),
    }
    for cam in ours.camera_keys:
        frames = np.concatenate([ours.episode_frames(e["episode_index"], cam) for e in ours.episodes])
        diff = np.abs(frames.astype(int) - lr[cam].astype(int))
        report[f"{cam} max |diff|"] = int(diff.max())
    if "lerobot_samples_per_s" in info:
        report["lerobot LeRobotDataset samples/s (batch 64, chunk 16, pyav, no augmentation)"] = round(
            info["lerobot_samples_per_s"]
        )
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lerobot-python", required=True)
    parser.add_argument("--dataset", type=Path, default=REPO / "tests/fixtures/so101_tabletop_tiny")
    args = parser.parse_args()
    print(json.dumps(compare(args.dataset, args.lerobot_python, bench=True), indent=2))
    if LEROBOT_FIXTURE.exists():
        print(json.dumps(compare(LEROBOT_FIXTURE, args.lerobot_python, bench=False), indent=2))


if __name__ == "__main__":
    main()
