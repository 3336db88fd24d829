"""LeRobotDataset v3.0 on-disk format: paths, feature schemas, metadata helpers.

Facts follow what LeRobot 0.4-0.6 writes (checked against a dataset LeRobot wrote itself,
`../shared/fixtures/lerobot_v3_metaworld3/`):

    meta/info.json                       codebase_version "v3.0", fps, features, path templates, totals
    meta/stats.json                      min/max/mean/std/count/q01/q10/q50/q90/q99 per feature
    meta/tasks.parquet                   index = task string (pandas index), column task_index
    meta/episodes/chunk-XXX/file-XXX.parquet   one row per episode (paths, ranges, per-episode stats)
    data/chunk-XXX/file-XXX.parquet      one row per frame, many episodes per file
    videos/<key>/chunk-XXX/file-XXX.mp4  episodes concatenated per camera

Vector features are stored as fixed-size lists of float32; the data parquet carries the Hugging Face
`datasets` feature schema in its metadata under the key `huggingface`, which LeRobot's loader reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from embodia.robots.spec import ACTION, OBS_STATE, EmbodimentSpec, image_key
from embodia.runs import atomic_write_text

CODEBASE_VERSION = "v3.0"
V21 = "v2.1"
CHUNKS_SIZE = 1000
DATA_FILES_SIZE_MB = 100
VIDEO_FILES_SIZE_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"

# Columns every frame has, besides the features a robot contributes.
INDEX_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
STAT_NAMES = ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99")

# Video encoding defaults (LeRobot's): AV1 through SVT-AV1, yuv420p, a keyframe every 2 frames so that
# random access decodes at most one extra frame, constant-quality crf 30.
VIDEO_CODEC = "libsvtav1"
VIDEO_CODEC_NAME = "av1"  # as written to info.json
VIDEO_PIX_FMT = "yuv420p"
VIDEO_GOP = 2
VIDEO_CRF = 30


@dataclass(frozen=True)
class VideoEncoding:
    encoder: str  # the FFmpeg encoder
    codec_name: str  # as info.json names it ("video.codec")
    pix_fmt: str
    crf: int
    gop: int = VIDEO_GOP


# "av1" is LeRobot's default. Its 4:2:0 chroma halves the colour resolution, which on small saturated
# objects at 96 px caps RGB fidelity near 32-33 dB whatever the bitrate (measured: a 4:2:0 round trip
# with no compression at all gives 32.8 dB on tabletop renders). "h264-444" keeps full-resolution
# colour at about the same file size (36-37 dB RGB at ~900 bytes per 96 px frame vs ~850 for av1) and
# is decoded by LeRobot's PyAV/torchcodec backends as well; use it when pixel fidelity matters.
VIDEO_PRESETS: dict[str, VideoEncoding] = {
    "av1": VideoEncoding(VIDEO_CODEC, VIDEO_CODEC_NAME, VIDEO_PIX_FMT, VIDEO_CRF),
    "h264-444": VideoEncoding("libx264", "h264", "yuv444p", 18),
}


def video_encoding_of(feature: dict) -> VideoEncoding:
    """The preset a video feature was written with (read back from its info block when appending)."""
    info = feature.get("info") or {}
    for enc in VIDEO_PRESETS.values():
        if (info.get("video.codec"), info.get("video.pix_fmt")) == (enc.codec_name, enc.pix_fmt):
            return enc
    raise DatasetError(
        f"cannot append to a {info.get('video.codec')}/{info.get('video.pix_fmt')} video; embodia writes "
        f"{', '.join(f'{e.codec_name}/{e.pix_fmt}' for e in VIDEO_PRESETS.values())}"
    )


class DatasetError(ValueError):
    """A dataset on disk is missing, corrupt or inconsistent; the message names the file."""


def video_feature(height: int, width: int, fps: int, video: str = "av1") -> dict[str, Any]:
    enc = VIDEO_PRESETS[video]
    return {
        "dtype": "video",
        "shape": [height, width, 3],
        "names": ["height", "width", "channels"],
        "info": {
            "video.height": height,
            "video.width": width,
            "video.codec": enc.codec_name,
            "video.pix_fmt": enc.pix_fmt,
            "video.is_depth_map": False,
            "video.fps": fps,
            "video.channels": 3,
            "has_audio": False,
        },
    }


def features_for(
    spec: EmbodimentSpec, height: int, width: int, extra: dict[str, dict] | None = None, video: str = "av1"
) -> dict:
    """The `features` block of info.json for an embodiment: its cameras as videos, state, action, then
    LeRobot's index columns (and any `extra` per-frame features such as `next.success`)."""
    feats: dict[str, dict[str, Any]] = {}
    for cam in spec.camera_names:
        feats[image_key(cam)] = video_feature(height, width, spec.fps, video)
    feats[OBS_STATE] = {"dtype": "float32", "shape": [spec.state_dim], "names": list(spec.state_names)}
    feats[ACTION] = {"dtype": "float32", "shape": [spec.action_dim], "names": list(spec.action_names)}
    feats.update(extra or {})
    feats.update({k: dict(v) for k, v in INDEX_FEATURES.items()})
    return feats


def video_keys(features: dict) -> list[str]:
    return [k for k, f in features.items() if f["dtype"] == "video"]


def data_keys(features: dict) -> list[str]:
    """Features stored in the data parquet (everything but videos and images)."""
    return [k for k, f in features.items() if f["dtype"] not in ("video", "image")]


def _arrow_type(feat: dict) -> pa.DataType:
    dtype = pa.from_numpy_dtype(np.dtype(feat["dtype"]))
    shape = list(feat["shape"])
    if shape == [1]:
        return dtype
    if len(shape) != 1:
        raise DatasetError(f"only scalar and 1-D features are stored in parquet, got shape {shape}")
    return pa.list_(pa.field("element", dtype), shape[0])  # LeRobot names the child "element"


def arrow_schema(features: dict) -> pa.Schema:
    """Arrow schema of the data parquet, with the Hugging Face feature metadata LeRobot reads."""
    fields = [pa.field(k, _arrow_type(features[k])) for k in data_keys(features)]
    hf: dict[str, Any] = {}
    for k in data_keys(features):
        f = features[k]
        value = {"dtype": f["dtype"], "_type": "Value"}
        hf[k] = (
            value if list(f["shape"]) == [1] else {"feature": value, "length": f["shape"][0], "_type": "List"}
        )
    meta = {b"huggingface": json.dumps({"info": {"features": hf}}).encode()}
    return pa.schema(fields, metadata=meta)


def chunk_file(file_number: int) -> tuple[int, int]:
    """Running file number -> (chunk_index, file_index) with at most CHUNKS_SIZE files per chunk."""
    return divmod(file_number, CHUNKS_SIZE)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from None


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=4) + "\n")
