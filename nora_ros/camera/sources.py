"""Where camera frames come from: an OpenCV device, a video file, or a folder of images.

The camera node (and anything else that needs frames without ROS) asks a source for the next
frame at its own rate; a source never sleeps and never retries in a loop. A device that drops
(USB unplugged, driver restarted) is reopened on a later :meth:`FrameSource.read` at most once
per ``reconnect_interval`` seconds, so the caller's timer keeps running and can report the
outage; :attr:`FrameSource.health` says what happened (frames, failures, reconnects, the last
error), for /diagnostics.

Frames come out as OpenCV reads them, bgr8 (converting here would cost a copy per frame; the
policy's preprocessing converts once). Alpha channels of RGBA images are dropped on reading:
the model takes colour only. Frames are not resized here: the policy's preprocessing is the
one place that resizes, as training did.

Source specs (:func:`open_source`): ``device:0`` or ``0`` or ``/dev/video0`` (a camera),
``video:PATH`` or a file path (a video file), ``folder:PATH`` or a directory (images in name
order).
"""

from __future__ import annotations

import abc
import math
import pathlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nora_ros.camera.frame import Frame
from nora_ros.errors import ConfigurationError, InvalidInputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _cv2():
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigurationError(
            "camera sources need OpenCV: pip install opencv-python-headless (or apt install python3-opencv)"
        ) from exc
    return cv2


@dataclass(frozen=True)
class SourceHealth:
    """What a source has done so far, for diagnostics.

    ``connected``: the device / file is open; ``frames``: frames delivered; ``failures``: reads
    that gave no frame; ``reconnects``: successful reopenings after a drop; ``last_error``: why
    the last read gave no frame (empty after a good one); ``finished``: a file source reached
    its end and does not loop.
    """

    connected: bool
    frames: int
    failures: int
    reconnects: int
    last_error: str
    finished: bool = False


class FrameSource(abc.ABC):
    """A source of camera frames. Contract:

    - :meth:`read` returns the next :class:`Frame` stamped ``now`` (the caller's clock), or
      ``None`` when there is none this time; it never raises for a missing frame (the reason is
      in :attr:`health`), and never sleeps beyond one device read.
    - :meth:`close` releases the device or file.
    """

    kind = "source"

    def __init__(self, frame_id: str = "camera"):
        self.frame_id = frame_id
        self._frames = 0
        self._failures = 0
        self._reconnects = 0
        self._last_error = ""
        self._finished = False

    @abc.abstractmethod
    def _next_image(self, now: float) -> np.ndarray | None:
        """The next bgr8 image, or ``None`` after calling :meth:`_fail` with the reason."""

    def _connected(self) -> bool:
        return True

    def read(self, now: float) -> Frame | None:
        img = self._next_image(now)
        if img is None:
            return None
        self._frames += 1
        self._last_error = ""
        return Frame(image=img, stamp=now, encoding="bgr8", frame_id=self.frame_id)

    def _fail(self, reason: str) -> None:
        self._failures += 1
        self._last_error = reason

    @property
    def health(self) -> SourceHealth:
        return SourceHealth(self._connected(), self._frames, self._failures, self._reconnects, self._last_error,
                            self._finished)

    def close(self) -> None:  # noqa: B027 - sources holding nothing need no cleanup
        """Release the device or file."""


def _as_bgr(img: np.ndarray | None, what: str) -> np.ndarray:
    """OpenCV's image as HxWx3 bgr8: grey is replicated, alpha dropped; anything else is an error."""
    if img is None:
        raise InvalidInputError(f"{what} could not be decoded")
    if img.dtype != np.uint8:
        raise InvalidInputError(f"{what} is {img.dtype}, 8-bit images expected")
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim == 3 and img.shape[2] == 4:
        return np.ascontiguousarray(img[:, :, :3])
    if img.ndim == 3 and img.shape[2] == 3:
        return img
    raise InvalidInputError(f"{what} has shape {img.shape}; HxW, HxWx3 or HxWx4 expected")


class _CaptureSource(FrameSource):
    """Shared by device and video-file sources: an ``cv2.VideoCapture`` that may need reopening."""

    def __init__(self, target, frame_id: str, capture_factory: Callable | None):
        super().__init__(frame_id)
        self.target = target
        self._factory = capture_factory
        self._cap = None

    def _open(self) -> bool:
        factory = self._factory or _cv2().VideoCapture
        cap = factory(self.target)
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            self._fail(f"cannot open {self.kind} {self.target!r}")
            return False
        self._configure(cap)
        self._cap = cap
        return True

    def _configure(self, cap) -> None:
        """Set capture properties after opening (device size and rate)."""

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _connected(self) -> bool:
        return self._cap is not None

    def _grab(self) -> tuple[np.ndarray | None, str]:
        """The next image, or ``None`` and why."""
        ok, img = self._cap.read()
        if not ok or img is None:
            return None, f"{self.kind} {self.target!r} gave no frame"
        try:
            return _as_bgr(img, f"frame from {self.kind} {self.target!r}"), ""
        except InvalidInputError as exc:
            return None, str(exc)

    def close(self) -> None:
        self._release()


