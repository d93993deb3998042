"""The one path from the safety filter to an arm.

:func:`apply` is the only function that turns a :class:`SafetyResult` into arm commands; the
runner, the replay command and the ROS safety node all call it (directly or through
:class:`SafeArm`), so no motion reaches the motors without having passed the filter.
"""

from __future__ import annotations

from nora_ros.actions import EndEffectorCommand
from nora_ros.robot.arm import Arm
from nora_ros.safety.filter import SafetyFilter
from nora_ros.safety.status import SafetyResult


def apply(result: SafetyResult, arm: Arm, duration: float) -> None:
    """Send ``result`` to ``arm``: joints over ``duration`` seconds, or hold; then the gripper.

    ``target_joints is None`` means hold (a rejection, e-stop, IK failure, dry run or nothing
    to do), so the arm is told to stop where it is rather than left to finish an old target.
    """
    if result.target_joints is None:
        arm.hold()
    else:
        arm.command_joints(result.target_joints, duration)
    if result.gripper is not None:
        arm.command_gripper(result.gripper)


class SafeArm:
    """An arm behind its safety filter: the object a control loop drives.

    ``tick(cmd, now)`` reads the arm, steps the filter and applies the result. The e-stop acts
    on the arm at once, not only on the next tick.
    """

    def __init__(self, safety: SafetyFilter, arm: Arm):
        self.filter = safety
        self.arm = arm
        self.last: SafetyResult | None = None

    def tick(self, cmd: EndEffectorCommand | None, now: float) -> SafetyResult:
        """One control tick at time ``now`` (seconds, the arm's clock)."""
        result = self.filter.step(cmd, self.arm.state(), now)
        apply(result, self.arm, self.filter.config.tick_period)
        self.last = result
        return result

    def estop(self, reason: str = "operator e-stop") -> None:
        """Latch the e-stop and stop the arm now."""
        self.filter.estop(reason)
        self.arm.hold()

    def reset_estop(self) -> None:
        self.filter.reset_estop()

    def set_enabled(self, enabled: bool) -> None:
        """Actuation on/off; turning it off also stops the arm now."""
        self.filter.set_enabled(enabled)
        if not enabled:
            self.arm.hold()

    def reanchor(self) -> None:
        """Restart from where the arm is (trial start)."""
        self.filter.reanchor(self.arm.state())
