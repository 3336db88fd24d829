"""The live page's back end: a loop's frames and state in the viewer (`embodia.view.live`), through
FastAPI's TestClient and through a real HTTP connection to `running_viewer`."""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from embodia.view.live import LiveFeed
from embodia.view.viewer import create_viewer_app, running_viewer


def obs(tick: int, size: int = 64) -> dict:
    front = np.zeros((size, size, 3), np.uint8)
    front[:, tick % size] = 255  # a bright column that moves one pixel per tick
    return {"observation.images.front": front, "observation.images.wrist": np.full((size, size, 3), 90, np.uint8),
            "observation.state": np.arange(6, dtype=np.float32) / 10}  # fmt: skip


def test_frames_and_state_of_a_running_loop(tmp_path):
    feed = LiveFeed("teleop test")
    client = TestClient(create_viewer_app(tmp_path, live=feed), base_url="http://127.0.0.1")
    assert client.get("/api/index").json()["live"] == "teleop test"
    assert client.get("/live/frame/front.jpg").status_code == 404  # nothing published yet
    for t in range(3):
        feed.publish(obs(t), sent=np.ones(6))
    live = client.get("/api/live").json()
    assert live["cameras"] == ["front", "wrist"] and live["ticks"] == 3 and live["live"]
    assert live["state"] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5]) and live["action"] == [1.0] * 6
    r = client.get("/live/frame/front.jpg")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.headers["x-tick"] == "3"
    img = np.asarray(Image.open(io.BytesIO(r.content)))
    assert img.shape == (64, 64, 3) and img[:, 2].mean() > 200 > img[:, 30].mean()  # tick 2's column
    missing = client.get("/live/frame/top.jpg")
    assert missing.status_code == 404 and "front, wrist" in missing.json()["error"]
    assert client.get("/live/frame/front.jpg", headers={"host": "evil.example"}).status_code == 421
    feed.close()
    assert client.get("/api/live").json()["live"] is False


def test_a_viewer_without_a_feed_has_no_live_routes(tmp_path):
    client = TestClient(create_viewer_app(tmp_path), base_url="http://127.0.0.1")
    assert client.get("/api/index").json()["live"] is None
    assert client.get("/api/live").status_code == 404
    assert client.get("/live/frame/front.jpg").status_code == 404


def test_the_stream_sends_new_frames_until_the_loop_ends(tmp_path):
    """A real HTTP client on the MJPEG stream while a loop publishes at 30 Hz; closing ends the stream."""
    feed = LiveFeed("stream test")
    stop = threading.Event()

    def loop():
        t = 0
        while not stop.is_set():
            feed.publish(obs(t))
            t += 1
            time.sleep(1 / 30)

    with running_viewer(tmp_path, port=0, live=feed) as url:
        assert url.endswith("/#/live")
        base = url.removesuffix("#/live")
        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        while not feed.cameras:
            time.sleep(0.01)
        frames = []
        with urllib.request.urlopen(base + "live/stream/front", timeout=5) as r:
            assert r.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=embodia-frame"
            while len(frames) < 3:
                assert r.readline().rstrip() == b"--embodia-frame"
                headers = dict(line.decode().strip().split(": ", 1) for line in iter(r.readline, b"\r\n"))
                data = r.read(int(headers["Content-Length"]))
                frames.append(np.asarray(Image.open(io.BytesIO(data))))
                r.readline()
            feed.close()  # the loop ended: the server finishes the stream
            assert r.read() == b""
        stop.set()
        thread.join()
        columns = [int(np.argmax(f[:, :, 0].mean(axis=0))) for f in frames]
        assert len(set(columns)) == 3  # three different ticks, not one frame repeated
        assert json.loads(urllib.request.urlopen(base + "api/live").read())["live"] is False
    with pytest.raises(urllib.error.URLError):  # the server stopped with the block
        urllib.request.urlopen(base + "api/live", timeout=2)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="max_fps"):
        LiveFeed(max_fps=0)
