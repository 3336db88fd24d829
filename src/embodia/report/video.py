"""Write rollout videos (H.264 mp4 through PyAV, playable in every browser)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np


def write_mp4(path: Path, frames: Sequence[np.ndarray], fps: int) -> Path:
    """Encode uint8 (H, W, 3) frames; written to a temporary name and renamed when complete."""
    if not frames:
        raise ValueError(f"no frames to write to {path}")
    h, w = frames[0].shape[:2]
    # yuv420p needs even dimensions; pad by one pixel rather than fail on odd sizes.
    ph, pw = h + h % 2, w + w % 2
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = pw, ph, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for frame in frames:
            if frame.shape[:2] != (ph, pw):
                frame = np.pad(
                    frame, ((0, ph - frame.shape[0]), (0, pw - frame.shape[1]), (0, 0)), mode="edge"
                )
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            ):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)
    return path
