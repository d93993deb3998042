"""``python -m nora_ros.bench policy``: per-stage latency of our NORA path vs the reference style.

Both paths run on the same model, frame and instruction:

- ours (:class:`nora_ros.policy.nora.policy.NoraPolicy`): numpy lanczos3 resize and patches, prompt ids
  cached per instruction, greedy decoding constrained to a well-formed FAST+ chunk (it stops
  when the chunk is complete), FAST decode, unnormalize;
- reference style (declare-lab/nora's ``inference.py``): the frame as a PIL image resized to
  224x224, chat template, processor (image processor + tokenizer) per step, unconstrained
  ``generate`` with the same token bound, action tokens picked out and FAST-decoded afterwards.

Prints median and p90 per stage (preprocess, prefill = vision encoder + the prompt's forward pass,
decode, fast_decode = FAST+ tokens to actions, unnormalize, total)
over ``--steps`` steps after ``--warmup`` untimed ones, tokens per step, and as the last line
``ratio: X`` = reference median total / ours. Without ``--model`` a tiny random-weight
checkpoint is built in a temporary folder; ``--full-size`` swaps in a random-weight model of
NORA's full size (Qwen2.5-VL-3B) in memory, for GPU figures (peak memory is printed too).
With random weights the reference path usually runs to the token bound and its output rarely
decodes; both facts are printed, and the per-token decode time is given for a like-for-like view.

Eager vs accelerated (``accelerate: on``, :mod:`nora_ros.policy.nora.accel`) side by side: the
same loaded model runs through both policies (``--no-accelerated`` skips the second), with the
median and p90 of every stage, of each decoded token (``token_k``: the seconds from the previous
token's choice to this one's) or each Euler step (``denoise_k``), the peak GPU memory of each path
(``torch.cuda.max_memory_allocated`` after a reset), whether the load-time check kept the
accelerated path (and why not), and in how many steps both paths gave the same tokens (NORA; the
same frame every step) or the largest action difference (NORA-1.5). ``--no-reference`` skips the
reference-style path (NORA-1.5: the FAST+ head's rows). ``--full-size`` on a CPU is refused: a 3B model needs ~15 GB in float32 and
minutes per step there; run it on a GPU (``scripts/gpu_bench.sh``).

``--variant nora-1.5`` times NORA-1.5 instead: its flow head
(:class:`nora_ros.policy.nora.flow_policy.Nora15Policy`: preprocess, prefill, each Euler step
``denoise_k``, unnormalize, total) next to NORA's path on the same VLM (the FAST+ head through
:class:`NoraPolicy`: preprocess, prefill, decode, fast_decode, unnormalize, total); the last line
is ``ratio: X`` = NORA's median total / the flow head's. Without ``--model`` a tiny NORA-1.5
checkpoint is built; ``--full-size`` swaps in random weights of NORA-1.5's size (Qwen2.5-VL-3B
plus a 36-layer, 768-wide expert).
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import tempfile
import time

import numpy as np

from nora_ros.bench.full_size import full_size_model, full_size_nora15, refuse_cpu_full_size
from nora_ros.bench.reference_style import ReferenceStyle
from nora_ros.policy.nora.tiny import SHARED_DATA

STAGES = ("preprocess", "prefill", "decode", "fast_decode", "unnormalize", "total")
INSTRUCTION = "put the carrot on the plate"
FRAME = SHARED_DATA / "simpler_real_bridge_frames" / "real_inpainting__bridge_real_eval_1.png"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("policy", help="NORA per-stage latency: our path vs the reference style",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="checkpoint folder or hub ID (default: a tiny random-weight one)")
    p.add_argument("--steps", type=int, default=50, help="timed steps per path (at least 50; default 50)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per path first (default 3)")
    p.add_argument("--variant", default="nora", help="nora (T=1), nora-long (T=5) or nora-1.5 (flow head vs FAST+ head)")
    p.add_argument("--device", default=None, help="cpu, cuda (default: the GPU if there is one)")
    p.add_argument("--dtype", default=None, help="bfloat16, float32 (default: bfloat16 on a GPU, float32 on a CPU; "
                   "float32 for nora-1.5, its reference's precision)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--full-size", action="store_true", help="random-weight model of NORA's full size (3B), in memory "
                   "(GPU only)")
    p.add_argument("--no-accelerated", action="store_true", help="skip the accelerated path (accelerate: on)")
    p.add_argument("--no-reference", action="store_true", help="skip the comparison path: the reference style (nora, nora-long) or the FAST+ head (nora-1.5)")
    p.set_defaults(func=run)


def _frame() -> tuple[np.ndarray, str]:
    if FRAME.is_file():
        from PIL import Image

        return np.asarray(Image.open(FRAME).convert("RGB")), f"real WidowX frame {FRAME.name}"
    return np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8), "random 480x640 frame"


def _table(name: str, rows: list[dict[str, float]]) -> list[str]:
    lines = []
    for stage in STAGES:
        v = np.array([r[stage] for r in rows]) * 1e3
        lines.append(f"{name:<10} {stage:<12} {np.median(v):>10.2f} {np.percentile(v, 90):>10.2f}")
    return lines


@dataclasses.dataclass
class Measured:
    """One path's timed steps: per-stage rows, per-token (or per-Euler-step) seconds, tokens, peak memory."""

    rows: list[dict[str, float]]
    token_rows: list[list[float]]
    tokens: list[tuple[int, ...]]
    peak_gib: float | None


