"""``python -m nora_ros.bench robots --robots 1,2,4,8``: one model serving several arms, batched
vs one observation at a time.

For each robot count ``n``, every round gives each robot its own observation (different real
WidowX frames, different instructions), all ready at once, as when the policy node's robots
submit in the same control tick:

- ``one-by-one``: ``n`` calls of ``policy.act`` back to back (one inference thread, no
  batching): robot ``k`` waits for the ``k + 1`` inferences before its own chunk;
- ``batched``: one ``policy.act_batch`` of the ``n`` observations
  (:mod:`nora_ros.policy.nora.batch`): every robot waits for the whole batch.

Printed per ``n`` and mode: round time (median, p90), steps per second (observations answered
per second over all robots: ``n`` / round time) and per-robot latency (median and p90 over
robots and rounds, from the round's start to that robot's chunk). The last line is
``speedup@N: X``, batched over one-by-one steps per second at the largest ``n``. Without
``--model`` a tiny random-weight checkpoint is built; ``--full-size`` swaps in random weights of
the full architecture (for a GPU).
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import tempfile
import time

import numpy as np

from nora_ros.policy.nora.tiny import SHARED_DATA

INSTRUCTIONS = ("put the carrot on the plate", "open the drawer", "move the spoon to the left side of the towel",
                "pick up the red cube", "put the eggplant in the pot", "close the microwave",
                "stack the green block on the yellow block", "wipe the table with the cloth")
FRAMES = SHARED_DATA / "simpler_real_bridge_frames"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("robots", help="one model serving several arms: batched vs one-by-one",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--robots", default="1,2,4,8", help="robot counts, comma-separated (default 1,2,4,8)")
    p.add_argument("--variant", default="nora", help="nora, nora-long or nora-1.5 (flow head)")
    p.add_argument("--model", default=None, help="checkpoint folder or hub ID (default: a tiny random-weight one)")
    p.add_argument("--rounds", type=int, default=20, help="timed rounds per robot count and mode (default 20)")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    p.add_argument("--device", default=None, help="cpu, cuda (default: the GPU if there is one)")
    p.add_argument("--dtype", default=None, help="bfloat16, float32 (default: the variant's)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--full-size", action="store_true", help="random weights of the full architecture, in memory")
    p.set_defaults(func=run)


def _frames(n: int) -> tuple[list[np.ndarray], str]:
    images = []
    if FRAMES.is_dir():
        from PIL import Image

        images = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(FRAMES.glob("*.png"))[:n]]
    source = f"{len(images)} real WidowX frames" if images else "random 480x640 frames"
    rng = np.random.default_rng(0)
    while len(images) < n:
        images.append(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))
    return images, source


def _policy(args: argparse.Namespace, tmp: str):
    import dataclasses

    from nora_ros.policy.nora.config import NoraConfig

    kwargs = {k: v for k, v in (("device", args.device), ("dtype", args.dtype)) if v is not None}
    if args.variant == "nora-1.5":
        from nora_ros.policy.nora.flow_policy import Nora15Policy
        from nora_ros.policy.nora.nora15 import load_nora15
        from nora_ros.policy.nora.tiny15 import build_tiny_nora15_checkpoint

        model = args.model or str(build_tiny_nora15_checkpoint(pathlib.Path(tmp) / "tiny15"))
        config = NoraConfig(model=model, variant="nora-1.5", **kwargs)
        loaded = load_nora15(config)
        if args.full_size:
            from nora_ros.bench.full_size import full_size_nora15

            loaded = full_size_nora15(loaded, loaded.device, loaded.dtype)
        return Nora15Policy(config, loaded=loaded), loaded.device
    from nora_ros.policy.nora.checkpoint import load_nora
    from nora_ros.policy.nora.policy import NoraPolicy
    from nora_ros.policy.nora.tiny import build_tiny_checkpoint, set_checkpoint_variant

    model = args.model
    if model is None:
        model = str(build_tiny_checkpoint(pathlib.Path(tmp) / "tiny"))
        set_checkpoint_variant(pathlib.Path(model), args.variant)  # the tiny weights serve either horizon
    config = NoraConfig(model=model, variant=args.variant, **kwargs)
    loaded = load_nora(config)
    if args.full_size:
        from nora_ros.bench.full_size import full_size_model

        loaded = dataclasses.replace(loaded, model=full_size_model(loaded, loaded.device, loaded.dtype))
    return NoraPolicy(config, loaded=loaded), loaded.device


def _round(policy, frames, instructions, robots, batched: bool, sync) -> tuple[float, list[float], int]:
    """One round: its time, each robot's latency, and how many robots got no chunk."""
    sync()
    t0 = time.perf_counter()
    latencies, failed = [], 0
    if batched:
        out = policy.act_batch(frames, instructions, robots)
        sync()
        done = time.perf_counter() - t0
        latencies = [done] * len(frames)
        failed = sum(isinstance(o, Exception) for o in out)
    else:
        from nora_ros.errors import NoraError

        for frame, instruction in zip(frames, instructions, strict=True):
            try:
                policy.act(frame, instruction)
            except NoraError:
                failed += 1
            sync()
            latencies.append(time.perf_counter() - t0)
        done = latencies[-1]
    return done, latencies, failed


