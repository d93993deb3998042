"""``sensor_msgs/Image``, ``CompressedImage`` and ``CameraInfo`` to and from frames and arrays:
encodings checked, row padding removed, nothing padded, cropped or zeroed."""

from __future__ import annotations

import array
from collections.abc import Mapping

import numpy as np

from nora_ros.camera.frame import Frame
from nora_ros.errors import InvalidInputError
from nora_ros.interface.convert.stamps import fill_header, stamp_to_seconds

IMAGE_CHANNELS: Mapping[str, int] = {"rgb8": 3, "bgr8": 3, "mono8": 1}
"""sensor_msgs/Image encodings we read and write, with their channel counts (8 bits each)."""


# --------------------------------------------------------------------------- images


def _data_bytes(data) -> np.ndarray:
    """The message's ``uint8[]`` data as a flat uint8 array (no copy when possible)."""
    if isinstance(data, (bytes, bytearray, memoryview, array.array)):
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8).reshape(-1)


def _byte_array(a: np.ndarray) -> array.array:
    """``a``'s bytes as the ``array.array('B')`` rosidl stores uint8[] in, copied once."""
    out = array.array("B")
    out.frombytes(memoryview(np.ascontiguousarray(a)).cast("B"))
    return out


def image_to_array(msg) -> np.ndarray:
    """A ``sensor_msgs/Image`` as ``HxWx3`` (rgb8, bgr8) or ``HxW`` (mono8) uint8, row padding removed.

    ``step`` (bytes per row) may exceed ``width * channels`` (drivers pad rows for alignment);
    the padding is cut off. The data must hold exactly ``step * height`` bytes, as the message
    definition says.
    """
    encoding = str(msg.encoding)
    if encoding not in IMAGE_CHANNELS:
        raise InvalidInputError(
            f"image encoding '{encoding}' is not supported; use one of {sorted(IMAGE_CHANNELS)} "
            "(e.g. set the camera driver's pixel format to rgb8, or republish through image_proc)"
        )
    channels = IMAGE_CHANNELS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height < 1 or width < 1:
        raise InvalidInputError(f"image is empty: {height}x{width}")
    row = width * channels
    if step < row:
        raise InvalidInputError(f"image step {step} is smaller than width x channels = {width} x {channels} = {row}")
    flat = _data_bytes(msg.data)
    if flat.size != step * height:
        raise InvalidInputError(
            f"image data holds {flat.size} bytes; {encoding} {height}x{width} with step {step} needs "
            f"step x height = {step * height}"
        )
    rows = flat.reshape(height, step)[:, :row]
    shape = (height, width) if channels == 1 else (height, width, channels)
    return np.ascontiguousarray(rows).reshape(shape)


def image_to_frame(msg) -> Frame:
    """A ``sensor_msgs/Image`` as a :class:`Frame` stamped with the header's time.

    rgb8 and bgr8 keep their encoding (the policy converts once, where it preprocesses); a mono8
    image becomes rgb8 with the grey value in every channel, because the model takes colour input.
    """
    img = image_to_array(msg)
    encoding = str(msg.encoding)
    if encoding == "mono8":
        img = np.repeat(img[:, :, None], 3, axis=2)
        encoding = "rgb8"
    return Frame(
        image=img,
        stamp=stamp_to_seconds(msg.header.stamp),
        encoding=encoding,
        frame_id=str(msg.header.frame_id) or "camera",
    )


def array_to_image(image: np.ndarray, encoding: str, msg_cls, stamp: float, frame_id: str, step: int | None = None):
    """A new ``msg_cls`` (``sensor_msgs.msg.Image``) holding ``image``.

    ``image`` is ``HxWx3`` uint8 for rgb8 / bgr8, ``HxW`` (or ``HxWx1``) for mono8. ``step``
    defaults to ``width * channels``; a larger one pads each row with zeros (what some drivers
    do; used to test readers).
    """
    if encoding not in IMAGE_CHANNELS:
        raise InvalidInputError(f"image encoding '{encoding}' is not supported; use one of {sorted(IMAGE_CHANNELS)}")
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise InvalidInputError(f"image must be uint8 for {encoding}, got {img.dtype}")
    channels = IMAGE_CHANNELS[encoding]
    if channels == 1 and img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    expected_ndim = 2 if channels == 1 else 3
    if img.ndim != expected_ndim or (channels == 3 and img.shape[2] != 3) or img.shape[0] < 1 or img.shape[1] < 1:
        want = "HxW" if channels == 1 else "HxWx3"
        raise InvalidInputError(f"{encoding} image must be {want}, got shape {img.shape}")
    height, width = int(img.shape[0]), int(img.shape[1])
    row = width * channels
    step = row if step is None else int(step)
    if step < row:
        raise InvalidInputError(f"step {step} is smaller than width x channels = {row}")
    rows = img.reshape(height, row)
    if step > row:
        padded = np.zeros((height, step), dtype=np.uint8)
        padded[:, :row] = rows
        rows = padded
    msg = msg_cls()
    fill_header(msg, stamp, frame_id)
    msg.height = height
    msg.width = width
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = step
    msg.data = _byte_array(rows)
    return msg


def frame_to_image(frame: Frame, msg_cls, frame_id: str | None = None):
    """A :class:`Frame` as a ``sensor_msgs/Image`` in the frame's own encoding."""
    return array_to_image(frame.image, frame.encoding, msg_cls, frame.stamp, frame_id or frame.frame_id)


def compressed_to_frame(msg) -> Frame:
    """A ``sensor_msgs/CompressedImage`` (jpeg or png, as image_transport's compressed plugin
    sends over a slow link) as a bgr8 :class:`Frame`."""
    import cv2  # lazy: only the policy node reading compressed images needs OpenCV

    buf = _data_bytes(msg.data)
    if buf.size == 0:
        raise InvalidInputError("compressed image holds no data")
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        raise InvalidInputError(f"compressed image (format '{msg.format}', {buf.size} bytes) does not decode")
    return Frame(image=img, stamp=stamp_to_seconds(msg.header.stamp), encoding="bgr8",
                 frame_id=str(msg.header.frame_id) or "camera")


def frame_to_compressed(frame: Frame, msg_cls, quality: int, frame_id: str | None = None):
    """A :class:`Frame` as a JPEG ``sensor_msgs/CompressedImage`` (for a slow link to a policy on
    another computer); ``format`` is what image_transport's compressed plugin writes."""
    import cv2  # lazy: only a camera node publishing compressed images needs OpenCV

    if not 1 <= int(quality) <= 100:
        raise InvalidInputError(f"JPEG quality must lie in [1, 100], got {quality}")
    bgr = frame.image if frame.encoding == "bgr8" else frame.image[..., ::-1]
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise InvalidInputError("JPEG encoding failed")
    msg = msg_cls()
    fill_header(msg, frame.stamp, frame_id or frame.frame_id)
    msg.format = f"{frame.encoding}; jpeg compressed bgr8"
    msg.data = _byte_array(buf)
    return msg


def camera_info(msg_cls, height: int, width: int, stamp: float, frame_id: str):
    """An uncalibrated ``sensor_msgs/CameraInfo`` for an image of ``height x width``.

    All-zero K/P mark the camera as uncalibrated (REP 104): the policy needs no intrinsics, and
    inventing them would mislead tools that do.
    """
    msg = msg_cls()
    fill_header(msg, stamp, frame_id)
    msg.height = int(height)
    msg.width = int(width)
    msg.distortion_model = "plumb_bob"
    return msg
