"""Subcommands of the ``nora-ros`` command line, one module each.

Each module defines ``register(subparsers)`` (adds its parser, whose ``func`` default is the
module's ``run(args) -> int``). Modules import heavy dependencies (torch, mujoco) inside
``run`` so that ``nora-ros --help`` stays fast and works without the optional extras.
"""

COMMANDS = (
    "infer",
    "tiny_model",
    "safety_replay",
    "results",
    "demo",
    "sim",
    "replay",
    "export",
    "experiment",
    "security",
)
