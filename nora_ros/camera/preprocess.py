"""Image preprocessing for NORA: a camera frame to the model's 224x224 input and pixel patches.

Training (OpenVLA/NORA RLDS pipeline) resized images with TensorFlow's
``tf.image.resize(method="lanczos3", antialias=True)`` and rounded back to uint8; the reference
WidowX loop JPEG-encodes the frame first (quality 95) and decodes it with TensorFlow, whose
decoder uses libjpeg's fast integer IDCT: :func:`jpeg_round_trip` decodes the same way
(simplejpeg, ``fastdct``), so its pixels equal TensorFlow's (PIL's accurate IDCT differs in
about 60 % of the values, by up to 15 levels, on real WidowX frames). :func:`resize_lanczos3` reproduces TensorFlow's
separable scale-and-translate kernel in numpy (sparse banded weights, cached per input size,
so a 480x640 frame costs two sparse products), without a PIL round trip.

:func:`pixel_patches` then turns the 224x224 RGB image into exactly what Qwen2.5-VL's image
processor (``Qwen2VLImageProcessor``) feeds the vision tower: rescale by 1/255, normalize with
the processor's mean/std, and cut into 14x14 patches repeated over a temporal patch of 2,
ordered by 2x2 merge window. The tests compare both against the processor and PIL.
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse

from nora_ros.errors import ConfigurationError, InvalidInputError

MODEL_IMAGE_SIZE = 224
"""NORA's input resolution: 224x224 RGB gives a 16x16 patch grid, 64 image tokens."""

TRAINING_ASPECT = 640 / 480
"""Width / height of the frames NORA was trained on (Bridge's 480x640 camera), squashed to 224x224."""

ASPECTS = ("squash", "crop")

_log = logging.getLogger(__name__)
_warned_shapes: set[tuple[int, int]] = set()

ENCODINGS = ("rgb8", "bgr8")

LANCZOS_RADIUS = 3.0


@dataclass(frozen=True)
class PreprocessConfig:
    """How a camera frame becomes the model image.

    ``size``: output side in pixels (NORA: 224). ``jpeg_quality``: when set (1..100), the frame
    is JPEG-encoded and decoded first, as the reference robot loop and training data did
    (TensorFlow's default quality is 95); ``None`` skips the round trip (faster, no PIL).
    ``aspect``: a frame whose width / height is not the training frames' 4:3 is ``squash``-ed
    to the square like any frame (as the reference does; warned once per frame size: objects
    then look wider or narrower than in training), or centre-``crop``-ped to 4:3 first.
    """

    size: int = MODEL_IMAGE_SIZE
    jpeg_quality: int | None = None
    aspect: str = "squash"

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 28 or self.size % 28:
            raise ConfigurationError(f"image size must be a positive multiple of 28 (patch 14 x merge 2), got {self.size}")
        if self.jpeg_quality is not None and not (1 <= int(self.jpeg_quality) <= 100):
            raise ConfigurationError(f"jpeg_quality must be 1..100 or None (no JPEG round trip), got {self.jpeg_quality}")
        if self.aspect not in ASPECTS:
            raise ConfigurationError(f"aspect must be one of {ASPECTS}, got {self.aspect!r}")


