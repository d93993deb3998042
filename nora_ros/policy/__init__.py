"""Policies: (camera frame, instruction) -> action chunk, behind :class:`~nora_ros.policy.base.Policy`:
NORA (``nora/``, with FAST+ in ``fast/``), replayed episodes, and the inference worker that
keeps the model off the control loop's thread. May import camera, trials.instruction and the root."""

from nora_ros.policy.base import Policy
from nora_ros.policy.replay import ReplayPolicy

__all__ = ["Policy", "ReplayPolicy"]
