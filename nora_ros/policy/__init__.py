"""Policies: (camera frame, instruction) -> action chunk. See :mod:`nora_ros.policy.base`."""

from nora_ros.policy.base import Policy
from nora_ros.policy.replay import ReplayPolicy

__all__ = ["Policy", "ReplayPolicy"]
