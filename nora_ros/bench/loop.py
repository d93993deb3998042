"""``python -m nora_ros.bench loop``: does the control tick keep its rate while the model thinks?

Runs the real :class:`~nora_ros.runner.ControlLoop` (inference worker thread, scheduler,
safety filter, kinematic :class:`~nora_ros.robot.sim_arm.SimArm`) on the wall clock, with a policy that
takes ``--inference-ms`` per call, and prints the tick period's jitter (|actual period -
nominal|: median, p99, max in ms), missed ticks (a tick that started a whole period late), and
the share of ticks that held for lack of a valid action.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("loop", help="control-loop tick jitter with a slow policy", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=25.0, help="control rate in Hz (default 25)")
    p.add_argument("--inference-ms", type=float, default=150.0, help="time per inference in ms (default 150)")
    p.add_argument("--seconds", type=float, default=20.0, help="how long to run (default 20)")
    p.add_argument("--execute-steps", type=int, default=1)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nora_ros.actions import ActionChunk, bridge_state_to_pose
    from nora_ros.camera.frame import Frame
    from nora_ros.clock import MonotonicClock
    from nora_ros.policy.base import Policy
    from nora_ros.policy.worker import ThreadedInference
    from nora_ros.robot.kinematics import WidowXModel
    from nora_ros.robot.sim_arm import SimArm
    from nora_ros.runner import ControlLoop, LoopConfig
    from nora_ros.safety import SafeArm, SafetyConfig, SafetyFilter

    delay = args.inference_ms / 1000.0

    class SleepingPolicy(Policy):
        """Stands in for the model's latency; circles slowly so the filter has work to do."""

        model_id = f"sleep-{args.inference_ms:g}ms"

        def __init__(self) -> None:
            self.k = 0

        def act(self, frame, instruction):
            time.sleep(delay)  # releases the GIL, like torch kernels do
            self.k += 1
            a = np.zeros((1, 7))
            a[0, 0] = 0.01 * np.cos(self.k / 5)
            a[0, 1] = 0.01 * np.sin(self.k / 5)
            a[0, 6] = 1.0
            return ActionChunk(a, model_id=self.model_id)

    image = np.zeros((480, 640, 3), np.uint8)

    class StillCamera:
        def capture(self, now: float) -> Frame:
            return Frame(image, stamp=now)

    clock = MonotonicClock()
    config = LoopConfig(control_rate_hz=args.rate, camera_rate_hz=min(args.rate, 30.0),
                        execute_steps=args.execute_steps)
    model = WidowXModel.from_name("wx250s")
    start = model.ik(bridge_state_to_pose([0.3, 0.0, 0.15, 0, 0, 0]), model.home_joints)
    arm = SimArm(model, joints=start.joints, clock=clock)
    safe = SafeArm(SafetyFilter(SafetyConfig(tick_period=config.tick_period), model), arm)
    loop = ControlLoop(StillCamera(), ThreadedInference(SleepingPolicy()), safe, config)
    loop.begin("bench")

    period = config.tick_period
    n = int(args.seconds * args.rate)
    starts, held, missed, work = [], 0, 0, []
    deadline = clock.now() + period
    try:
        for _ in range(n):
            clock.sleep_until(deadline)
            t = clock.now()
            starts.append(t)
            rec = loop.tick(t, True)
            held += rec.commanded is None
            work.append(clock.now() - t)
            deadline += period
            while clock.now() > deadline:  # overran a whole period: that tick is missed
                missed += 1
                deadline += period
    finally:
        loop.worker.close()
    jitter = np.abs(np.diff(starts) - period) * 1e3
    work_ms = np.array(work) * 1e3
    print(f"control loop at {args.rate:g} Hz for {args.seconds:g} s, inference {args.inference_ms:g} ms, "
          f"execute_steps {args.execute_steps}: {len(starts)} ticks")
    print(f"tick work (ms): median {np.median(work_ms):.3f}  p99 {np.percentile(work_ms, 99):.3f}  max {work_ms.max():.3f}")
    print(f"jitter (ms): median {np.median(jitter):.3f}  p99 {np.percentile(jitter, 99):.3f}  max {jitter.max():.3f}")
    print(f"missed ticks: {missed}")
    print(f"held ticks (no valid action due): {held}/{len(starts)} = {100 * held / len(starts):.1f}%")
    return 0
