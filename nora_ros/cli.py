"""The ``nora-ros`` command line: dispatches to :mod:`nora_ros.commands`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from nora_ros.commands import COMMANDS
from nora_ros.errors import NoraError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nora-ros", description="Run NORA on a WidowX arm, with or without ROS.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"nora_ros.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"nora_ros.commands.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except NoraError as exc:
        print(f"nora-ros {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
