"""Dataset videos: encode an episode's frames, and append an encoded episode to a shared mp4.

LeRobot v3 keeps many episodes per mp4 and addresses each by [from_timestamp, to_timestamp). Appending
is a stream copy (no re-encode): packets of the kept part of the old file, then the new episode's
packets shifted by the old duration, are muxed into a temporary file that atomically replaces the old
one. Frames sit on a 1/fps time grid, so frame i of an episode is at from_timestamp + i / fps.
"""

from __future__ import annotations

import os
import threading
import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from embodia.data.format import VIDEO_PRESETS, VideoEncoding

# SVT-AV1 preset: 0 = slowest/best .. 13 = fastest. 10 encodes 96 px frames at several hundred per
# second on a CPU; slower presets gain < 0.5 dB on rendered frames.
SVT_PRESET = 10


# SVT-AV1 can deadlock in its flush under CPU load (seen here: `embodia record` idle for good inside
# svt_av1_enc_get_packet after ~690 episodes while other jobs ran; SVT-AV1 issues 2300 / 2311 report the
# same). PyAV releases the GIL in the encoder, so a stalled encode can be abandoned to its thread and
# redone from scratch into a fresh file. An episode's encode normally takes well under a second.
ENCODE_TIMEOUT_S = 120.0
ENCODE_ATTEMPTS = 3


def encode_episode(
    frames: np.ndarray,
    path: Path,
    fps: int,
    encoding: VideoEncoding | None = None,
    timeout_s: float = ENCODE_TIMEOUT_S,
) -> None:
    """Encode uint8 (T, H, W, 3) frames into a standalone mp4 (pts = frame number, time base 1/fps).
    An encode that stalls for `timeout_s` is abandoned and redone, up to ENCODE_ATTEMPTS times."""
    enc = encoding or VIDEO_PRESETS["av1"]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"{enc.pix_fmt} video needs even height and width, got {h}x{w}")
    path = Path(path)
    for attempt in range(ENCODE_ATTEMPTS):
        # Each attempt writes its own file: an abandoned one may still wake up and write to it later.
        out = path.with_name(f".{path.stem}.attempt{attempt}{path.suffix}")
        outcome: dict[str, BaseException] = {}
        worker = threading.Thread(
            target=_encode_into, args=(frames, out, fps, enc, outcome), name="video-encode", daemon=True
        )
        worker.start()
        worker.join(timeout_s)
        if worker.is_alive():
            warnings.warn(
                f"video encoder ({enc.encoder}) stalled for {timeout_s:.0f} s on {path.name}; retrying",
                RuntimeWarning,
                stacklevel=2,
            )
            continue
        if "error" in outcome:
            raise outcome["error"]
        os.replace(out, path)
        return
    raise RuntimeError(
        f"the video encoder ({enc.encoder}) stalled {ENCODE_ATTEMPTS} times on {path.name} (a known, "
        "intermittent SVT-AV1 deadlock under CPU load). Nothing of this episode was written: continue the "
        "recording with --resume, or record with --video h264-444"
    )


def _encode_into(frames: np.ndarray, path: Path, fps: int, enc: VideoEncoding, outcome: dict) -> None:
    try:
        _encode(frames, path, fps, enc)
    except BaseException as exc:  # handed to the waiting thread, which raises it
        outcome["error"] = exc


