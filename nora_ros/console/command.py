"""``nora-ros sim --console`` / ``nora-ros demo --console``: the simulated closed loop driven
from the operator console instead of a fixed number of trials.

The sim runs in real time in a control thread (:class:`~nora_ros.console.sim_port.SimConsolePort`);
the server runs in the main thread until Ctrl-C. With ``--plan FILE`` the console walks through
an evaluation plan (:mod:`nora_ros.trials.plan`) and resumes it from ``OUT/results.jsonl``.
"""

from __future__ import annotations

import argparse

DEFAULT_PORT = 8080


def add_console_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("operator console")
    g.add_argument("--console", action="store_true", help="serve the operator console and run trials from it")
    g.add_argument("--console-host", default="127.0.0.1",
                   help="bind address (default 127.0.0.1; any other address requires the token)")
    g.add_argument("--console-port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    g.add_argument("--console-token", default=None,
                   help="token for a non-loopback bind (default: generated and printed)")
    g.add_argument("--public-view", action="store_true",
                   help="let anyone who can reach the console watch it without the token (changes still need it)")
    g.add_argument("--plan", default=None, help="evaluation plan YAML (tasks, models, order, blind)")


def plan_policies(plan, default_factory) -> dict:
    """Policy factories for the plan's models: ``scripted`` is the sim's expert, ``nora`` loads
    the checkpoint (once; the console keeps it loaded)."""
    from nora_ros.errors import ConfigurationError

    factories = {}
    for m in plan.models:
        if m.policy == "scripted":
            from nora_ros.sim.expert import ScriptedExpertPolicy

            factories[m.id] = ScriptedExpertPolicy
        elif m.policy == "nora":
            def load(world, checkpoint=m.checkpoint):
                from nora_ros.policy.factory import make_policy
                from nora_ros.policy.nora.config import NoraConfig

                return make_policy(NoraConfig(model=checkpoint))
            factories[m.id] = load
        elif m.policy == "default":
            factories[m.id] = default_factory
        else:
            raise ConfigurationError(f"model {m.id!r}: policy must be scripted, nora or default, got {m.policy!r}")
    return factories


def run_console(args: argparse.Namespace, policy_factory, model_id: str = "", checkpoint: str = "",
                latency: float | None = 0.0) -> int:
    """Build the sim stack, start its control thread, serve the console until interrupted."""
    import pathlib

    from nora_ros.console.security import AccessPolicy
    from nora_ros.console.server import serve
    from nora_ros.console.sim_port import SimConsolePort
    from nora_ros.runner import LoopConfig, build_sim_stack
    from nora_ros.trials.plan import load_plan

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    plan = load_plan(args.plan) if args.plan else None
    policy = AccessPolicy(host=args.console_host, token=args.console_token, public_view=args.public_view)
    loop_config = LoopConfig(control_rate_hz=args.control_rate, camera_rate_hz=min(5.0, args.control_rate),
                             execute_steps=getattr(args, "execute_steps", 1))
    recorder = None
    if getattr(args, "record", False):
        import importlib.util

        if importlib.util.find_spec("rosbags") is not None:
            from nora_ros.bag.record import RecordOptions, TrialBags

            recorder = TrialBags(out / "bags", RecordOptions(images="raw" if args.raw_images else "jpeg",
                                                             results_file=str(results_path)))
    stack = build_sim_stack(policy_factory, task=args.task, seed=args.seed, loop_config=loop_config,
                            results_path=results_path, model_id=model_id, checkpoint=checkpoint,
                            max_steps=args.max_steps, realtime=latency is None, latency=latency, recorder=recorder)
    models = plan_policies(plan, policy_factory) if plan is not None else {}
    port = SimConsolePort(stack, results_path, plan=plan, models=models, realtime=True, seed=args.seed,
                          latency=latency)
    port.start_thread()
    try:
        serve(port, policy, args.console_port, print_fn=lambda s: print(s, flush=True))
    finally:
        port.close()
        stack.close()
    print(f"results in {results_path}")
    return 0