def validate_image(image: object, encoding: str = "rgb8") -> np.ndarray:
    """Return ``image`` if it is an ``HxWx3`` uint8 array in a known encoding, else raise.

    The error names what is wrong (type, dtype, shape, encoding) so a bad camera driver
    setting is found at once rather than as a garbled action.
    """
    if encoding not in ENCODINGS:
        raise InvalidInputError(f"image encoding must be one of {ENCODINGS}, got '{encoding}'")
    if not isinstance(image, np.ndarray):
        raise InvalidInputError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InvalidInputError(f"image must be uint8 (0..255), got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidInputError(f"image must be HxWx3 (RGB or BGR), got shape {image.shape}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise InvalidInputError(f"image must be at least 2x2 pixels, got {image.shape[0]}x{image.shape[1]}")
    return image


def _lanczos3(t: np.ndarray) -> np.ndarray:
    t = np.abs(t)
    out = np.sinc(t) * np.sinc(t / LANCZOS_RADIUS)
    return np.where(t < LANCZOS_RADIUS, out, 0.0)


@functools.lru_cache(maxsize=16)
def lanczos3_matrix(in_size: int, out_size: int) -> scipy.sparse.csr_matrix:
    """The ``(out_size, in_size)`` resampling matrix of TensorFlow's antialiased lanczos3.

    As in TensorFlow's ``scale_and_translate``: output pixel ``i`` samples the input at
    ``(i + 0.5) / scale``; when shrinking, the kernel is widened by ``1 / scale`` (antialias);
    taps outside the image are dropped and the rest renormalized to sum to 1.
    """
    scale = out_size / in_size
    kernel_scale = max(1.0 / scale, 1.0)
    radius = LANCZOS_RADIUS * kernel_scale
    rows, cols, vals = [], [], []
    for i in range(out_size):
        centre = (i + 0.5) / scale
        start = max(int(np.ceil(centre - radius - 0.5)), 0)
        end = min(int(np.floor(centre + radius - 0.5)), in_size - 1)
        src = np.arange(start, end + 1)
        w = _lanczos3((src + 0.5 - centre) / kernel_scale)
        total = w.sum()
        if abs(total) > 1e-6:
            w = w / total
        rows.extend([i] * len(src))
        cols.extend(src.tolist())
        vals.extend(w.tolist())
    return scipy.sparse.csr_matrix(
        (np.asarray(vals, dtype=np.float32), (rows, cols)), shape=(out_size, in_size), dtype=np.float32
    )


def resize_lanczos3(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an ``HxWxC`` uint8 image with antialiased lanczos3, rounded and clipped to uint8."""
    h, w, c = image.shape
    if (h, w) == (height, width):
        return np.ascontiguousarray(image)
    wy = lanczos3_matrix(h, height)
    wx = lanczos3_matrix(w, width)
    x = image.astype(np.float32).reshape(h, w * c)
    x = wy @ x  # (height, w*c)
    x = x.reshape(height, w, c).transpose(1, 0, 2).reshape(w, height * c)
    x = wx @ x  # (width, height*c)
    x = x.reshape(width, height, c).transpose(1, 0, 2)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def jpeg_round_trip(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode as JPEG (PIL/libjpeg, 4:2:0) and decode with the fast integer IDCT: pixel for pixel
    what the reference loop's ``tf.image.encode_jpeg`` + ``tf.io.decode_image`` give (checked on
    the real WidowX frames in ../shared/data against TensorFlow 2.15: 0 values differ)."""
    import simplejpeg
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buf, format="JPEG", quality=int(quality))
    return simplejpeg.decode_jpeg(buf.getvalue(), colorspace="RGB", fastdct=True, fastupsample=False)


def crop_to_aspect(image: np.ndarray, aspect: float = TRAINING_ASPECT) -> np.ndarray:
    """The centred window of ``image`` with width / height = ``aspect`` (a view, no copy)."""
    h, w = image.shape[:2]
    if w / h > aspect:
        cw = int(round(h * aspect))
        x0 = (w - cw) // 2
        return image[:, x0 : x0 + cw]
    ch = int(round(w / aspect))
    y0 = (h - ch) // 2
    return image[y0 : y0 + ch]


def _check_aspect(h: int, w: int) -> None:
    """Warn once per frame size when squashing a frame that is not 4:3 (tolerance 1 %)."""
    if abs((w / h) / TRAINING_ASPECT - 1.0) <= 0.01 or (h, w) in _warned_shapes:
        return
    _warned_shapes.add((h, w))
    _log.warning("camera frames are %dx%d (width/height %.3f), not the 4:3 NORA was trained on: squashing them "
                 "to %dx%d distorts the scene; set the camera to 640x480 or use aspect: crop", w, h, w / h,
                 MODEL_IMAGE_SIZE, MODEL_IMAGE_SIZE)


def to_model_image(image: np.ndarray, encoding: str = "rgb8", config: PreprocessConfig | None = None) -> np.ndarray:
    """A camera image (``HxWx3`` uint8, rgb8 or bgr8, any size) to the ``size x size`` RGB model image."""
    config = config or PreprocessConfig()
    image = validate_image(image, encoding)
    rgb = image if encoding == "rgb8" else image[..., ::-1]
    if config.aspect == "crop":
        rgb = crop_to_aspect(rgb)
    else:
        _check_aspect(*rgb.shape[:2])
    if config.jpeg_quality is not None:
        rgb = jpeg_round_trip(np.ascontiguousarray(rgb), config.jpeg_quality)
    return resize_lanczos3(rgb, config.size, config.size)


@dataclass(frozen=True)
class PatchSpec:
    """Qwen2.5-VL's image patching, read from the checkpoint's image processor config."""

    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    patch_size: int = 14
    temporal_patch_size: int = 2
    merge_size: int = 2
    rescale_factor: float = 1.0 / 255.0

    def __post_init__(self) -> None:
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or min(self.image_std) <= 0:
            raise ConfigurationError(f"image mean/std must be 3 values with std > 0, got {self.image_mean}, {self.image_std}")
        for name in ("patch_size", "temporal_patch_size", "merge_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigurationError(f"{name} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def from_processor(cls, image_processor: object) -> PatchSpec:
        """Read mean/std/patch sizes from a transformers Qwen2-VL image processor."""

        def triple(v: Sequence[float] | float) -> tuple[float, float, float]:
            return tuple(float(x) for x in v) if isinstance(v, Sequence) else (float(v),) * 3  # type: ignore[return-value]

        return cls(
            image_mean=triple(image_processor.image_mean),
            image_std=triple(image_processor.image_std),
            patch_size=int(image_processor.patch_size),
            temporal_patch_size=int(image_processor.temporal_patch_size),
            merge_size=int(image_processor.merge_size),
            rescale_factor=float(getattr(image_processor, "rescale_factor", 1.0 / 255.0)),
        )

    def grid(self, height: int, width: int) -> tuple[int, int, int]:
        """``(t, h, w)`` patch grid of a ``height x width`` image (one frame)."""
        unit = self.patch_size * self.merge_size
        if height % unit or width % unit:
            raise InvalidInputError(f"image {height}x{width} is not a multiple of {unit} (patch x merge)")
        return 1, height // self.patch_size, width // self.patch_size

    def n_image_tokens(self, height: int, width: int) -> int:
        """How many ``<|image_pad|>`` tokens the image takes in the prompt (64 for 224x224)."""
        t, h, w = self.grid(height, width)
        return t * h * w // (self.merge_size**2)


def pixel_patches(rgb: np.ndarray, spec: PatchSpec) -> tuple[np.ndarray, np.ndarray]:
    """``(pixel_values, image_grid_thw)`` for one RGB uint8 image, as Qwen2VLImageProcessor makes them.

    ``pixel_values`` is ``(t*h*w, 3 * temporal * patch * patch)`` float32, rows ordered by
    merge window (``h/merge, w/merge, merge, merge``), columns by (channel, time, row, col).
    """
    height, width, _ = rgb.shape
    _, gh, gw = spec.grid(height, width)
    m, p, tp = spec.merge_size, spec.patch_size, spec.temporal_patch_size
    x = rgb.astype(np.float32) * np.float32(spec.rescale_factor)
    x = (x - np.asarray(spec.image_mean, dtype=np.float32)) / np.asarray(spec.image_std, dtype=np.float32)
    x = x.transpose(2, 0, 1)  # (C, H, W)
    x = x.reshape(3, gh // m, m, p, gw // m, m, p).transpose(1, 4, 2, 5, 0, 3, 6)  # (gh', gw', m, m, C, p, p)
    x = np.broadcast_to(x[:, :, :, :, :, None], (*x.shape[:5], tp, p, p))
    pixel_values = np.ascontiguousarray(x.reshape(gh * gw, 3 * tp * p * p))
    return pixel_values, np.array([[1, gh, gw]], dtype=np.int64)
