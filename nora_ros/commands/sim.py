"""``nora-ros sim``: any policy in the simulated closed loop.

``--policy scripted`` is the demo's expert; ``--policy nora --model PATH_OR_ID`` runs NORA
(the tiny checkpoint from ``nora-ros tiny-model`` works too: it won't succeed, but the loop
must run safely); ``--policy replay --episode FILE`` replays recorded actions. Inference time
is charged to the simulated clock as measured (``--latency`` fixes it), so a slow model on a
CPU shows its real effect on the loop.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="run a policy (nora, replay, scripted) in the simulated closed loop",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", choices=("nora", "replay", "scripted"), default="scripted")
    p.add_argument("--model", help="NORA checkpoint folder or hub ID (--policy nora)")
    p.add_argument("--variant", choices=("auto", "nora", "nora-long", "nora-1.5"), default="auto",
                   help="NORA variant (default auto: the checkpoint's own; nora: chunks of 1, nora-long and nora-1.5: 5)")
    p.add_argument("--action-head", choices=("flow", "fast"), default="flow",
                   help="NORA-1.5: flow (the action expert) or fast (FAST+ tokens from the same VLM)")
    p.add_argument("--unnorm-key", default="bridge_orig", help="normalization statistics key (default bridge_orig)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: the GPU when there is one)")
    p.add_argument("--episode", help="episode .npz with an `action` array (--policy replay)")
    p.add_argument("--execute-steps", type=int, default=1, help="actions of each chunk executed per observation")
    p.add_argument("--latency", type=float, default=None,
                   help="seconds of sim time charged per inference (default: the measured wall time)")
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--out", default="sim_out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--task", default="carrot_in_pot")
    p.add_argument("--max-steps", type=int, default=60)
    p.add_argument("--control-rate", type=float, default=10.0)
    p.add_argument("--realtime", action="store_true", help="pace to the wall clock, inference in a thread")
    p.add_argument("--no-record", dest="record", action="store_false",
                   help="do not record the trials (default: one rosbag2 per trial in OUT/bags)")
    p.add_argument("--raw-images", action="store_true", help="record sensor_msgs/Image instead of JPEG")
    from nora_ros.console.command import add_console_args

    add_console_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nora_ros.commands.demo import run_sim_session
    from nora_ros.console.command import run_console

    # Same signature: with --console the operator drives the trials from the page.
    session = run_console if args.console else run_sim_session
    from nora_ros.errors import ConfigurationError

    if args.policy == "nora":
        if not args.model:
            raise ConfigurationError("--policy nora needs --model PATH_OR_ID (e.g. declare-lab/nora, or a folder "
                                     "written by `nora-ros tiny-model`)")
        from nora_ros.policy.factory import make_policy
        from nora_ros.policy.nora.config import NoraConfig

        config = NoraConfig(model=args.model, variant=args.variant, action_head=args.action_head,
                            unnorm_key=args.unnorm_key, device=args.device)
        policy = make_policy(config)
        return session(args, lambda world: policy, checkpoint=args.model, latency=args.latency)
    if args.policy == "replay":
        if not args.episode:
            raise ConfigurationError("--policy replay needs --episode FILE.npz")
        from nora_ros.policy.replay import ReplayPolicy

        policy = ReplayPolicy.from_npz(args.episode)
        return session(args, lambda world: policy, checkpoint=args.episode, latency=args.latency or 0.0)
    from nora_ros.sim.expert import ScriptedExpertPolicy

    return session(args, lambda world: ScriptedExpertPolicy(world), latency=args.latency or 0.0)