class DeviceSource(_CaptureSource):
    """A camera opened with OpenCV (index or device path), reopened after a drop.

    A failed read releases the device; the next :meth:`read` at least ``reconnect_interval``
    seconds after the last attempt tries to reopen it. ``width``, ``height`` and ``fps`` are
    requested from the driver when non-zero (the driver may choose the nearest it supports).
    """

    kind = "device"

    def __init__(self, device: int | str, frame_id: str = "camera", *, width: int = 0, height: int = 0,
                 fps: float = 0.0, reconnect_interval: float = 1.0, capture_factory: Callable | None = None):
        if not (reconnect_interval > 0 and math.isfinite(reconnect_interval)):
            raise ConfigurationError(f"reconnect_interval must be a positive number of seconds, got {reconnect_interval}")
        super().__init__(device, frame_id, capture_factory)
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.reconnect_interval = reconnect_interval
        self._last_attempt = -math.inf
        self._ever_opened = False

    def _configure(self, cap) -> None:
        cv2 = _cv2()
        # Keep one frame in the driver's queue: a read returns the newest frame, not one that
        # waited behind others (V4L2 queues several by default; the policy wants the latest).
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if self.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        if self.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if self.fps:
            cap.set(cv2.CAP_PROP_FPS, self.fps)

    def _next_image(self, now: float) -> np.ndarray | None:
        if self._cap is None:
            if now - self._last_attempt < self.reconnect_interval:
                self._fail(self._last_error or f"{self.kind} {self.target!r} is not open")
                return None
            self._last_attempt = now
            if not self._open():
                return None
            if self._ever_opened:
                self._reconnects += 1
            self._ever_opened = True
        img, reason = self._grab()
        if img is None:
            # A camera that stops delivering is treated as dropped: release it so a later read
            # reopens it (a driver restart or a replugged USB camera comes back this way).
            self._release()
            self._last_attempt = now
            self._fail(f"{reason}; reopening in {self.reconnect_interval} s")
        return img


class VideoFileSource(_CaptureSource):
    """Frames of a video file in order; at the end it starts over (``loop``) or is finished."""

    kind = "video"

    def __init__(self, path: str | pathlib.Path, frame_id: str = "camera", *, loop: bool = True,
                 capture_factory: Callable | None = None):
        path = pathlib.Path(path)
        if not path.is_file():
            raise ConfigurationError(f"video file {path} does not exist")
        super().__init__(str(path), frame_id, capture_factory)
        self.loop = loop
        if not self._open():
            raise ConfigurationError(f"video file {path} cannot be opened by OpenCV (codec missing or not a video)")

    def _next_image(self, now: float) -> np.ndarray | None:
        if self._finished:
            self._fail(f"video {self.target!r} ended")
            return None
        img, reason = self._grab()
        if img is None and self.loop and self._frames > 0:
            self._release()
            if self._open():
                img, reason = self._grab()
        if img is None:
            if not self.loop or self._frames == 0:
                self._finished = True
            self._fail(f"video {self.target!r} ended ({reason})" if self._frames else f"video {self.target!r} has no frames")
        return img


class ImageFolderSource(FrameSource):
    """The images of a folder in name order, one per :meth:`read`; loops unless told not to.

    An image that does not decode is skipped with its name in :attr:`health` (the next read
    moves on), so one bad file does not stop a replay.
    """

    kind = "folder"

    def __init__(self, folder: str | pathlib.Path, frame_id: str = "camera", *, loop: bool = True):
        super().__init__(frame_id)
        self.folder = pathlib.Path(folder)
        if not self.folder.is_dir():
            raise ConfigurationError(f"image folder {self.folder} does not exist")
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise ConfigurationError(f"image folder {self.folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        self.loop = loop
        self._index = 0

    def _next_image(self, now: float) -> np.ndarray | None:
        if self._index >= len(self.files):
            if not self.loop:
                self._finished = True
                self._fail(f"image folder {self.folder} exhausted")
                return None
            self._index = 0
        path = self.files[self._index]
        self._index += 1
        cv2 = _cv2()
        try:
            return _as_bgr(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), f"image {path}")
        except InvalidInputError as exc:
            self._fail(str(exc))
            return None


def open_source(spec: str, frame_id: str = "camera", *, loop: bool = True, width: int = 0, height: int = 0,
                fps: float = 0.0, reconnect_interval: float = 1.0) -> FrameSource:
    """The source a spec names: ``device:N`` / ``N`` / ``/dev/videoN``, ``video:PATH`` or a file,
    ``folder:PATH`` or a directory."""
    spec = str(spec).strip()
    if not spec:
        raise ConfigurationError("camera source is empty; use device:0, video:PATH or folder:PATH")
    kind, sep, rest = spec.partition(":")
    if sep and kind in ("device", "video", "folder"):
        target = rest
    else:
        kind, target = "", spec
    if not kind:
        if target.isdigit() or target.startswith("/dev/"):
            kind = "device"
        elif pathlib.Path(target).is_dir():
            kind = "folder"
        elif pathlib.Path(target).is_file():
            kind = "video"
        else:
            raise ConfigurationError(
                f"camera source '{spec}' is neither a device (device:0, /dev/video0) nor an existing file or folder"
            )
    if kind == "device":
        device: int | str = int(target) if target.isdigit() else target
        return DeviceSource(device, frame_id, width=width, height=height, fps=fps,
                            reconnect_interval=reconnect_interval)
    if kind == "video":
        return VideoFileSource(target, frame_id, loop=loop)
    return ImageFolderSource(target, frame_id, loop=loop)
