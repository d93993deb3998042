"""``nora-ros demo``: the whole stack closed-loop in the simulator with the scripted expert.

README's main job: no robot, GPU or ROS needed. Runs N trials of "put the carrot in the pot"
through camera, policy worker, scheduler, safety filter, MuJoCo arm and supervisor; prints
progress and the results table; writes the results file, a contact sheet of one trial and a
plot of commanded vs executed end-effector motion into ``--out``, and records every trial as a
rosbag2 (mcap, JPEG images) into ``--out``/bags (``--no-record`` turns it off): ``nora-ros replay``
and ``ros2 bag play`` take them.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the simulated closed loop with the scripted expert (main job)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=5, help="number of trials (default 5)")
    p.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first trial's layout; trial k uses seed+k")
    p.add_argument("--task", default="carrot_in_pot", help="sim task (carrot_in_pot, carrot_on_plate)")
    p.add_argument("--max-steps", type=int, default=60, help="policy steps per trial before scoring (default 60)")
    p.add_argument("--control-rate", type=float, default=10.0, help="control ticks per second (default 10)")
    p.add_argument("--realtime", action="store_true", help="pace the simulation to the wall clock, inference in a thread")
    p.add_argument("--no-record", dest="record", action="store_false",
                   help="do not record the trials (default: one rosbag2 per trial in OUT/bags)")
    p.add_argument("--raw-images", action="store_true",
                   help="record sensor_msgs/Image instead of JPEG CompressedImage (about 20x larger)")
    from nora_ros.console.command import add_console_args

    add_console_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nora_ros.sim.expert import ScriptedExpertPolicy

    if args.console:
        from nora_ros.console.command import run_console

        return run_console(args, lambda world: ScriptedExpertPolicy(world), model_id="scripted-expert")
    return run_sim_session(args, lambda world: ScriptedExpertPolicy(world), model_id="scripted-expert")


def run_sim_session(args: argparse.Namespace, policy_factory, model_id: str = "", checkpoint: str = "",
                    latency: float | None = 0.0) -> int:
    """Shared by ``demo`` and ``sim``: run the trials, print progress and the table, write files."""
    import pathlib
    import sys
    import time

    from nora_ros.runner import LoopConfig, build_sim_stack, executed_path, realtime_pacer, run_sim_trial
    from nora_ros.trials import figures as plots
    from nora_ros.trials.results_store import load_results
    from nora_ros.trials.results_table import build_table, format_table

    if args.trials < 1:
        print("nora-ros: --trials must be >= 1", file=sys.stderr)
        return 2
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    loop_config = LoopConfig(control_rate_hz=args.control_rate, camera_rate_hz=min(5.0, args.control_rate),
                             execute_steps=getattr(args, "execute_steps", 1))
    recorder = None
    if getattr(args, "record", False):
        import importlib.util

        from nora_ros.bag.record import RecordOptions, TrialBags

        if importlib.util.find_spec("rosbags") is None:
            from nora_ros.errors import ConfigurationError

            raise ConfigurationError("recording needs the rosbags package: pip install -e '.[bag]', or pass --no-record")

        recorder = TrialBags(out / "bags", RecordOptions(images="raw" if args.raw_images else "jpeg",
                                                         results_file=str(results_path)))
    stack = build_sim_stack(policy_factory, task=args.task, seed=args.seed, loop_config=loop_config,
                            results_path=results_path, model_id=model_id, checkpoint=checkpoint,
                            max_steps=args.max_steps, realtime=args.realtime, latency=latency, recorder=recorder)
    instruction = stack.world.task.instruction
    print(f"nora-ros {args.command}: {args.trials} trial(s) of '{instruction}' with {stack.policy.model_id}, "
          f"control {loop_config.control_rate_hz:g} Hz, camera {loop_config.camera_rate_hz:g} Hz, "
          f"{'real time' if args.realtime else 'as fast as possible'}; results -> {results_path}")
    first_log = None
    interactive = sys.stdout.isatty()
    t0 = time.perf_counter()
    try:
        for k in range(args.trials):
            steps = [0]
            t_trial = time.perf_counter()
            sim_start: list[float] = []

            def progress(rec, k=k, steps=steps, t_trial=t_trial, sim_start=sim_start):
                if recorder is not None:
                    recorder.on_tick(rec)
                if not sim_start:
                    sim_start.append(rec.now)
                if rec.new_step:
                    steps[0] += 1
                    if steps[0] % 10 == 0 and interactive:
                        wall = time.perf_counter() - t_trial
                        sim = rec.now - sim_start[0]
                        print(f"\r  trial {k + 1}/{args.trials}  step {steps[0]:3d}/{args.max_steps}  "
                              f"sim {sim:5.1f} s  {sim / max(wall, 1e-9):4.1f}x real time", end="", flush=True)

            pacer = realtime_pacer(0.0) if args.realtime else None
            log = run_sim_trial(stack.world, stack.arm, stack.loop, stack.supervisor, instruction,
                                seed=args.seed + k, pacer=pacer, keep_frames=(k == 0), on_tick=progress)
            limits = ", ".join(f"{n} x{c}" for n, c in sorted(log.limits.items())) or "none"
            print(f"\r  trial {k + 1}/{args.trials} (id {log.trial_id}, seed {args.seed + k}): {log.outcome}; "
                  f"{steps[0]} steps, {log.sim_s:.1f} s sim in {log.wall_s:.1f} s; "
                  f"safety limits: {limits}")
            if first_log is None:
                first_log = log
    finally:
        stack.close()
    print(f"done in {time.perf_counter() - t0:.1f} s\n")
    print(format_table(build_table([load_results(results_path)])))
    if first_log is not None and first_log.frames:
        sheet = plots.contact_sheet([f.image for f in first_log.frames], out / "trial_frames.png",
                                    labels=[f"t={f.stamp:.1f}s" for f in first_log.frames])
        print(f"\nwrote {sheet}")
    if first_log is not None and first_log.ticks:
        t, commanded, target, measured = executed_path(first_log.ticks)
        fig = plots.ee_motion(t, commanded, target, measured, out / "ee_motion.png",
                              title=f"trial {first_log.trial_id}: {first_log.instruction} ({first_log.outcome})")
        print(f"wrote {fig}")
    if recorder is not None and recorder.paths:
        print(f"recorded {len(recorder.paths)} bag(s) in {recorder.folder} (nora-ros replay {recorder.paths[0]})")
    print(f"wrote {results_path}")
    return 0
