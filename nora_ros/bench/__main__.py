"""Entry point of ``python -m nora_ros.bench``."""

from __future__ import annotations

import argparse
import importlib
import sys

from nora_ros.bench import BENCHES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nora_ros.bench", description="Print nora_ros performance figures.")
    sub = parser.add_subparsers(dest="bench", metavar="BENCH")
    for name in BENCHES:
        try:
            module = importlib.import_module(f"nora_ros.bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"nora_ros.bench.{name}":
                continue
            raise
        module.register(sub)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
