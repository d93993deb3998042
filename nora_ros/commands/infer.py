"""``nora-ros infer``: run NORA once on an image file and print the action chunk.

Loads the checkpoint (a folder or hub ID; ``nora-ros tiny-model`` writes a small one), runs one
step on ``--image`` under ``--instruction`` and prints the ``T x 7`` actions
``[dx, dy, dz, droll, dpitch, dyaw, gripper]`` with per-stage timings; ``--json`` prints one
JSON object instead (actions, normalized, step_period, model, timings, token_ids, metadata).
``--normalized`` prints the model's actions before unnormalization (the numbers to compare with
another implementation). NORA-1.5's flow head takes ``--noise FILE.npy``, the initial noise
(``T x 7`` float32), instead of its seeded draw, so its output can be checked number for number.
Unset options take :class:`nora_ros.policy.nora.config.NoraConfig`'s defaults.
"""

from __future__ import annotations

import argparse
import json
import logging

log = logging.getLogger(__name__)

OPTIONS = (
    ("--variant", "variant", str, "nora (1 action per chunk), nora-long (5), nora-1.5 (5, flow-matching action "
     "expert) or auto (default: the checkpoint's own)"),
    ("--action-head", "action_head", str, "NORA-1.5: flow (the action expert, default) or fast (FAST+ tokens from "
     "the same VLM)"),
    ("--flow-steps", "flow_steps", int, "NORA-1.5 flow head: Euler steps from noise to actions (default 10)"),
    ("--seed", "seed", int, "NORA-1.5 flow head: seed of the initial noise (default 0)"),
    ("--unnorm-key", "unnorm_key", str, "statistics entry that un-normalizes actions (bridge_orig, libero_*)"),
    ("--norm-stats", "norm_stats", str, "statistics file instead of the checkpoint's norm_stats.json"),
    ("--fast-tokenizer", "fast_tokenizer", str, "FAST+ table: folder, tokenizer.json or hub ID"),
    ("--device", "device", str, "cpu, cuda, cuda:N (default: the GPU if there is one)"),
    ("--dtype", "dtype", str, "bfloat16, float16, float32 (default: float32 for NORA-1.5 as its reference; "
     "NORA: bfloat16 on a GPU, float32 on a CPU)"),
    ("--attention", "attention", str, "sdpa, eager, flash_attention_2 (default sdpa)"),
    ("--horizon-margin", "horizon_margin", float, "logits by which the model must want another chunk length for the "
     "chunk to be refused (default 5; 0: no check, e.g. for random weights)"),
    ("--jpeg-quality", "jpeg_quality", int, "JPEG round trip before resizing, 0: none; default: the reference's for the "
     "variant (95 for NORA on Bridge, none for NORA-1.5)"),
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("infer", help="run NORA once on an image and print the action chunk",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True,
                   help="checkpoint folder or hub ID (declare-lab/nora, declare-lab/nora-long, declare-lab/nora-1.5)")
    p.add_argument("--image", required=True, help="image file (PNG, JPEG; any size, RGB)")
    p.add_argument("--instruction", required=True, help="what the robot should do, e.g. 'put the carrot on the plate'")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--keep-case", action="store_true", help="do not lower-case the instruction (training did)")
    p.add_argument("--normalized", action="store_true",
                   help="print the actions before unnormalization (the model's output, normalized to [-1, 1])")
    p.add_argument("--noise", default=None, metavar="FILE.npy",
                   help="NORA-1.5 flow head: initial noise, a T x 7 float32 array, instead of the seeded draw")
    for flag, dest, typ, text in OPTIONS:
        p.add_argument(flag, dest=dest, type=typ, default=None, help=text)
    p.set_defaults(func=run)


def read_noise(path: str) -> object:
    """A ``.npy`` file of initial noise as a float32 array (shape checked by the policy)."""
    import numpy as np

    from nora_ros.errors import InvalidInputError

    try:
        noise = np.load(path, allow_pickle=False)
    except FileNotFoundError as exc:
        raise InvalidInputError(f"noise file {path} does not exist") from exc
    except ValueError as exc:
        raise InvalidInputError(f"{path} is not a .npy array file ({exc})") from exc
    if not np.issubdtype(noise.dtype, np.floating):
        raise InvalidInputError(f"noise in {path} must be floating point, got {noise.dtype}")
    return noise.astype(np.float32)


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


def chunk_to_dict(chunk, normalized: object | None = None) -> dict:
    out = {
        "actions": chunk.actions.tolist(),
        "step_period": chunk.step_period,
        "model": chunk.model_id,
        "timings": dict(chunk.timings),
        "token_ids": list(chunk.token_ids),
        "metadata": dict(chunk.metadata),
    }
    if normalized is not None:
        out["normalized"] = [[float(v) for v in row] for row in normalized]
    return out


def run_once(config, image: object, instruction: str, noise: object | None = None) -> tuple[object, object, str]:
    """Load ``config``'s policy, run one step; return the chunk, the normalized actions and the variant."""
    import time

    from nora_ros.camera.frame import Frame
    from nora_ros.errors import ConfigurationError
    from nora_ros.policy.nora.checkpoint import resolve_checkpoint, resolve_variant
    from nora_ros.policy.nora.flow_policy import Nora15Policy, nora15_policy
    from nora_ros.policy.nora.policy import NoraPolicy

    config = resolve_variant(config, resolve_checkpoint(config.model))
    flow = config.variant == "nora-1.5" and config.action_head == "flow"
    if noise is not None and not flow:
        raise ConfigurationError(f"--noise is for NORA-1.5's flow head; {config.model} runs as {config.variant}"
                                 f"{' with the fast head' if config.variant == 'nora-1.5' else ''}, which decodes tokens")
    policy = nora15_policy(config) if config.variant == "nora-1.5" else NoraPolicy(config)
    frame = Frame(image, time.monotonic(), "rgb8")
    policy.reset(instruction)
    if isinstance(policy, Nora15Policy):
        out = policy.run(frame, instruction, noise=noise)
        return out.chunk, out.normalized, config.variant
    chunk = policy.act(frame, instruction)
    return chunk, policy.decode_tokens(list(chunk.token_ids)), config.variant


def run(args: argparse.Namespace) -> int:
    from nora_ros.policy.nora.config import NoraConfig

    kwargs = {dest: getattr(args, dest) for _, dest, _, _ in OPTIONS if getattr(args, dest) is not None}
    if kwargs.get("jpeg_quality") == 0:
        kwargs["jpeg_quality"] = None  # 0: no round trip, as the policy node's parameter
    if args.keep_case:
        kwargs["lowercase_instruction"] = False
    config = NoraConfig(model=args.model, **kwargs)
    image = read_image(args.image)
    noise = read_noise(args.noise) if args.noise is not None else None
    chunk, normalized, variant = run_once(config, image, args.instruction, noise)
    if args.json:
        print(json.dumps(chunk_to_dict(chunk, normalized)))
        return 0
    names = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
    rows = normalized if args.normalized else chunk.actions
    print(f"model {chunk.model_id}  ({variant}, {chunk.horizon} action(s), {chunk.step_period:g} s each)"
          + ("; normalized, before unnormalization" if args.normalized else ""))
    print("step " + " ".join(f"{n:>11}" for n in names))
    for i, row in enumerate(rows):
        print(f"{i:>4} " + " ".join(f"{v:>11.7f}" for v in row))
    print("timings (ms): " + ", ".join(f"{k} {v * 1e3:.1f}" for k, v in chunk.timings.items()))
    if chunk.metadata:
        print(f"note: {json.dumps(chunk.metadata)}")
    return 0
