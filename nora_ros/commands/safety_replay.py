"""``nora-ros safety-replay``: replay an episode's actions through the safety filter and a
simulated arm, and print what the arm did (or, with ``--no-filter``, what it would do unguarded)."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "safety-replay",
        help="replay an episode's actions through the safety filter and SimArm at 5 Hz",
        description="Replays the actions of an episode .npz (`action` (N, 7) Bridge deltas, optional `state`) "
                    "through the safety filter and a simulated WidowX at 5 Hz, starting from the episode's first "
                    "state, and reports the end-effector's motion and which limits acted.",
    )
    p.add_argument("episode", help="episode .npz with `action` (N, 7) and optional `state` (N, 7)")
    p.add_argument("--chunk-size", type=int, default=1, metavar="T",
                   help="actions per observation, as NORA-Long predicts them (default 1; NORA-Long: 5)")
    p.add_argument("--execute-steps", type=int, default=1, metavar="K",
                   help="actions of each chunk executed before the next observation (1..T, default 1)")
    p.add_argument("--no-filter", action="store_true",
                   help="replay without the safety filter (widowx_envs behaviour) to see what it prevents")
    p.add_argument("--robot-model", default="wx250s", choices=("wx250s", "wx250"), help="arm model (default wx250s)")
    p.add_argument("--start-state", type=float, nargs=6, metavar=("X", "Y", "Z", "ROLL", "PITCH", "YAW"),
                   help="start pose when the episode has no `state` (default 0.3 0 0.15 0 0 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nora_ros.control.safety_replay import load_episode, replay

    actions, state = load_episode(args.episode)
    start = state[0] if state is not None else args.start_state
    report = replay(actions, start, chunk_size=args.chunk_size, execute_steps=args.execute_steps,
                    use_filter=not args.no_filter, robot_model=args.robot_model, episode=str(args.episode))
    if args.json:
        print(json.dumps(report.to_dict()))
        return 0
    r = report
    print(f"{r.episode}: {r.steps} steps, {r.robot_model}, {'with' if r.filter else 'WITHOUT'} the safety filter, "
          f"chunks of {r.chunk_size}, {r.execute_steps} executed per observation")
    print(f"  lowest end effector z   {r.min_ee_z:.4f} m (table {r.table_z:.3f}, floor {r.floor_z:.3f}); "
          f"{r.below_table_ticks} ticks below the table")
    print(f"  workspace violations    {r.workspace_violations} ticks; joint-limit violations {r.joint_limit_violations}")
    print(f"  largest step            {r.max_step_translation * 1000:.1f} mm; largest open-loop path "
          f"{r.max_open_loop_translation * 1000:.1f} mm")
    print(f"  tracking error per step median {r.tracking_error_mm['median']:.2f} mm / {r.tracking_error_rad['median']:.4f} rad, "
          f"max {r.tracking_error_mm['max']:.2f} mm / {r.tracking_error_rad['max']:.4f} rad")
    print(f"  drift from the actions  {r.drift_mm:.2f} mm / {r.drift_rad:.4f} rad (largest, accumulated)")
    fired = ", ".join(f"{k} x{v}" for k, v in r.limits_fired.items()) or "none"
    print(f"  limits that acted       {fired}")
    print(f"  motion after e-stop     {r.estop_motion * 1000:.2f} mm" + ("" if r.filter else " (no filter: no e-stop)"))
    if r.ik_failures:
        print(f"  IK failures (unfiltered) {r.ik_failures} ticks: the target ran on, the arm stayed")
    return 0
