"""Live cameras and state of a running control loop (teleoperation, recording) in the browser viewer.

    feed = LiveFeed(title="teleoperation: leader -> simulated SO-101")
    with running_viewer(run_dir, live=feed) as url:       # http://127.0.0.1:8765/#/live
        teleoperate(leader, follower, on_tick=feed.publish)
    # leaving the block closes the feed: every open stream ends, then the server stops

The control loop only hands over references (`publish` copies nothing and encodes nothing: a tick must
not wait for a browser); the HTTP side encodes a JPEG when a client asks and a newer frame is there.

HTTP surface, added to the viewer's app (`create_viewer_app(root, live=feed)`):

    /api/live                 title, cameras, tick count, the latest state/action, live or ended
    /live/frame/CAMERA.jpg    the latest frame of one camera (404 for a camera that has sent none)
    /live/stream/CAMERA       the camera as MJPEG (multipart/x-mixed-replace), at most `max_fps` frames/s,
                              ending when the loop ends; an <img> plays it with no script
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

IMAGE_PREFIX = "observation.images."
BOUNDARY = "embodia-frame"


class LiveFeed:
    """The latest observation of a running loop, shared between the loop's thread and the web server."""

    def __init__(self, title: str = "live", max_fps: float = 30.0, quality: int = 80):
        if not 0 < max_fps <= 120 or not 1 <= quality <= 95:
            raise ValueError(f"max_fps must be in (0, 120] and quality in 1..95, got {max_fps}, {quality}")
        self.title, self.period, self.quality = title, 1.0 / max_fps, int(quality)
        self._cond = threading.Condition()
        self._frames: dict[str, np.ndarray] = {}
        self._state: dict[str, Any] = {}
        self.ticks = 0
        self.closed = False
        self.served: dict[str, int] = {}  # frames sent per camera (all streams together)

    # ------------------------------------------------------------------ the loop's side
    def publish(self, obs: dict[str, Any], sent: np.ndarray | None = None, **info: Any) -> None:
        """Hand over this tick's observation (and the action sent). Keeps references only: the loop
        must give fresh arrays each tick (cameras and renderers do)."""
        frames = {k.removeprefix(IMAGE_PREFIX): v for k, v in obs.items() if k.startswith(IMAGE_PREFIX)}
        state = obs.get("observation.state")
        with self._cond:
            self._frames.update(frames)
            self._state = {
                "state": None if state is None else np.asarray(state, np.float64).round(4).tolist(),
                "action": None if sent is None else np.asarray(sent, np.float64).round(4).tolist(),
                **info,
            }
            self.ticks += 1
            self._cond.notify_all()

    def close(self) -> None:
        """The loop ended: streams finish, /api/live says so."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    # ------------------------------------------------------------------ the server's side
    @property
    def cameras(self) -> list[str]:
        with self._cond:
            return sorted(self._frames)

    def summary(self) -> dict[str, Any]:
        with self._cond:
            return {"title": self.title, "cameras": sorted(self._frames), "ticks": self.ticks,
                    "live": not self.closed, **self._state}  # fmt: skip

    def jpeg(self, camera: str) -> tuple[int, bytes] | None:
        """(tick, JPEG bytes) of the camera's latest frame; None before the first."""
        with self._cond:
            frame, tick = self._frames.get(camera), self.ticks
        return None if frame is None else (tick, encode_jpeg(frame, self.quality))

    def stream(self, camera: str) -> Iterator[bytes]:
        """MJPEG parts: each newer frame, at most one per period, until the feed closes."""
        last = -1
        while True:
            with self._cond:
                self._cond.wait_for(lambda seen=last: self.closed or self.ticks != seen, timeout=1.0)
                if self.closed:
                    return
                if self.ticks == last or camera not in self._frames:
                    continue
                frame, last = self._frames[camera], self.ticks
            t0 = time.monotonic()
            data = encode_jpeg(frame, self.quality)
            self.served[camera] = self.served.get(camera, 0) + 1
            yield (
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
            ).encode()
            yield data + b"\r\n"
            time.sleep(max(0.0, self.period - (time.monotonic() - t0)))


def encode_jpeg(frame: np.ndarray, quality: int = 80) -> bytes:
    from PIL import Image  # a matplotlib dependency, so always installed with embodia

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def add_live_routes(app, feed: LiveFeed) -> None:
    """The live endpoints on the viewer's FastAPI app."""
    from fastapi.responses import Response, StreamingResponse

    from embodia.view.viewer_data import ViewerError

    def known(camera: str) -> str:
        if camera not in feed.cameras:
            raise ViewerError(
                404, f"no camera {camera!r} in this feed (cameras: {', '.join(feed.cameras) or 'none yet'})"
            )
        return camera

    @app.get("/api/live")
    def api_live() -> dict[str, Any]:
        return feed.summary()

    @app.get("/live/frame/{camera}.jpg")
    def live_frame(camera: str) -> Response:
        tick, data = feed.jpeg(known(camera))  # type: ignore[misc]  # known: it has a frame
        return Response(
            data, media_type="image/jpeg", headers={"Cache-Control": "no-store", "X-Tick": str(tick)}
        )

    @app.get("/live/stream/{camera}")
    def live_stream(camera: str) -> StreamingResponse:
        return StreamingResponse(feed.stream(known(camera)), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                                 headers={"Cache-Control": "no-store"})  # fmt: skip
