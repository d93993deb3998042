"""Policies: (camera frame, instruction) -> action chunk. See :mod:`nora_ros.policy.base`."""

from nora_ros.policy.base import Policy

__all__ = ["Policy"]
