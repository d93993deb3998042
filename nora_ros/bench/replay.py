"""``python -m nora_ros.bench replay``: record a simulated run, then time its replay.

Records ``--seconds`` of simulated closed loop (scripted-expert trials back to back, rendered
480x640 camera at 5 Hz, control at 10 Hz) into one bag, as ``ros2 bag record`` would at the
robot, then replays it with ``nora-ros replay``'s code: reading the bag, feeding the recorded
frames through the policy, comparing chunks and commands, the safety filter on every tick, and
the two plots. Prints the bag's size and message counts, and for each policy the wall time of
the replay against the recorded duration (the issue asks for less than the duration).
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="record a simulated run into a bag and time its replay", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="simulated seconds to record (default 60)")
    p.add_argument("--images", choices=("jpeg", "raw"), default="jpeg", help="how images are stored (default jpeg)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="bag storage (default mcap)")
    p.add_argument("--policies", default="scripted,replay", help="policies to replay with (default scripted,replay)")
    p.add_argument("--keep", help="write the bag and the plots here instead of a temporary folder")
    p.set_defaults(func=run)


def _size(path: pathlib.Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def run(args: argparse.Namespace) -> int:
    from nora_ros.bag import plots
    from nora_ros.bag.record import RecordOptions, SessionBag
    from nora_ros.bag.replay import recorded_actions_policy, replay
    from nora_ros.bag.run import RecordedRun
    from nora_ros.runner import LoopConfig, build_sim_stack, run_sim_trial
    from nora_ros.sim.expert import ScriptedExpertPolicy

    tmp = None if args.keep else tempfile.TemporaryDirectory()
    folder = pathlib.Path(args.keep or tmp.name)
    folder.mkdir(parents=True, exist_ok=True)
    bag_path = folder / "session"
    recorder = SessionBag(bag_path, RecordOptions(images=args.images, storage=args.storage))
    stack = build_sim_stack(lambda world: ScriptedExpertPolicy(world), loop_config=LoopConfig(), recorder=recorder)
    t0 = time.perf_counter()
    start = stack.world.time
    trials = 0
    try:
        while stack.world.time - start < args.seconds:
            run_sim_trial(stack.world, stack.arm, stack.loop, stack.supervisor, stack.world.task.instruction,
                          seed=trials, on_tick=recorder.on_tick)
            trials += 1
    finally:
        stack.close()
    record_wall = time.perf_counter() - t0
    counts = recorder.counts
    print(f"bench replay: recorded {stack.world.time - start:.1f} s of simulated run ({trials} scripted-expert trials) "
          f"in {record_wall:.1f} s wall; {args.storage}, {args.images} images, {_size(bag_path):.1f} MB")
    for topic, n in sorted(counts.items()):
        print(f"  {topic:40s} {n:6d}")
    for name in args.policies.split(","):
        t0 = time.perf_counter()
        recording = RecordedRun.open(bag_path)
        t_read = time.perf_counter() - t0
        if name == "scripted":
            policy = ScriptedExpertPolicy()
            result = replay(recording, lambda trial, p=policy: p, policy_name=name)
        elif name == "replay":
            result = replay(recording, lambda trial, r=recording: recorded_actions_policy(r, trial), policy_name=name)
        else:
            print(f"  unknown policy '{name}' (scripted or replay)")
            return 2
        t_plot = time.perf_counter()
        plots.replay_actions(result, folder / f"replay_actions_{name}.png")
        plots.replay_errors(result, folder / f"replay_errors_{name}.png")
        total = time.perf_counter() - t0
        s = result.summary()
        duration = recording.contents.end - recording.contents.start
        worst = max(s["action_error"]["max"].values()) if s["action_error"]["max"] else float("nan")
        print(f"replay --policy {name:8s}: {total:5.2f} s wall for a {duration:.1f} s bag ({duration / total:4.1f}x "
              f"real time): read {t_read:.2f} s, replay {result.wall_s:.2f} s, "
              f"plots {time.perf_counter() - t_plot:.2f} s; "
              f"{s['frames_fed']} frames fed, {s['chunks_compared']} chunks and {s['ticks_compared']} ticks compared, "
              f"max action error {worst:.3g}")
    if tmp is not None:
        tmp.cleanup()
    else:
        print(f"bag and plots in {folder}")
    return 0
