"""Safety layer: what stands between any policy and the motors (DESIGN.md sections 4-6).

- :class:`SafetyConfig`: every limit, documented with its unit;
- :class:`SafetyFilter`: pure, one :meth:`~SafetyFilter.step` per control tick;
- :class:`SafetyResult` / :class:`SafetyStatus` / :class:`Limit`: what it decided and why;
- :func:`apply` / :class:`SafeArm`: the one path from a decision to an :class:`~nora_ros.robot.arm.Arm`.
"""

from nora_ros.safety.actuation import SafeArm, apply
from nora_ros.safety.config import SafetyConfig
from nora_ros.safety.filter import SafetyFilter
from nora_ros.safety.status import HARD_LIMITS, Limit, SafetyResult, SafetyStatus

__all__ = [
    "HARD_LIMITS",
    "Limit",
    "SafeArm",
    "SafetyConfig",
    "SafetyFilter",
    "SafetyResult",
    "SafetyStatus",
    "apply",
]
