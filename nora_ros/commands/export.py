"""``nora-ros export BAG... OUT``: successful recorded trials as a fine-tuning dataset.

Every trial whose recorded ``trial/result`` says success becomes one episode ``.npz`` in OUT in
the BridgeData layout NORA was pre-trained on (``--format bridge-npz``: ``action``, ``state``,
``image_0``, ``language_instruction``, ``is_first``, ``is_last``; the layout of
``../shared/data/octo_bridge_debug/extracted_train``), with ``index.json`` listing them. Other
trials are listed with the reason they were left out. See :mod:`nora_ros.bag.export` for why
this format and not LeRobot's.
"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="turn successful recorded trials into a fine-tuning dataset",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="BAG... OUT", help="rosbag2 recordings, then the output folder")
    p.add_argument("--format", choices=("bridge-npz",), default="bridge-npz", help="dataset format (bridge-npz)")
    p.add_argument("--image-size", type=int, default=256,
                   help="images resized to N x N as in BridgeData's 256 x 256 release (0 keeps the camera's)")
    p.add_argument("--namespace", default="nora", help="namespace of the recorded topics (default nora)")
    p.add_argument("--robot-model", default="wx250s", choices=("wx250s", "wx250"), help="arm of the recording")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nora_ros.bag.export import export

    if len(args.paths) < 2:
        print("nora-ros export: give at least one BAG and the OUT folder", file=sys.stderr)
        return 2
    *bags, out = args.paths
    report = export(bags, out, image_size=args.image_size, namespace=args.namespace, robot_model=args.robot_model)
    for reason in report.skipped:
        print(f"  skipped {reason}")
    steps = sum(n for _, n in report.written)
    print(f"nora-ros export: {len(report.written)} episode(s), {steps} steps, from {len(bags)} bag(s) -> {out}")
    return 0 if report.written else 1
