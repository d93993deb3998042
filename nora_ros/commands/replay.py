"""``nora-ros replay BAG``: run a recorded bag's frames through a policy and compare.

Feeds the recorded frames and instruction through the policy in recorded time order (the frames
the recorded chunks were computed from), compares the replayed action chunks and commands with
the recorded ``action_chunk`` and ``cmd`` per dimension, and runs the safety filter on the
replayed commands with the recorded arm states. Writes into ``--out``: ``replay_actions.png``
(recorded vs replayed per dimension, safety events on the time axis), ``replay_errors.png``
(error over time), ``replay_report.txt`` and ``replay_summary.json``. ``--json`` prints the
summary (frames, chunks compared, max and mean error per dimension, safety events) as one object.

Policies: ``replay`` re-drives the recorded actions (checks the pipeline; no model needed),
``scripted`` the simulator's expert on the recorded ground truth (sim bags), ``nora`` a NORA
checkpoint (``--model``). Problems with the bag (a missing topic, a file cut short, an unknown
message type) are printed and the readable part is replayed; ``--strict`` makes them errors.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="replay a rosbag2 recording through a policy and compare with what was recorded",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bag", metavar="BAG", help="rosbag2 folder (sqlite3 or mcap) or a single .mcap / .db3 file")
    p.add_argument("--policy", choices=("nora", "replay", "scripted"), default="replay",
                   help="policy to replay through (default replay: the recorded actions)")
    p.add_argument("--model", help="NORA checkpoint folder or hub ID (--policy nora)")
    p.add_argument("--variant", choices=("auto", "nora", "nora-long", "nora-1.5"), default="auto",
                   help="NORA variant (--policy nora; default auto: the checkpoint's own)")
    p.add_argument("--action-head", choices=("flow", "fast"), default="flow", help="NORA-1.5: flow or fast")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N for NORA (default: the GPU when there is one)")
    p.add_argument("--out", default="replay_out", help="folder for the plots and the report (default replay_out)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--instruction", default="", help="instruction to use instead of the recorded one")
    p.add_argument("--namespace", default="nora", help="namespace of the recorded topics (default nora)")
    p.add_argument("--robot-model", default="wx250s", choices=("wx250s", "wx250"), help="arm of the recording")
    p.add_argument("--execute-steps", type=int, default=None,
                   help="actions per chunk executed per observation (default: as the recorded commands show)")
    p.add_argument("--safety", action="append", default=[], metavar="NAME=VALUE",
                   help="safety filter setting for the replay, e.g. max_linear_speed=0.1 (repeatable; default: "
                        "SafetyConfig's defaults): what would a different filter have done")
    p.add_argument("--strict", action="store_true",
                   help="fail on any problem with the bag instead of replaying the rest")
    p.set_defaults(func=run)


def make_policies(args: argparse.Namespace, recording):
    """``(policy_for(trial), name, close)`` for ``--policy``; checks the bag can feed it."""
    from nora_ros.errors import ConfigurationError

    if args.policy == "replay":
        from nora_ros.bag.replay import recorded_actions_policy

        if not recording.chunks:
            raise ConfigurationError("--policy replay needs recorded action chunks; this bag has none (missing "
                                     "action_chunk): use --policy scripted or nora")
        return (lambda trial: recorded_actions_policy(recording, trial)), "replay", (lambda: None)
    if args.policy == "scripted":
        if not recording.truths:
            raise ConfigurationError("--policy scripted needs the simulator's ground truth (sim/ground_truth), which "
                                     "this bag lacks (a robot's bag has none): use --policy nora or replay")
        from nora_ros.sim.expert import ScriptedExpertPolicy

        policy = ScriptedExpertPolicy()
    else:
        if not args.model:
            raise ConfigurationError("--policy nora needs --model PATH_OR_ID (declare-lab/nora, or a folder written by "
                                     "`nora-ros tiny-model`)")
        from nora_ros.policy.factory import make_policy
        from nora_ros.policy.nora.config import NoraConfig

        policy = make_policy(NoraConfig(model=args.model, variant=args.variant, action_head=args.action_head,
                                        device=args.device))
    return (lambda trial: policy), policy.model_id, policy.close


def run(args: argparse.Namespace) -> int:
    import pathlib

    from nora_ros.bag import plots
    from nora_ros.bag.replay import ReplayOptions, replay
    from nora_ros.bag.run import RecordedRun
    from nora_ros.errors import BagError

    recording = RecordedRun.open(args.bag, namespace=args.namespace, robot_model=args.robot_model)
    if args.strict:
        recording.require()
    if not recording.frame_messages:
        raise BagError(f"{args.bag}: nothing to replay: " + "; ".join(recording.problems))
    options = ReplayOptions(execute_steps=args.execute_steps, instruction=args.instruction,
                            safety=parse_settings(args.safety))
    policy_for, name, close = make_policies(args, recording)
    try:
        result = replay(recording, policy_for, options, policy_name=name)
    finally:
        close()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = result.summary()
    files = [plots.replay_actions(result, out / "replay_actions.png"),
             plots.replay_errors(result, out / "replay_errors.png")]
    (out / "replay_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    report = format_report(summary, result.failures)
    (out / "replay_report.txt").write_text(report + "\n")
    for problem in summary["problems"]:
        print(f"nora-ros replay: warning: {problem}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary))
    else:
        print(report)
        for f in files + [out / "replay_report.txt", out / "replay_summary.json"]:
            print(f"wrote {f}")
    return 0


def parse_settings(items: list[str]) -> dict:
    """``["max_linear_speed=0.1", ...]`` as a dict, values read as YAML (numbers, lists)."""
    import yaml

    from nora_ros.errors import ConfigurationError

    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigurationError(f"--safety takes NAME=VALUE (e.g. max_linear_speed=0.1), got '{item}'")
        out[name.strip()] = yaml.safe_load(value)
    return out


def format_report(s: dict, failures: list[str]) -> str:
    """The short text report: what was compared and the largest differences."""

    def dims(block: dict) -> str:
        if block["max"] is None:
            return "nothing compared"
        return ", ".join(f"{k} {v:.3g}/{block['mean'][k]:.3g}" for k, v in block["max"].items())

    events = s["safety_events"]
    lines = [
        f"replay of {s['bag']} through {s['policy']}: {s['trials']} trial(s), {s['frames']} frames in the bag, "
        f"{s['frames_fed']} fed to the policy ({s['policy_failures']} failed), in {s['wall_s']:.2f} s",
        f"  chunks compared   {s['chunks_compared']} of {s['chunks_recorded']} recorded",
        f"  action error      max/mean per dim: {dims(s['action_error'])}",
        f"  command error     {s['ticks_compared']} ticks, max/mean per dim: {dims(s['cmd_error'])}",
        f"  cmd_safe error    max/mean per dim: {dims(s['cmd_safe_error'])}",
        "  safety events     replayed: " + (", ".join(f"{k} x{v}" for k, v in events["replayed"].items()) or "none")
        + "; recorded: " + (", ".join(f"{k} x{v}" for k, v in events["recorded"].items()) or "none"),
    ]
    lines += [f"  policy failure    {f}" for f in failures[:5]]
    lines += [f"  problem           {p}" for p in s["problems"]]
    return "\n".join(lines)