def _encode(frames: np.ndarray, path: Path, fps: int, enc: VideoEncoding) -> None:
    t, h, w, _ = frames.shape
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(enc.encoder, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, enc.pix_fmt
        stream.time_base = Fraction(1, fps)
        stream.options = {"crf": str(enc.crf), "g": str(enc.gop)}
        if enc.encoder == "libsvtav1":
            stream.options = {**stream.options, "preset": str(SVT_PRESET)}
        for i in range(t):
            frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def append_episodes(target: Path, keep_until_s: float, episodes: list[tuple[Path, float]]) -> list[float]:
    """Append standalone episode mp4s, given as (path, duration in seconds), to `target` after its first
    `keep_until_s` seconds, in one pass (stream copy, no re-encode).

    Anything in `target` at or after `keep_until_s` is dropped: it can only be an episode whose
    metadata was never committed (a crash between the video and the metadata write). Returns the
    timestamp at which each appended episode starts in the new file.

    The file is rewritten whole, so the cost grows with the file: the writer batches episodes into one
    call (`DatasetWriter(commit_every=...)`), and the per-packet work is integer tick arithmetic (exact
    Fractions per packet made a 150 MB file take ~5 s to append to).
    """
    if not episodes:
        return []
    tmp = target.with_name(f".{target.name}.tmp.mp4")
    keep = target.exists() and keep_until_s > 0
    template_path = target if keep else episodes[0][0]
    starts, t = [], keep_until_s if keep else 0.0
    for _, duration in episodes:
        starts.append(t)
        t += duration
    try:
        with av.open(str(template_path)) as tpl, av.open(str(tmp), mode="w") as out:
            in_stream = tpl.streams.video[0]
            out_stream = out.add_stream_from_template(in_stream, opaque=True)  # copy, no codec needed
            out_tb = in_stream.time_base
            out_stream.time_base = out_tb
            if keep:
                cut = (keep_until_s - 1e-6) / float(out_tb)  # in ticks
                with av.open(str(target)) as inp:
                    s = inp.streams.video[0]
                    if s.time_base != out_tb:
                        raise ValueError(
                            f"{target}: time base changed while reading ({s.time_base} vs {out_tb})"
                        )
                    for packet in inp.demux(s):
                        if packet.pts is None or packet.size == 0:
                            continue  # the demuxer's flush packet
                        if packet.pts >= cut:
                            continue
                        packet.stream = out_stream
                        out.mux(packet)
            for (path, _), start in zip(episodes, starts, strict=True):
                with av.open(str(path)) as inp:
                    s = inp.streams.video[0]
                    # ticks of the episode's time base -> ticks of the file's, then the start offset
                    ratio = Fraction(s.time_base) / Fraction(out_tb)
                    num, den = ratio.numerator, ratio.denominator
                    shift = round(start / float(out_tb))
                    for packet in inp.demux(s):
                        if packet.pts is None or packet.size == 0:
                            continue
                        dts = packet.dts if packet.dts is not None else packet.pts
                        packet.pts = (2 * packet.pts * num + den) // (2 * den) + shift  # rounded
                        packet.dts = (2 * dts * num + den) // (2 * den) + shift
                        packet.stream = out_stream
                        out.mux(packet)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return starts


def extract_segment(source: Path, from_s: float, to_s: float, out: Path) -> int:
    """Copy the packets of [from_s, to_s) of `source` into a standalone mp4 starting at 0 (no
    re-encode; valid because every episode was encoded on its own and so starts on a keyframe).
    Returns the number of frames copied."""
    n = 0
    with av.open(str(source)) as inp, av.open(str(out), mode="w") as dst:
        s = inp.streams.video[0]
        out_stream = dst.add_stream_from_template(s, opaque=True)
        out_stream.time_base = s.time_base
        for packet in inp.demux(s):
            if packet.pts is None or packet.size == 0:
                continue
            t = float(packet.pts * s.time_base)
            if t < from_s - 1e-4 or t >= to_s - 1e-4:
                continue
            dts = packet.dts if packet.dts is not None else packet.pts
            packet.pts = round((t - from_s) / s.time_base)
            packet.dts = round((float(dts * s.time_base) - from_s) / s.time_base)
            packet.stream = out_stream
            dst.mux(packet)
            n += 1
    return n


def decode_all(path: Path) -> np.ndarray:
    """Every frame of an mp4 as uint8 (T, H, W, 3) (tests and small tools; the reader seeks)."""
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
