"""``python -m nora_ros.bench safety``: what the safety filter costs per control tick.

The command stream is the 25 real Bridge episodes' actions (from ../shared/data when present,
else smooth random actions), replayed back to back from their first states, so the ticks are
real motion with IK on almost every tick. The arm tracks perfectly (its joints are the last
target), computed outside the timed section: only :meth:`SafetyFilter.step` is timed, on a
monotonic clock. Also timed: hold ticks (no command) and rejected ticks (NaN). The last line
is the median cost of a moving tick in microseconds.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np

DEFAULT_DATA = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("safety", help="safety filter cost per control tick (median, p99)")
    p.add_argument("--ticks", type=int, default=5000, help="timed moving ticks (default 5000)")
    p.add_argument("--robot-model", default="wx250s", choices=("wx250s", "wx250"), help="arm model (default wx250s)")
    p.set_defaults(func=run)


def _episodes() -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    folder = DEFAULT_DATA / "octo_bridge_debug" / "extracted_train"
    files = sorted(folder.glob("episode_*.npz")) if folder.is_dir() else []
    if files:
        out = []
        for f in files:
            with np.load(f) as d:
                out.append((np.asarray(d["action"], float), np.asarray(d["state"], float)[0]))
        return out, f"{len(files)} real Bridge episodes"
    rng = np.random.default_rng(0)
    out = []
    for _ in range(25):
        a = np.zeros((10, 7))
        a[:, :3] = np.cumsum(rng.normal(0, 0.004, (10, 3)), axis=0).clip(-0.03, 0.03)
        a[:, 3:6] = rng.normal(0, 0.03, (10, 3))
        a[:, 6] = 1.0
        out.append((a, np.array([0.3, 0.0, 0.15, 0.0, 0.0, 0.0, 1.0])))
    return out, "25 random smooth episodes (../shared/data absent)"


def _us(samples: list[float]) -> str:
    s = np.array(samples) * 1e6
    return f"median {np.median(s):7.1f} us  p90 {np.percentile(s, 90):7.1f} us  p99 {np.percentile(s, 99):7.1f} us"


def run(args: argparse.Namespace) -> int:
    from nora_ros.actions import action_to_command, bridge_state_to_pose
    from nora_ros.robot.arm import ArmState
    from nora_ros.robot.kinematics import WidowXModel
    from nora_ros.safety import SafetyConfig, SafetyFilter

    model = WidowXModel.from_name(args.robot_model)
    episodes, source = _episodes()
    config = SafetyConfig()
    dt = config.tick_period
    moving: list[float] = []
    held: list[float] = []
    rejected: list[float] = []
    limited = 0
    now = 0.0
    clock = time.perf_counter
    while len(moving) < args.ticks:
        for actions, start in episodes:
            f = SafetyFilter(config, model)
            ik = model.ik(bridge_state_to_pose(start[:6]), model.sleep_joints, margin=config.joint_margin)
            if not ik.success:
                continue
            q = ik.joints
            pose = model.fk(q)
            for a in actions:
                now += dt
                state = ArmState(q, pose, 1.0, now)
                cmd = action_to_command(a, dt, stamp=now, observation_stamp=now)
                t0 = clock()
                res = f.step(cmd, state, now)
                t1 = clock()
                if res.target_joints is not None:
                    moving.append(t1 - t0)
                    q = res.target_joints
                    pose = model.fk(q)
                limited += bool(res.status.limits)
                now += dt
                state = ArmState(q, pose, 1.0, now)
                t0 = clock()
                f.step(None, state, now)
                held.append(clock() - t0)
                now += dt
                state = ArmState(q, pose, 1.0, now)
                bad = action_to_command(np.r_[np.nan, a[1:]], dt, stamp=now, observation_stamp=now)
                t0 = clock()
                f.step(bad, state, now)
                rejected.append(clock() - t0)
            if len(moving) >= args.ticks:
                break
    print(f"safety filter, {args.robot_model}, {source}, {len(moving)} moving ticks "
          f"({limited} with a limit acting), tick {dt} s")
    print(f"moving tick (limits + IK): {_us(moving)}")
    print(f"hold tick (no command):    {_us(held)}")
    print(f"rejected tick (NaN):       {_us(rejected)}")
    print(f"{np.median(moving) * 1e6:.1f}")
    return 0
