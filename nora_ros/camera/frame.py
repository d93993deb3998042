"""Camera frames: the :class:`Frame` type shared by sources, policies and the runner.

Frame sources (device, video file, image folder, simulator) and the policy's image
preprocessing live here too (DESIGN.md section 3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from nora_ros.errors import InvalidInputError

ENCODINGS = ("rgb8", "bgr8")


@dataclass(frozen=True)
class Frame:
    """One camera image: ``HxWx3`` uint8 in ``encoding`` (rgb8 or bgr8), with its capture time.

    ``stamp`` is seconds on the clock the consumer compares against (monotonic in the runner,
    ROS time in the nodes). ``extras`` carries optional ground truth from a simulator (object
    poses) for scripted policies; a real camera leaves it empty.
    """

    image: np.ndarray
    stamp: float
    encoding: str = "rgb8"
    frame_id: str = "camera"
    extras: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        img = self.image
        if not isinstance(img, np.ndarray):
            raise InvalidInputError(f"frame image must be a numpy array, got {type(img).__name__}")
        if img.dtype != np.uint8:
            raise InvalidInputError(f"frame image must be uint8, got {img.dtype}")
        if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 1 or img.shape[1] < 1:
            raise InvalidInputError(f"frame image must be HxWx3, got shape {img.shape}")
        if self.encoding not in ENCODINGS:
            raise InvalidInputError(f"frame encoding must be one of {ENCODINGS}, got '{self.encoding}'")

    def rgb(self) -> np.ndarray:
        """The image as RGB (a view when it already is)."""
        return self.image if self.encoding == "rgb8" else self.image[..., ::-1]
