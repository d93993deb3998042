"""One error hierarchy for the package.

Every error nora_ros raises on purpose derives from :class:`NoraError`, and each subclass also
derives from the built-in it resembles, so callers can catch either. Low-level errors are
translated at the boundary with ``raise ... from exc`` so the cause stays visible.
"""


class NoraError(Exception):
    """Base class of every error raised by nora_ros on purpose."""


class ConfigurationError(NoraError, ValueError):
    """A configuration value is invalid; the message says which and how to fix it."""


class InvalidInputError(NoraError, ValueError):
    """An input (image, instruction, statistics, message) is malformed; nothing moved."""


class InvalidInstructionError(InvalidInputError):
    """An operator instruction was rejected (empty, too long, not printable, not UTF-8)."""


class FastDecodeError(NoraError, ValueError):
    """A FAST+ token sequence does not decode to a well-formed action chunk.

    ``reason`` is a short machine-readable tag (``"length"``, ``"alphabet"``, ``"range"``,
    ``"bpe"``, ...), so callers can count failures by kind.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class ModelLoadError(NoraError, RuntimeError):
    """A checkpoint could not be loaded; the message names the path or hub ID and what to do."""


class PolicyError(NoraError, RuntimeError):
    """The policy failed to produce an action chunk for an observation."""


class KinematicsError(NoraError, ValueError):
    """No joint solution within limits for a requested pose (the target does not advance)."""


class ArmError(NoraError, RuntimeError):
    """The arm (driver, simulator) failed or is not reachable."""


class BagError(NoraError, RuntimeError):
    """A rosbag2 recording cannot be read or written."""
