"""``python -m nora_ros.bench ros``: what the node shells compute per message and per tick.

Figures (wall clock, this process) for the ROS-free work behind each callback and timer, with
plain attribute objects standing in for the message classes (rosidl's generated setters add
their own type checks on a robot):

- camera image in: ``sensor_msgs/Image`` 480x640 rgb8 -> Frame, tight and with padded rows;
- camera image out: Frame -> Image; JPEG encode (quality 90) and decode, for a remote policy;
- commands: EndEffectorCommand -> message -> EndEffectorCommand; a 5-step chunk -> message;
- ticks: the policy node's PolicyLoop.tick (a replayed episode behind VirtualInference) and the
  safety node's SafetyLoop.tick (SafetyFilter + kinematic SimArm), each at 10 Hz control.

The last line is the policy node's cost per camera frame (image in + policy tick), in ms.
"""

from __future__ import annotations

import argparse
import time
import types
from collections.abc import Callable

import numpy as np


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("ros", help="per-message conversion and per-tick loop costs of the node shells")
    p.add_argument("--repeat", type=int, default=200, help="calls timed per figure (default 200)")
    p.set_defaults(func=run)


def _msg_class(**defaults) -> type:
    """A stand-in message class: attributes with defaults, nested messages built fresh."""

    def init(self, **kw):
        for k, v in defaults.items():
            setattr(self, k, v() if callable(v) else v)
        for k, v in kw.items():
            setattr(self, k, v)

    return type("Msg", (), {"__init__": init})


Time = _msg_class(sec=0, nanosec=0)
Header = _msg_class(stamp=Time, frame_id="")
Vector3 = _msg_class(x=0.0, y=0.0, z=0.0)
Twist = _msg_class(linear=Vector3, angular=Vector3)
Image = _msg_class(header=Header, height=0, width=0, encoding="", is_bigendian=0, step=0, data=b"")
CompressedImage = _msg_class(header=Header, format="", data=b"")
Command = _msg_class(header=Header, twist=Twist, gripper=0.0, chunk_id=0, index=0, observation_stamp=Time)
Chunk = _msg_class(header=Header, chunk_id=0, model_id="", step_period=0.0, horizon=0, actions=(), token_ids=(),
                   latency=0.0, timing_names=(), timing_seconds=())


def _camera_image(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A real WidowX camera frame from ../shared/data when present (JPEG size depends on content),
    else noise (the worst case for JPEG)."""
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "simpler_real_bridge_frames"
    path = path / "real_inpainting__bridge__stack_cube_1st_frame.png"
    if path.exists():
        import cv2

        return np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1]), path.name
    return rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), "random noise (../shared/data absent)"


def _time(fn: Callable[[], object], repeat: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _us(values: list[float]) -> str:
    a = np.asarray(values) * 1e6
    return f"median {np.median(a):9.1f} us  p90 {np.percentile(a, 90):9.1f} us  (n={a.size})"


def run(args: argparse.Namespace) -> int:
    from nora_ros.actions import ActionChunk, action_to_command
    from nora_ros.control.policy_loop import LoopConfig, PolicyLoop
    from nora_ros.control.safety_loop import SafetyLoop
    from nora_ros.interface import convert as rc
    from nora_ros.policy.worker import VirtualInference
    from nora_ros.robot.kinematics import WidowXModel
    from nora_ros.robot.sim_arm import SimArm
    from nora_ros.safety import SafeArm, SafetyConfig, SafetyFilter

    n = args.repeat
    rng = np.random.default_rng(0)
    img, source = _camera_image(rng)
    tight = rc.array_to_image(img, "rgb8", Image, 1.0, "camera")
    padded = rc.array_to_image(img, "rgb8", Image, 1.0, "camera", step=640 * 3 + 64)
    frame = rc.image_to_frame(tight)
    jpeg = rc.frame_to_compressed(frame, CompressedImage, 90)
    print(f"bench ros: 480x640 rgb8 image from {source} ({640 * 3 * 480 / 1e6:.2f} MB raw, "
          f"{len(jpeg.data) / 1e3:.0f} kB as JPEG q90)")
    rows = [
        ("image -> frame (tight rows)", _time(lambda: rc.image_to_frame(tight), n)),
        ("image -> frame (padded rows)", _time(lambda: rc.image_to_frame(padded), n)),
        ("frame -> image", _time(lambda: rc.frame_to_image(frame, Image), n)),
        ("frame -> JPEG q90", _time(lambda: rc.frame_to_compressed(frame, CompressedImage, 90), n)),
        ("JPEG -> frame", _time(lambda: rc.compressed_to_frame(jpeg), n)),
    ]
    cmd = action_to_command(np.array([0.01, 0.0, -0.01, 0.0, 0.0, 0.05, 1.0]), 0.2, 1.0, 3, 0, 0.9)
    chunk = ActionChunk(np.zeros((5, 7)), model_id="nora-long", timings={"total": 0.1}, token_ids=tuple(range(40)))
    rows += [
        ("command -> message -> command", _time(lambda: rc.command_from_msg(rc.command_to_msg(cmd, Command)), n)),
        ("chunk (5 x 7) -> message", _time(lambda: rc.chunk_to_msg(chunk, Chunk), n)),
    ]

    # The policy node's control tick: a replayed Bridge-like episode, a frame every other tick.
    from nora_ros.policy.replay import ReplayPolicy

    actions = np.concatenate([rng.normal(0, 0.005, (4 * n + 10, 6)), np.ones((4 * n + 10, 1))], axis=1)
    policy = ReplayPolicy(actions, model_id="replay:bench")
    loop = PolicyLoop(VirtualInference(policy, 0.0), LoopConfig(control_rate_hz=10.0))
    loop.on_trial(1, "RUNNING", "put carrot in pot", 0.0)
    clock = types.SimpleNamespace(t=0.0)

    def policy_tick():
        clock.t += 0.1
        loop.on_frame(frame.__class__(image=frame.image, stamp=clock.t))
        loop.tick(clock.t)

    rows.append(("policy tick (PolicyLoop)", _time(policy_tick, n)))

    model = WidowXModel.from_name("wx250s")
    arm = SimArm(model)
    safety = SafetyLoop(SafeArm(SafetyFilter(SafetyConfig(tick_period=0.1), model), arm), start_duration=1.0)
    safety.on_trial(1, "RESETTING", (0.25, 0.0, 0.15, 0.0, 0.0, 0.0), arm.time)
    for _ in range(60):
        arm.advance(0.1)
        safety.tick(arm.time)
    safety.on_trial(1, "RUNNING", (), arm.time)
    sign = [1.0]

    def safety_tick():
        arm.advance(0.1)
        sign[0] = -sign[0]  # back and forth so the target stays in the workspace
        t = arm.time
        safety.on_command(action_to_command(np.array([0.0, 0.01 * sign[0], 0.0, 0.0, 0.0, 0.0, 1.0]), 0.2, t,
                                            observation_stamp=t))
        safety.tick(t)

    rows.append(("safety tick (SafetyLoop + SimArm)", _time(safety_tick, n)))
    width = max(len(r[0]) for r in rows)
    for name, values in rows:
        print(f"{name:<{width}}  {_us(values)}")
    per_frame = np.median(rows[0][1]) + np.median(rows[-2][1])
    print(f"policy node per camera frame (image in + tick): {per_frame * 1e3:.3f} ms")
    return 0