def run(args: argparse.Namespace) -> int:
    import torch

    from nora_ros.camera.frame import Frame

    counts = sorted({int(c) for c in args.robots.split(",") if c.strip()})
    if not counts or counts[0] < 1:
        print(f"--robots {args.robots}: give positive robot counts, e.g. 1,2,4,8")
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in ("nora_ros.policy.nora.policy", "nora_ros.policy.nora.flow_policy"):
        logging.getLogger(name).setLevel(logging.ERROR)  # clipping notes of random weights
    with tempfile.TemporaryDirectory(prefix="nora_robots_bench_") as tmp:
        policy, device = _policy(args, tmp)
        cuda = device.startswith("cuda")
        sync = torch.cuda.synchronize if cuda else (lambda: None)
        images, source = _frames(max(counts))
        label = "full-size architecture, random weights" if args.full_size else (args.model or "tiny random weights")
        print(f"model: {label}; variant {args.variant} (T={policy.horizon}); device {device}, "
              f"torch threads {torch.get_num_threads()}")
        print(f"input: {source}, {len(INSTRUCTIONS)} instructions in turn; {args.rounds} timed rounds after "
              f"{args.warmup} warm-up per robot count and mode")
        print(f"{'robots':>6} {'mode':<11} {'round_ms':>9} {'p90_ms':>8} {'steps/s':>8} {'robot_lat_ms':>12} "
              f"{'lat_p90_ms':>10} {'failed':>6}")
        rates: dict[tuple[int, bool], float] = {}
        for n in counts:
            robots = [f"robot{k}" for k in range(n)]
            instructions = [INSTRUCTIONS[k % len(INSTRUCTIONS)] for k in range(n)]
            for batched in (False, True):
                rounds, lats, failed = [], [], 0
                for r in range(args.warmup + args.rounds):
                    frames = [Frame(images[(k + r) % len(images)], float(r)) for k in range(n)]
                    took, lat, bad = _round(policy, frames, instructions, robots, batched, sync)
                    if r >= args.warmup:
                        rounds.append(took)
                        lats.extend(lat)
                        failed += bad
                med = float(np.median(rounds))
                rates[(n, batched)] = n / med
                print(f"{n:>6} {'batched' if batched else 'one-by-one':<11} {med * 1e3:>9.2f} "
                      f"{np.percentile(rounds, 90) * 1e3:>8.2f} {n / med:>8.1f} {np.median(lats) * 1e3:>12.2f} "
                      f"{np.percentile(lats, 90) * 1e3:>10.2f} {failed:>6}")
        if cuda:
            print(f"peak GPU memory (allocated): {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
        top = counts[-1]
        print(f"speedup@{top}: {rates[(top, True)] / rates[(top, False)]:.2f}")
    return 0
