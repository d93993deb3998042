"""``nora-ros safety-replay``: replay an episode's actions through the scheduler (in an execution
mode, at a control rate), the safety filter and a simulated arm, and print what the arm did (or,
with ``--no-filter``, what it would do unguarded)."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    # Modes and aggregates are checked by SchedulerConfig (one list, one error naming the choices);
    # the CLI does not import the control stack to build its parser.
    p = subparsers.add_parser(
        "safety-replay",
        help="replay an episode's actions through the scheduler, the safety filter and SimArm",
        description="Replays the actions of an episode .npz (`action` (N, 7) Bridge deltas, optional `state`) "
                    "through the chunk scheduler in an execution mode, the safety filter and a simulated WidowX "
                    "at the control rate, starting from the episode's first state, and reports the end-effector's "
                    "motion and which limits acted. A step with a non-finite value or a gripper outside [0, 1] "
                    "is met as on the robot: every chunk holding it is refused (the arm holds when nothing is "
                    "due) and counted; only a file without an (N, 7) `action` is refused as a whole.",
    )
    p.add_argument("episode", help="episode .npz with `action` (N, 7) and optional `state` (N, 7)")
    p.add_argument("--chunk-size", type=int, default=1, metavar="T",
                   help="actions per observation, as NORA-Long predicts them (default 1; NORA-Long: 5)")
    p.add_argument("--execute-steps", type=int, default=1, metavar="K",
                   help="hold / interpolate: actions of each chunk executed before the next observation (1..T, "
                        "default 1); ensemble / blend observe every step and run each chunk to its end")
    p.add_argument("--mode", default="hold",
                   help="chunk execution mode: hold (default), interpolate, ensemble, blend; rtc is refused "
                        "(recorded chunks cannot be guided)")
    p.add_argument("--control-rate", type=float, default=5.0, metavar="HZ",
                   help="control ticks per second of the scheduler, the safety filter and the arm: a multiple of "
                        "5 (5 = one tick per 0.2 s step, the default; 10, 25, 50)")
    p.add_argument("--ensemble-decay", type=float, default=0.01, metavar="K",
                   help="ensemble: k in ACT's weights exp(-k i), i = 0 the oldest chunk (default 0.01)")
    p.add_argument("--blend-aggregate", default="weighted_average",
                   help="blend: how a new chunk's action combines with the queued one: weighted_average (default), "
                        "latest_only, average, conservative")
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
                    use_filter=not args.no_filter, robot_model=args.robot_model, episode=str(args.episode),
                    mode=args.mode, control_rate=args.control_rate, ensemble_decay=args.ensemble_decay,
                    blend_aggregate=args.blend_aggregate)
    if args.json:
        print(json.dumps(report.to_dict()))
        return 0
    r = report
    print(f"{r.episode}: {r.steps} steps, {r.robot_model}, {'with' if r.filter else 'WITHOUT'} the safety filter, "
          f"chunks of {r.chunk_size}, {r.execute_steps} executed per observation")
    print(f"  mode {r.mode} at {r.control_rate:g} Hz   {r.ticks} ticks, {r.held_ticks} held with no action due")
    reasons = ", ".join(f"{k} x{v}" for k, v in r.rejected_reasons.items())
    print(f"  rejected steps          {r.rejected_steps}" + (
        f" ({reasons}), never executed: {r.rejected_chunks} chunks refused, at most {r.longest_rejected_run} in a row "
        "(the policy node ends a trial after max_policy_failures in a row, 3 by default)" if r.rejected_steps else ""))
    if r.rejection:
        print(f"  first refusal           {r.rejection}")
    print(f"  lowest end effector z   {r.min_ee_z:.4f} m (table {r.table_z:.3f}, floor {r.floor_z:.3f}); "
          f"{r.below_table_ticks} ticks below the table")
    print(f"  workspace violations    {r.workspace_violations} ticks; joint-limit violations {r.joint_limit_violations}")
    print(f"  largest move            {r.max_step_translation * 1000:.1f} mm per tick, "
          f"{r.max_window_translation * 1000:.1f} mm per 0.2 s; largest open-loop path "
          f"{r.max_open_loop_translation * 1000:.1f} mm")
    print(f"  tracking error per tick median {r.tracking_error_mm['median']:.2f} mm / {r.tracking_error_rad['median']:.4f} rad, "
          f"max {r.tracking_error_mm['max']:.2f} mm / {r.tracking_error_rad['max']:.4f} rad")
    print(f"  drift from the commands {r.drift_mm:.2f} mm / {r.drift_rad:.4f} rad (largest, accumulated)")
    fired = ", ".join(f"{k} x{v}" for k, v in r.limits_fired.items()) or "none"
    print(f"  limits that acted       {fired}")
    print(f"  motion after e-stop     {r.estop_motion * 1000:.2f} mm" + ("" if r.filter else " (no filter: no e-stop)"))
    if r.ik_failures:
        print(f"  IK failures (unfiltered) {r.ik_failures} ticks: the target ran on, the arm stayed")
    return 0