def _measure(policy, rgb: np.ndarray, steps: int, warmup: int, cuda: bool) -> Measured:
    import torch

    from nora_ros.camera.frame import Frame

    rows, token_rows, tokens = [], [], []
    policy.reset(INSTRUCTION)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    for i in range(warmup + steps):
        if cuda:
            torch.cuda.synchronize()
        chunk = policy.act(Frame(rgb, float(i)), INSTRUCTION)
        if cuda:
            torch.cuda.synchronize()
        if i >= warmup:
            rows.append(dict(chunk.timings))
            token_rows.append(list(getattr(policy, "last_token_seconds", [])))
            tokens.append(tuple(chunk.token_ids))
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    return Measured(rows, token_rows, tokens, peak)


def _token_lines(name: str, token_rows: list[list[float]]) -> list[str]:
    lines = []
    for k in range(max((len(r) for r in token_rows), default=0)):
        v = np.array([r[k] for r in token_rows if len(r) > k]) * 1e3
        lines.append(f"{name:<10} {f'token_{k}':<12} {np.median(v):>10.2f} {np.percentile(v, 90):>10.2f}")
    return lines


def _median_total(rows: list[dict[str, float]]) -> float:
    return float(np.median([r["total"] for r in rows]))


def _print_path(name: str, m: Measured, per_token: bool) -> None:
    """One path's rows (printed as soon as it is measured: a time limit then still leaves them)."""
    print(f"{'path':<10} {'stage':<12} {'median_ms':>10} {'p90_ms':>10}")
    print("\n".join(_stage_table(name, m.rows)))
    if per_token:
        print("\n".join(_token_lines(name, m.token_rows)))
    if m.peak_gib is not None:
        print(f"peak GPU memory ({name}, allocated): {m.peak_gib:.2f} GiB")


def _print_summary(eager: Measured, fast: Measured | None, report, forced: bool) -> None:
    """The check's verdict, the stages side by side and the ratio."""
    if fast is None:
        return
    verdict = "ON" if report.enabled else "REJECTED at load, timed anyway (unverified)" if forced else "OFF"
    print(f"accelerated path: {verdict}: {report.reason}")
    print(f"{'stage':<12} {'eager_ms':>10} {'accel_ms':>10}")
    for stage in eager.rows[0]:
        a = np.median([r[stage] for r in eager.rows]) * 1e3
        b = np.median([r.get(stage, np.nan) for r in fast.rows]) * 1e3
        print(f"{stage:<12} {a:>10.2f} {b:>10.2f}")
    if eager.peak_gib is not None and fast.peak_gib is not None:
        print(f"peak GPU memory (allocated): eager {eager.peak_gib:.2f} GiB, accelerated {fast.peak_gib:.2f} GiB")
    print(f"eager / accelerated (median total): {_median_total(eager.rows) / _median_total(fast.rows):.2f}")


