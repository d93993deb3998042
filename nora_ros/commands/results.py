"""``nora-ros results FILE... [--png OUT.png] [--csv OUT.csv]``: the success-rate table.

Reads one or more results files (JSONL, written by the trial supervisor), prints the NORA
paper's Table 1 layout (tasks x models, success % with n and a 95% Wilson interval, an average
row), and optionally writes a CSV and a bar chart. Unreadable lines (a torn last line after a
power cut) are skipped with a warning on stderr; the table is still printed.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "results",
        help="print the success-rate table of trial results files",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="results JSONL files (several models side by side)")
    p.add_argument("--png", metavar="OUT.png", help="also draw a bar chart with error bars to this PNG")
    p.add_argument("--csv", metavar="OUT.csv", help="also write the table (long format) to this CSV")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nora_ros.trials.results_store import load_results
    from nora_ros.trials.results_table import build_table, format_table, plot_table, write_csv

    sources = [load_results(path) for path in args.files]
    for source in sources:
        for warning in source.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    table = build_table(sources)
    sys.stdout.write(format_table(table))
    if args.csv:
        write_csv(table, args.csv)
        print(f"wrote {args.csv}", file=sys.stderr)
    if args.png:
        plot_table(table, args.png)
        print(f"wrote {args.png}", file=sys.stderr)
    return 0
