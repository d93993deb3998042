"""``nora-ros tiny-model OUT_DIR``: write a tiny random-weight checkpoint of NORA's architecture.

For smoke-testing the stack (``nora-ros infer --model OUT_DIR ...``, the policy node, the
simulator) without downloading NORA's 8 GB: a real Qwen2.5-VL checkpoint folder with NORA's
vocabulary, norm stats and a fitted FAST+ table, but random weights (its actions mean nothing).
``--variant nora-1.5`` writes a NORA-1.5 checkpoint instead, in the layout declare-lab's reference
saves (one ``model.safetensors`` with the VLM and the action expert) plus the local VLM config
(``vlm/``) and processor files (``processor/``) the loader reads
(:mod:`nora_ros.policy.nora.nora15`).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tiny-model",
        help="write a tiny random-weight NORA-architecture checkpoint (for smoke tests)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out_dir", metavar="OUT_DIR", help="folder to write the checkpoint into (created if missing)")
    p.add_argument(
        "--fallback-vocab",
        action="store_true",
        help="use the small self-built vocabulary even where ../shared/data has the real Qwen2.5 one",
    )
    p.add_argument("--variant", default="nora", choices=("nora", "nora-long", "nora-1.5"),
                   help="nora / nora-long: the variant the checkpoint declares (config.json nora_ros_variant; "
                        "default nora); nora-1.5: a NORA-1.5 checkpoint (VLM + flow-matching action expert)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.variant == "nora-1.5":
        from nora_ros.policy.nora.tiny15 import build_tiny_nora15_checkpoint

        out = build_tiny_nora15_checkpoint(args.out_dir, real_vocab=not args.fallback_vocab)
        print(f"tiny NORA-1.5 checkpoint written to {out}")
        print((out / "TINY_CHECKPOINT.md").read_text().strip())
        return 0
    from nora_ros.policy.nora.tiny import build_tiny_checkpoint

    out = build_tiny_checkpoint(args.out_dir, real_vocab=not args.fallback_vocab, variant=args.variant)
    print(f"tiny NORA checkpoint written to {out}")
    print((out / "TINY_CHECKPOINT.md").read_text().strip())
    return 0