def run(args: argparse.Namespace) -> int:
    import logging

    import torch

    from nora_ros.policy.nora.checkpoint import load_nora
    from nora_ros.policy.nora.config import NoraConfig
    from nora_ros.policy.nora.policy import NoraPolicy
    from nora_ros.policy.nora.tiny import build_tiny_checkpoint

    if args.steps < 50:
        print(f"--steps {args.steps}: at least 50 steps are needed for a p90; using 50")
        args.steps = 50
    if args.threads:
        torch.set_num_threads(args.threads)
    if refuse_cpu_full_size(args):
        return 2
    logging.getLogger("nora_ros.policy.nora.policy").setLevel(logging.ERROR)  # clipping notes of random weights
    if args.variant == "nora-1.5":
        return run_nora15(args)
    tmp = None
    model = args.model
    if model is None:
        tmp = tempfile.TemporaryDirectory(prefix="nora_bench_")
        model = str(build_tiny_checkpoint(pathlib.Path(tmp.name) / "tiny", variant=args.variant))
    kwargs = {k: v for k, v in (("device", args.device), ("dtype", args.dtype)) if v is not None}
    # Random weights rank tokens without regard to where a chunk ends: the horizon check is off for timing.
    random_weights = args.model is None or args.full_size
    config = NoraConfig(model=model, variant=args.variant, accelerate="off",
                        horizon_margin=0.0 if random_weights else NoraConfig.horizon_margin, **kwargs)
    loaded = load_nora(config)
    label = "tiny random weights" if args.model is None else model
    if args.full_size:
        loaded = dataclasses.replace(loaded, model=full_size_model(loaded, loaded.device, loaded.dtype))
        label = "full-size NORA architecture (Qwen2.5-VL-3B, vocab 153713), random weights"
    cuda = loaded.device.startswith("cuda")
    policy = NoraPolicy(config, loaded=loaded)
    rgb, frame_source = _frame()
    n_params = sum(p.numel() for p in loaded.model.parameters())
    print(f"model: {label} ({n_params / 1e6:.1f} M parameters); variant {config.variant} (T={policy.horizon}); "
          f"device {loaded.device}{' (' + torch.cuda.get_device_name() + ')' if cuda else ''}, dtype {loaded.dtype}, "
          f"torch {torch.__version__}, torch threads {torch.get_num_threads()}")
    print(f"input: {frame_source}, instruction '{INSTRUCTION}'; {args.steps} timed steps after {args.warmup} warm-up; "
          f"token bound {policy.max_new_tokens}")
    eager = _measure(policy, rgb, args.steps, args.warmup, cuda)
    _print_path("eager", eager, per_token=True)
    fast = report = None
    forced = False
    if not args.no_accelerated:
        from nora_ros.policy.nora import accel
        from nora_ros.policy.nora.policy import STATIC_CACHE_LEN

        t0 = time.perf_counter()
        accelerated = NoraPolicy(dataclasses.replace(config, accelerate="on"), loaded=loaded)
        report = accelerated.accel
        print(f"accelerated policy built and checked in {time.perf_counter() - t0:.1f} s: {report.reason}")
        if not report.enabled and "other tokens" in report.reason:
            # Timing only: the policy would decode eagerly; the bench times the rejected path anyway
            # (random weights can sit near a tie that bfloat16 rounding tips) and counts equal steps.
            accelerated._decoder = accel.StaticDecoder(loaded.model, accelerated.processor.candidate_ids,
                                                       STATIC_CACHE_LEN)
            forced = True
        fast = _measure(accelerated, rgb, args.steps, args.warmup, cuda)
        _print_path("accel", fast, per_token=True)
    _print_summary(eager, fast, report, forced)
    if fast is not None:
        same = sum(a == b for a, b in zip(eager.tokens, fast.tokens, strict=True))
        print(f"tokens identical eager vs accelerated: {same}/{len(eager.tokens)} steps")
    per_token = np.median([r["decode"] / max(len(t) - 1, 1) for r, t in zip(eager.rows, eager.tokens, strict=True)])
    print(f"eager: {np.mean([len(t) for t in eager.tokens]):.1f} generated tokens per step, decode "
          f"{per_token * 1e3:.2f} ms per token after the first")
    if args.no_reference:
        if tmp is not None:
            tmp.cleanup()
        return 0
    reference = ReferenceStyle(policy)
    print(f"reference processor: {'transformers AutoProcessor' if reference.processor is not None else 'its steps by hand (AutoProcessor needs torchvision)'}")
    ours, ours_tokens = eager.rows, [len(t) for t in eager.tokens]

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    ref, ref_tokens, ref_ok = [], [], 0
    for i in range(args.warmup + args.steps):
        sync()
        times, n_tokens, ok = reference.step(rgb, INSTRUCTION)
        sync()
        if i >= args.warmup:
            ref.append(times)
            ref_tokens.append(n_tokens)
            ref_ok += ok

    print(f"{'path':<10} {'stage':<12} {'median_ms':>10} {'p90_ms':>10}")
    for line in _table("ours", ours) + _table("reference", ref):
        print(line)
    for name, rows, toks in (("ours", ours, ours_tokens), ("reference", ref, ref_tokens)):
        per_token = np.median([r["decode"] / max(n - 1, 1) for r, n in zip(rows, toks, strict=True)]) * 1e3
        print(f"{name}: {np.mean(toks):.1f} generated tokens per step, decode {per_token:.2f} ms per token after the first")
    # Like-for-like view: the reference's stages, with its decode scaled to our token count.
    r_fixed = np.median([r["preprocess"] + r["prefill"] + r["fast_decode"] + r["unnormalize"] for r in ref])
    r_tok = np.median([r["decode"] / max(n - 1, 1) for r, n in zip(ref, ref_tokens, strict=True)])
    same_tokens = (r_fixed + r_tok * max(np.mean(ours_tokens) - 1, 0)) / np.median([r["total"] for r in ours])
    print(f"ratio at our token count (reference decode scaled to {np.mean(ours_tokens):.1f} tokens): {same_tokens:.2f}")
    print(f"ours: {len(ours)}/{len(ours)} chunks decoded; reference: {ref_ok}/{len(ref)} decoded "
          "(an undecodable reference chunk becomes zeros there)")
    ratio = np.median([r["total"] for r in ref]) / np.median([r["total"] for r in ours])
    if tmp is not None:
        tmp.cleanup()
    print(f"ratio: {ratio:.2f}")
    return 0


