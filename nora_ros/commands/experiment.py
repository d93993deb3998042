"""``nora-ros experiment chunking``: execution modes x control rates x latencies x seeds in the sim."""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

DEFAULT_VARIANTS = "hold:1,hold:5,interpolate:5,ensemble,blend"


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "experiment", help="run a simulated experiment grid (chunking: execution modes x rates x latencies)",
        description="Experiments in the simulator. `chunking` runs the simulated task with a policy that predicts "
                    "chunks over a grid of execution modes x control rates x inference latencies x seeds, through "
                    "the real scheduler and safety filter, and writes results.jsonl (one line per trial; a rerun "
                    "resumes), table.md and chunking.png.")
    sub = p.add_subparsers(dest="experiment", required=True)
    c = sub.add_parser("chunking", help="execution modes x control rates x latencies x seeds")
    c.add_argument("--out", type=pathlib.Path, default=pathlib.Path("experiments/chunking"),
                   help="folder for results.jsonl, table.md, chunking.png (default experiments/chunking)")
    c.add_argument("--modes", default=DEFAULT_VARIANTS,
                   help=f"mode variants, MODE[:EXECUTE_STEPS] comma-separated (default {DEFAULT_VARIANTS}); "
                        "rtc needs --policy nora:CHECKPOINT with NORA-1.5's flow head")
    c.add_argument("--rates", type=_floats, default=(5.0, 10.0, 25.0, 50.0), help="control rates in Hz (default 5,10,25,50)")
    c.add_argument("--latencies", type=_floats, default=(0.05, 0.15, 0.4),
                   help="inference latencies in seconds (default 0.05,0.15,0.4)")
    c.add_argument("--seeds", type=int, default=10, help="trials per cell, seeds 0..N-1 (default 10)")
    c.add_argument("--policy", default="expert",
                   help="expert (scripted expert predicting chunks, default) or nora:CHECKPOINT (folder or hub ID)")
    c.add_argument("--horizon", type=int, default=5, help="expert: actions per chunk (default 5, as NORA-Long)")
    c.add_argument("--noise", type=float, nargs=2, default=(0.001, 0.005), metavar=("METRES", "RADIANS"),
                   help="expert: std of the noise added to each predicted action (default 0.001 m, 0.005 rad)")
    c.add_argument("--task", default="carrot_in_pot", help="simulated task (default carrot_in_pot)")
    c.add_argument("--max-steps", type=int, default=80, help="model steps of motion per trial (default 80 = 16 s)")
    c.add_argument("--jobs", type=int, default=1, help="processes, one cell each (default 1)")
    c.add_argument("--table-latency", type=float, default=None,
                   help="print only this latency's rows (seconds); table.md always has all")
    c.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nora_ros.errors import NoraError
    from nora_ros.experiment.chunking import ExperimentConfig, PolicySpec, Variant, run_grid
    from nora_ros.experiment.summary import markdown, plot, summarize

    try:
        config = ExperimentConfig(
            variants=tuple(Variant.parse(v) for v in args.modes.split(",") if v.strip()),
            rates=tuple(args.rates), latencies=tuple(args.latencies), seeds=args.seeds,
            policy=PolicySpec(args.policy, args.horizon, args.noise[0], args.noise[1]), task=args.task,
            max_steps=args.max_steps)
        if args.policy == "expert" and any(v.mode == "rtc" for v in config.variants):
            raise NoraError("rtc needs a policy that samples with guidance (NORA-1.5's flow head: --policy "
                            "nora:CHECKPOINT); the scripted expert cannot be guided")
    except NoraError as exc:
        print(f"nora-ros experiment: {exc}", file=sys.stderr)
        return 2
    from nora_ros.experiment.chunking import load_results

    results_path = args.out / "results.jsonl"
    already = len(load_results(results_path))
    if already:
        print(f"resuming: {already} trials already in {results_path}", file=sys.stderr)
    start = time.perf_counter()

    def progress(done: int, total: int, m) -> None:
        per_trial = (time.perf_counter() - start) / max(1, done - already)
        left = per_trial * (total - done)
        print(f"[{done}/{total}] {m.cell} seed {m.seed}: {'success' if m.success else 'failure'} in {m.time_s:.1f} s, "
              f"jerk {m.rms_jerk:.1f}, skipped {m.skipped}  (about {left / 60:.1f} min left)", file=sys.stderr, flush=True)

    try:
        results = run_grid(config, results_path, jobs=args.jobs, progress=progress)
    except NoraError as exc:
        print(f"nora-ros experiment: {exc}", file=sys.stderr)
        return 2
    keys = {c.key for c in config.cells()}
    summaries = summarize([r for r in results if r.cell in keys])
    table = markdown(summaries)
    (args.out / "table.md").write_text(table + "\n")
    figure = plot(summaries, args.out / "chunking.png")
    print(markdown(summaries, args.table_latency) if args.table_latency is not None else table)
    print(f"\nwrote {results_path}, {args.out / 'table.md'}, {figure}")
    return 0
