"""Episode encoding survives an encoder that stalls (SVT-AV1 can deadlock in its flush under load)."""

from __future__ import annotations

import threading

import av
import numpy as np
import pytest

from embodia.data import video

FRAMES = (np.random.default_rng(0).random((6, 32, 32, 3)) * 255).astype(np.uint8)


def _decoded_frames(path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_a_stalled_encode_is_abandoned_and_redone(tmp_path, monkeypatch):
    real, calls, release = video._encode, [], threading.Event()

    def first_call_hangs(frames, path, fps, enc):
        calls.append(path)
        if len(calls) == 1:
            release.wait(10)  # as the deadlocked native flush: never returns on its own
            return
        real(frames, path, fps, enc)

    monkeypatch.setattr(video, "_encode", first_call_hangs)
    out = tmp_path / "episode.mp4"
    with pytest.warns(RuntimeWarning, match="stalled"):
        video.encode_episode(FRAMES, out, fps=30, timeout_s=0.5)
    release.set()
    assert len(calls) == 2 and calls[0] != calls[1]  # the retry wrote its own file
    assert _decoded_frames(out) == len(FRAMES)


def test_an_encoder_that_never_finishes_is_a_clear_error(tmp_path, monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(video, "_encode", lambda *a: release.wait(10))
    out = tmp_path / "episode.mp4"
    with pytest.warns(RuntimeWarning), pytest.raises(RuntimeError, match="--resume"):
        video.encode_episode(FRAMES, out, fps=30, timeout_s=0.2)
    release.set()
    assert not out.exists()


def test_encoder_errors_still_surface(tmp_path, monkeypatch):
    def broken(*a):
        raise OSError("disk full")

    monkeypatch.setattr(video, "_encode", broken)
    with pytest.raises(OSError, match="disk full"):
        video.encode_episode(FRAMES, tmp_path / "x.mp4", fps=30)
