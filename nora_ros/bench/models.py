"""``python -m nora_ros.bench models``: what a model switch between trials costs (an evaluation
plan with several models, the policy node's ``policy/select_model``).

Through :class:`nora_ros.policy.model_cache.ModelCache` and the real factory, with two
checkpoints A and B (default: tiny random-weight NORA and NORA-Long, built here; ``--models``
takes two folders or hub IDs), it times, ``--rounds`` times each:

- ``first load``: B loaded while A serves (what the first trial of a new model waits for);
- ``switch, kept``: back to a model still loaded (what an interleaved plan pays per trial when
  both fit);
- ``switch, reloaded``: with ``max_loaded_models: 1``, each switch unloads one and loads the other
  (what a GPU that holds only one model pays).

Also printed: the bytes each loaded model holds and the device's free memory, the inputs of
the keep-or-unload decision.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import tempfile
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="cost of switching models between trials (kept loaded vs reloaded)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=None, help="two checkpoints A,B (default: tiny NORA and tiny NORA-Long)")
    p.add_argument("--rounds", type=int, default=5, help="timed switches per case (default 5)")
    p.add_argument("--device", default=None, help="cpu, cuda (default: the GPU if there is one)")
    p.set_defaults(func=run)


def _tiny_pair(tmp: pathlib.Path) -> tuple[str, str]:
    import shutil

    from nora_ros.policy.nora.tiny import build_tiny_checkpoint, set_checkpoint_variant

    a = build_tiny_checkpoint(tmp / "a")
    b = tmp / "b"
    shutil.copytree(a, b)
    set_checkpoint_variant(b, "nora-long")
    return str(a), str(b)


def _ms(xs: list[float]) -> str:
    return f"median {1e3 * statistics.median(xs):10.3f} ms   max {1e3 * max(xs):10.3f} ms"


def run(args: argparse.Namespace) -> int:
    import logging

    from nora_ros.policy.factory import make_policy
    from nora_ros.policy.model_cache import ModelCache, device_memory, policy_bytes
    from nora_ros.policy.nora.config import NoraConfig

    logging.getLogger("nora_ros").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        a, b = args.models.split(",") if args.models else _tiny_pair(pathlib.Path(tmp))
        kwargs = {"device": args.device} if args.device else {}

        def load(model: str):
            return make_policy(NoraConfig(model=model, **kwargs))

        import torch

        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        first, kept, reloaded = [], [], []
        for _ in range(args.rounds):
            cache = ModelCache(load)
            held_a = policy_bytes(cache.select(a).policy)
            t0 = time.perf_counter()
            held_b = policy_bytes(cache.select(b).policy)
            first.append(time.perf_counter() - t0)
            for target in (a, b):
                t0 = time.perf_counter()
                cache.select(target)
                kept.append(time.perf_counter() - t0)
            sizes = {a: held_a, b: held_b}
            cache.close()
            one = ModelCache(load, max_loaded=1)
            one.select(a)
            for target in (b, a):
                t0 = time.perf_counter()
                one.select(target)
                reloaded.append(time.perf_counter() - t0)
            one.close()
        mem = device_memory(device)
        print(f"models A={a} B={b} on {device}; {args.rounds} rounds")
        for m, n in sizes.items():
            print(f"  held in memory: {n / 2**20:8.1f} MiB  {m}")
        print(f"  device memory free {mem.free / 2**30:.1f} of {mem.total / 2**30:.1f} GiB")
        print(f"first load of B while A serves : {_ms(first)}")
        print(f"switch, kept loaded            : {_ms(kept)}")
        print(f"switch, reloaded (max 1 loaded): {_ms(reloaded)}")
    return 0
