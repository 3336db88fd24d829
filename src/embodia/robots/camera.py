"""Cameras on a real robot, through OpenCV: one reader thread per camera, always serving its latest frame.

    cam = OpenCVCamera(CameraConfig(name="front", source="0", width=96, height=96))
    cam.connect()
    frame = cam.latest()        # uint8 (96, 96, 3) RGB, the newest frame; never waits for a new one
    cam.disconnect()

`source` is what OpenCV opens: a device index ("0"), a device path ("/dev/video2"), or a video file
(for tests and replays; it loops). Frames are converted to RGB and resized (area interpolation) to the
configured size, which is the size embodia's policies and datasets use. A camera that cannot be opened,
or that delivers no frame within `timeout_s`, is an error naming the camera and its source.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np


class CameraError(RuntimeError):
    pass


@dataclass(frozen=True)
class CameraConfig:
    name: str  # embodia's camera name: front, wrist
    source: str  # device index, device path or video file
    width: int = 96
    height: int = 96
    fps: float | None = None  # ask the device for this rate (a file plays at its own)
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.name or not self.source:
            raise ValueError("a camera needs a name and a source")
        if self.width <= 0 or self.height <= 0 or self.width % 2 or self.height % 2:
            raise ValueError(f"camera {self.name!r}: width and height must be positive and even (video)")


def _cv2():
    try:
        import cv2
    except ImportError:
        raise ImportError(
            "cameras need OpenCV: pip install 'embodia[so101]' (opencv-python-headless)"
        ) from None
    return cv2


class OpenCVCamera:
    def __init__(self, cfg: CameraConfig):
        self.cfg = cfg
        self._cap = None
        self._frame: np.ndarray | None = None
        self._count = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: str | None = None

    def connect(self) -> None:
        cv2 = _cv2()
        source = int(self.cfg.source) if self.cfg.source.isdigit() else self.cfg.source
        cap = cv2.VideoCapture(source)
        if not cap.isOpened():
            raise CameraError(f"camera {self.cfg.name!r}: could not open {self.cfg.source!r} (is it plugged in? "
                              "a device index, a /dev/video path or a video file)")  # fmt: skip
        if self.cfg.fps:
            cap.set(cv2.CAP_PROP_FPS, self.cfg.fps)
        self._cap, self._file = cap, not isinstance(source, int) and not str(source).startswith("/dev/")
        self._stop.clear()
        self._thread = threading.Thread(target=self._read, name=f"camera-{self.cfg.name}", daemon=True)
        self._thread.start()
        with self._cond:
            if not self._cond.wait_for(lambda: self._count > 0 or self._error, self.cfg.timeout_s):
                self.disconnect()
                raise CameraError(
                    f"camera {self.cfg.name!r}: no frame from {self.cfg.source!r} in {self.cfg.timeout_s} s"
                )
        if self._error:
            self.disconnect()
            raise CameraError(self._error)

    def _read(self) -> None:
        cv2 = _cv2()
        period = 1.0 / (self._cap.get(cv2.CAP_PROP_FPS) or 30.0) if self._file else 0.0
        while not self._stop.is_set():
            ok, bgr = self._cap.read()
            if not ok and self._file:  # a video file loops
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, bgr = self._cap.read()
            if not ok:
                with self._cond:
                    self._error = f"camera {self.cfg.name!r}: {self.cfg.source!r} stopped delivering frames"
                    self._cond.notify_all()
                return
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if rgb.shape[:2] != (self.cfg.height, self.cfg.width):
                rgb = cv2.resize(rgb, (self.cfg.width, self.cfg.height), interpolation=cv2.INTER_AREA)
            with self._cond:
                self._frame, self._count = np.ascontiguousarray(rgb, dtype=np.uint8), self._count + 1
                self._cond.notify_all()
            if period:
                time.sleep(period)  # a file plays in real time, as a device would

    def latest(self) -> np.ndarray:
        """The newest frame (a copy). Raises when the camera has stopped."""
        with self._cond:
            if self._error:
                raise CameraError(self._error)
            if self._frame is None:
                raise CameraError(f"camera {self.cfg.name!r} is not connected")
            return self._frame.copy()

    @property
    def frames_read(self) -> int:
        return self._count

    def disconnect(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        if self._cap is not None:
            self._cap.release()
            self._cap = None