def _stage_table(name: str, rows: list[dict[str, float]]) -> list[str]:
    lines = []
    for stage in rows[0]:
        v = np.array([r[stage] for r in rows]) * 1e3
        lines.append(f"{name:<10} {stage:<12} {np.median(v):>10.2f} {np.percentile(v, 90):>10.2f}")
    return lines


def _flow_difference(eager, accelerated, rgb: np.ndarray, draws: int = 5) -> float:
    """Largest |eager - accelerated| of the normalized actions over ``draws`` noises, same frame."""
    from nora_ros.camera.frame import Frame

    diff = 0.0
    for i in range(draws):
        noise = np.random.default_rng(i).standard_normal((eager.horizon, 7)).astype(np.float32)
        a = eager.run(Frame(rgb, float(i)), INSTRUCTION, noise=noise).normalized
        b = accelerated.run(Frame(rgb, float(i)), INSTRUCTION, noise=noise).normalized
        diff = max(diff, float(np.abs(a - b).max()))
    return diff


def run_nora15(args: argparse.Namespace) -> int:
    """NORA-1.5's flow head vs NORA's FAST+ decoding on the same VLM (see the module docstring)."""
    import dataclasses
    import logging

    import torch

    from nora_ros.policy.nora.config import NoraConfig
    from nora_ros.policy.nora.flow_policy import Nora15Policy
    from nora_ros.policy.nora.nora15 import load_nora15
    from nora_ros.policy.nora.policy import NoraPolicy
    from nora_ros.policy.nora.tiny15 import build_tiny_nora15_checkpoint

    logging.getLogger("nora_ros.policy.nora.flow_policy").setLevel(logging.ERROR)
    tmp = None
    model = args.model
    if model is None:
        tmp = tempfile.TemporaryDirectory(prefix="nora15_bench_")
        model = str(build_tiny_nora15_checkpoint(pathlib.Path(tmp.name) / "tiny15"))
    kwargs = {k: v for k, v in (("device", args.device), ("dtype", args.dtype)) if v is not None}
    config = NoraConfig(model=model, variant="nora-1.5", **kwargs)
    loaded = load_nora15(config)
    label = "tiny random weights" if args.model is None else model
    if args.full_size:
        loaded = full_size_nora15(loaded, loaded.device, loaded.dtype)
        label = "full-size NORA-1.5 architecture (Qwen2.5-VL-3B + 36-layer expert), random weights"
    flow = Nora15Policy(dataclasses.replace(config, accelerate="off"), loaded=loaded)
    # Random weights rank action tokens far above <|im_end|> where a chunk ends, which the horizon
    # check would refuse as a mismatched checkpoint: off for timing (a trained model ends there).
    fast = NoraPolicy(dataclasses.replace(config, action_head="fast", accelerate="off",
                                          horizon_margin=0.0 if args.model is None or args.full_size
                                          else config.horizon_margin), loaded=loaded.as_loaded_nora(config))
    rgb, frame_source = _frame()
    cuda = loaded.device.startswith("cuda")
    n_vlm = sum(p.numel() for p in loaded.vlm.parameters()) / 1e6
    n_flow = sum(p.numel() for p in loaded.flow.parameters()) / 1e6
    print(f"model: {label} (VLM {n_vlm:.1f} M + flow head {n_flow:.1f} M parameters); device {loaded.device}"
          f"{' (' + torch.cuda.get_device_name() + ')' if cuda else ''}, dtype {loaded.dtype}, torch {torch.__version__}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"input: {frame_source}, instruction '{INSTRUCTION}'; {args.steps} timed steps after {args.warmup} warm-up; "
          f"flow steps {flow.steps}; NORA = the FAST+ head on the same VLM (constrained greedy, T={fast.horizon})")
    print("NORA-1.5 flow head:")
    eager = _measure(flow, rgb, args.steps, args.warmup, cuda)
    _print_path("eager", eager, per_token=False)
    accelerated = report = None
    forced = False
    if not args.no_accelerated:
        from nora_ros.policy.nora import accel

        t0 = time.perf_counter()
        accel_policy = Nora15Policy(dataclasses.replace(config, accelerate="on"), loaded=loaded)
        report = accel_policy.accel
        print(f"accelerated policy built and checked in {time.perf_counter() - t0:.1f} s: {report.reason}")
        if not report.enabled and "moved the probe" in report.reason:  # timing only, as for NORA
            accel_policy._flow_accel = accel.FlowAccelerator(loaded.flow, accel_policy.steps)
            forced = True
        accelerated = _measure(accel_policy, rgb, args.steps, args.warmup, cuda)
        _print_path("accel", accelerated, per_token=False)
        diff = _flow_difference(flow, accel_policy, rgb)
    _print_summary(eager, accelerated, report, forced)
    if accelerated is not None:
        print(f"largest normalized-action difference eager vs accelerated (same noise, 5 draws): {diff:.3g}")
    if args.no_reference:
        if tmp is not None:
            tmp.cleanup()
        return 0
    fast_rows = _measure(fast, rgb, args.steps, args.warmup, cuda)
    print("NORA (FAST+ head on the same VLM, eager):")
    print("\n".join(_stage_table("nora", fast_rows.rows)))
    denoise = np.median([sum(v for k, v in r.items() if k.startswith("denoise_")) for r in eager.rows]) * 1e3
    print(f"nora-1.5: {flow.steps} denoising steps, {denoise:.2f} ms in all (median, eager); "
          f"nora: {np.mean([len(t) for t in fast_rows.tokens]):.1f} generated tokens per chunk")
    ratio = _median_total(fast_rows.rows) / _median_total(eager.rows)
    if tmp is not None:
        tmp.cleanup()
    print(f"ratio: {ratio:.2f}")
    return 0
