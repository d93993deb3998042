"""``nora-ros infer``: run NORA once on an image file and print the action chunk.

Loads the checkpoint (a folder or hub ID; ``nora-ros tiny-model`` writes a small one), runs one
step on ``--image`` under ``--instruction`` and prints the ``T x 7`` actions
``[dx, dy, dz, droll, dpitch, dyaw, gripper]`` with per-stage timings; ``--json`` prints one
JSON object instead (actions, step_period, model, timings, token_ids, metadata).
Unset options take :class:`nora_ros.policy.nora.config.NoraConfig`'s defaults.
"""

from __future__ import annotations

import argparse
import json
import logging

log = logging.getLogger(__name__)

OPTIONS = (
    ("--variant", "variant", str, "nora (1 action per chunk) or nora-long (5)"),
    ("--unnorm-key", "unnorm_key", str, "statistics entry that un-normalizes actions (bridge_orig, libero_*)"),
    ("--norm-stats", "norm_stats", str, "statistics file instead of the checkpoint's norm_stats.json"),
    ("--fast-tokenizer", "fast_tokenizer", str, "FAST+ table: folder, tokenizer.json or hub ID"),
    ("--device", "device", str, "cpu, cuda, cuda:N (default: the GPU if there is one)"),
    ("--dtype", "dtype", str, "bfloat16, float16, float32 (default: bfloat16 on a GPU, float32 on a CPU)"),
    ("--attention", "attention", str, "sdpa, eager, flash_attention_2 (default sdpa)"),
    ("--jpeg-quality", "jpeg_quality", int, "JPEG round trip before resizing, as the reference loop (95)"),
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("infer", help="run NORA once on an image and print the action chunk",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="checkpoint folder or hub ID (declare-lab/nora, declare-lab/nora-long)")
    p.add_argument("--image", required=True, help="image file (PNG, JPEG; any size, RGB)")
    p.add_argument("--instruction", required=True, help="what the robot should do, e.g. 'put the carrot on the plate'")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--keep-case", action="store_true", help="do not lower-case the instruction (training did)")
    for flag, dest, typ, text in OPTIONS:
        p.add_argument(flag, dest=dest, type=typ, default=None, help=text)
    p.set_defaults(func=run)


def read_image(path: str) -> object:
    """An image file as an HxWx3 uint8 RGB array; an alpha channel is dropped (and said so)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from nora_ros.errors import InvalidInputError

    try:
        with Image.open(path) as img:
            if img.mode not in ("RGB", "L", "RGBA", "P"):
                raise InvalidInputError(f"image {path} has mode {img.mode}; give an 8-bit RGB image")
            if img.mode == "RGBA":
                log.info("image %s has an alpha channel; it is ignored", path)
            return np.asarray(img.convert("RGB"))
    except FileNotFoundError as exc:
        raise InvalidInputError(f"image file {path} does not exist") from exc
    except UnidentifiedImageError as exc:
        raise InvalidInputError(f"{path} is not an image file PIL can read") from exc


def chunk_to_dict(chunk) -> dict:
    return {
        "actions": chunk.actions.tolist(),
        "step_period": chunk.step_period,
        "model": chunk.model_id,
        "timings": dict(chunk.timings),
        "token_ids": list(chunk.token_ids),
        "metadata": dict(chunk.metadata),
    }


def run(args: argparse.Namespace) -> int:
    import time

    from nora_ros.camera.frame import Frame
    from nora_ros.policy.nora.config import NoraConfig
    from nora_ros.policy.nora.policy import NoraPolicy

    kwargs = {dest: getattr(args, dest) for _, dest, _, _ in OPTIONS if getattr(args, dest) is not None}
    if args.keep_case:
        kwargs["lowercase_instruction"] = False
    config = NoraConfig(model=args.model, **kwargs)
    image = read_image(args.image)
    policy = NoraPolicy(config)
    policy.reset(args.instruction)
    chunk = policy.act(Frame(image, time.monotonic(), "rgb8"), args.instruction)
    if args.json:
        print(json.dumps(chunk_to_dict(chunk)))
        return 0
    names = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
    print(f"model {chunk.model_id}  ({config.variant}, {chunk.horizon} action(s), {chunk.step_period:g} s each)")
    print("step " + " ".join(f"{n:>9}" for n in names))
    for i, row in enumerate(chunk.actions):
        print(f"{i:>4} " + " ".join(f"{v:>9.5f}" for v in row))
    print("timings (ms): " + ", ".join(f"{k} {v * 1e3:.1f}" for k, v in chunk.timings.items()))
    if chunk.metadata:
        print(f"note: {json.dumps(chunk.metadata)}")
    return 0
