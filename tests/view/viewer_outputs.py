"""Builders of small embodia output folders for the viewer tests (seconds, CPU only)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

TINY_DATASET = Path(__file__).parents[1] / "fixtures" / "so101_tabletop_tiny"


class HoldPolicy:
    """Commands the current joint state: the arm holds still. Enough for eval's outputs (results.json,
    H.264 videos, report.html); the real VLA would add minutes for nothing these tests look at."""

    chunk_size = 4
    n_action_steps = 4
    embodiment = "so101"
    checkpoint_hash = "0" * 64

    def predict_chunk(self, observations):
        out = np.zeros((len(observations), self.chunk_size, 6), np.float32)
        for b, obs in enumerate(observations):
            out[b] = obs["observation.state"][None]
        return out

    def reset(self):
        pass


def copy_dataset(dest: Path) -> Path:
    shutil.copytree(TINY_DATASET, dest)
    return dest


def make_eval(out: Path, suite: str = "touch,pick", episodes: int = 2) -> Path:
    """A real eval output folder: 2 tasks x `episodes`, the first episode of each task filmed."""
    from embodia.eval.run import evaluate

    evaluate(HoldPolicy(), suite=suite, episodes=episodes, num_envs=1, videos_per_task=1, out_dir=out,
             image_size=32, max_steps=6, in_process=True, show_progress=False)  # fmt: skip
    return out


def make_fake_run(run: Path, steps: int = 30) -> Path:
    """A training-run folder with the layout `embodia train` writes (metrics.jsonl, train_config.json,
    checkpoints/step-*/ with `latest`, final/), without training: for API tests that only read files."""
    run.mkdir(parents=True)
    (run / "train_config.json").write_text(json.dumps({"name": "tiny", "steps": steps, "batch_size": 8,
                                                       "lr": 3e-4, "datasets": ["d"]}))  # fmt: skip
    lines = [json.dumps({"step": s, "loss": 2.0 / s, "lr": 3e-4 * min(1, s / 5), "grad_norm": 1.0,
                         "samples_per_s": 100.0, "elapsed_s": 0.1 * s}) for s in range(1, steps + 1)]  # fmt: skip
    # A line cut off mid-write (the run is still going) must not break the page.
    (run / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 31, "lo')
    for name in ("checkpoints/step-0000010", "checkpoints/step-0000020", "final"):
        ckpt = run / name
        ckpt.mkdir(parents=True)
        for f in ("config.json", "normalization.json"):
            (ckpt / f).write_text("{}")
        (ckpt / "model.safetensors").write_bytes(b"\0" * 64)
        if name != "final":
            (ckpt / "train_state.json").write_text(json.dumps({"step": int(name[-7:])}))
    (run / "checkpoints" / "latest").write_text("step-0000020\n")
    return run
