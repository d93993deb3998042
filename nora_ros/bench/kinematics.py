"""``python -m nora_ros.bench kinematics``: IK accuracy, success rates and cost per call.

Figures, per robot model:

- round trips: FK of random joints within the limits, IK seeded near the answer (Gaussian
  0.05 rad per joint): success rate, worst position and rotation error (the done criterion:
  1 mm, 0.01 rad), cost per call;
- 5 cm steps: from Bridge-like poses (where BridgeData's WidowX works, gripper roughly down), a
  5 cm step in a random direction, with the joint-velocity limit over one 0.2 s Bridge step and
  0.05 rad inside the limits (the done criterion: >= 99%); also over the whole Bridge
  workspace box, where some steps leave the arm's reach;
- control tick: a 30 Hz tick's step (about 1 cm, 0.05 rad) with the step bound: what the
  safety filter pays per tick. The last line is that median in microseconds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

BRIDGE_STEP = 0.2
"""s: one Bridge action."""
BOX_LOWER = np.array([0.1, -0.20, -0.01])
BOX_UPPER = np.array([0.45, 0.25, 0.30])
"""m: the Bridge / OpenVLA workspace box (DESIGN.md section 6)."""
BRIDGE_LOWER = np.array([0.15, -0.15, 0.01, -0.72, -0.45, -0.80])
BRIDGE_UPPER = np.array([0.41, 0.17, 0.27, 0.34, 0.11, 0.70])
"""Where BridgeData's WidowX works: the range of the 250 real states in ../shared/data widened by
5 cm in position (clipped to the box), and their Euler angles (of ``R_ee @ DOWN.T``)."""
MARGIN = 0.05
"""rad inside the joint limits (the safety filter's default joint margin)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("kinematics", help="WidowX IK accuracy, 5 cm step success and cost per call")
    p.add_argument("--robot-model", choices=("wx250s", "wx250", "all"), default="all", help="model(s) to measure (default all)")
    p.add_argument("--poses", type=int, default=10_000, help="random round-trip poses per model (default 10000)")
    p.add_argument("--steps", type=int, default=10_000, help="5 cm steps per model and region (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=run)


def bridge_like_joints(model, rng: np.random.Generator, lower=BRIDGE_LOWER, upper=BRIDGE_UPPER) -> np.ndarray:
    """Joints of a random Bridge-like pose (state drawn uniformly between ``lower`` and ``upper``)."""
    from nora_ros.actions import bridge_state_to_pose

    while True:
        result = model.ik(bridge_state_to_pose(rng.uniform(lower, upper)), model.sleep_joints, margin=MARGIN)
        if result.success:
            return result.joints


def feasible_by_modern_robotics(model, target: np.ndarray, seed: np.ndarray, bound: float) -> bool:
    """Independent check of a failure: does IKinSpace (Interbotix's solver), seeded from the current
    joints, find joints within the limits minus the margin and the step bound? (wx250s only)"""
    import modern_robotics as mr

    if model.n_joints != 6:
        return False
    joints, ok = mr.IKinSpace(model.screw_axes.T, model.home_pose, target, seed.copy(), 1e-4, 1e-5)
    joints = (joints + np.pi) % (2 * np.pi) - np.pi
    return bool(ok and model.within_limits(joints, MARGIN) and np.max(np.abs(joints - seed)) <= bound)


def step_success(model, rng: np.random.Generator, n: int, lower=BRIDGE_LOWER, upper=BRIDGE_UPPER,
                 length: float = 0.05) -> tuple[int, int, int, list[float]]:
    """(successes, tries, failures an independent solver could do, seconds per IK) of ``length``
    steps that start and end inside ``lower..upper``."""
    bound = model.max_joint_step(BRIDGE_STEP)
    ok = tries = missed = 0
    costs = []
    while tries < n:
        q = bridge_like_joints(model, rng, lower, upper)
        target = model.fk(q)
        d = rng.normal(size=3)
        target[:3, 3] += length * d / np.linalg.norm(d)
        if np.any(target[:3, 3] < lower[:3]) or np.any(target[:3, 3] > upper[:3]):
            continue
        tries += 1
        t0 = time.perf_counter()
        result = model.ik(target, q, max_joint_step=bound, margin=MARGIN)
        costs.append(time.perf_counter() - t0)
        ok += result.success
        if not result.success:
            missed += feasible_by_modern_robotics(model, target, q, bound)
    return ok, tries, missed, costs


def _us(samples: list[float]) -> str:
    s = np.array(samples) * 1e6
    return f"median {np.median(s):7.1f} us  p99 {np.percentile(s, 99):7.1f} us"


def run(args: argparse.Namespace) -> int:
    from nora_ros.actions import euler_to_matrix
    from nora_ros.robot.kinematics import ROBOT_MODELS, WidowXModel

    names = ROBOT_MODELS if args.robot_model == "all" else (args.robot_model,)
    last = float("nan")
    for name in names:
        model = WidowXModel.from_name(name)
        rng = np.random.default_rng(args.seed)
        print(f"== {name}")

        qs = rng.uniform(model.lower, model.upper, size=(args.poses, model.n_joints))
        t0 = time.perf_counter()
        targets = model.fk(qs)
        batch = time.perf_counter() - t0
        fk_costs = []
        for q in qs[:2000]:
            t0 = time.perf_counter()
            model.fk(q)
            fk_costs.append(time.perf_counter() - t0)
        print(f"FK one pose:          {_us(fk_costs)}   ({args.poses} poses batched: {batch * 1e6 / args.poses:.1f} us/pose)")

        seeds = np.clip(qs + rng.normal(0.0, 0.05, qs.shape), model.lower, model.upper)
        costs, pos_err, rot_err, ok = [], 0.0, 0.0, 0
        for target, seed in zip(targets, seeds, strict=True):
            t0 = time.perf_counter()
            result = model.ik(target, seed)
            costs.append(time.perf_counter() - t0)
            if result.success:
                ok += 1
                pos_err = max(pos_err, result.position_error)
                rot_err = max(rot_err, result.rotation_error)
        print(f"IK round trips:       {ok}/{args.poses} recovered, worst {pos_err * 1000:.2e} mm, "
              f"{rot_err:.2e} rad; {_us(costs)}")

        oracle = "modern_robotics IKinSpace" if model.n_joints == 6 else "(no oracle for 5 joints)"
        ok, tries, missed, costs = step_success(model, rng, args.steps)
        print(f"5 cm steps (Bridge):  {ok}/{tries} = {100.0 * ok / tries:.2f}% within the velocity limit over "
              f"{BRIDGE_STEP} s and {MARGIN} rad inside the limits; {_us(costs)}")
        print(f"  failures feasible for {oracle} from the same seed: {missed}")
        box_lower = np.concatenate([BOX_LOWER, BRIDGE_LOWER[3:]])
        box_upper = np.concatenate([BOX_UPPER, BRIDGE_UPPER[3:]])
        ok, tries, missed, _ = step_success(model, rng, args.steps, box_lower, box_upper)
        print(f"5 cm steps (box):     {ok}/{tries} = {100.0 * ok / tries:.2f}% over the whole workspace box; "
              f"failures feasible for {oracle}: {missed}")

        tick = 1.0 / 30.0
        costs = []
        for _ in range(min(args.steps, 5000)):
            q = bridge_like_joints(model, rng)
            target = model.fk(q)
            d = rng.normal(size=3)
            target[:3, 3] += 0.25 * tick * d / np.linalg.norm(d)  # 0.25 m/s for one tick
            target[:3, :3] = euler_to_matrix(rng.normal(0.0, 1.25 * tick / np.sqrt(3), 3)) @ target[:3, :3]
            t0 = time.perf_counter()
            model.ik(target, q, max_joint_step=model.max_joint_step(tick), margin=MARGIN)
            costs.append(time.perf_counter() - t0)
        print(f"IK per 30 Hz tick:    {_us(costs)}")
        last = float(np.median(np.array(costs) * 1e6))
    print(f"{last:.1f}")
    return 0
