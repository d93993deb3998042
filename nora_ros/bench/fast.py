"""``python -m nora_ros.bench fast``: FAST+ tokenizer and constraint costs, per call.

Figures: fit time; encode and decode per chunk; building a :class:`FastConstraint` (the
per-table byte tables, then per horizon); one constrained step (``allowed`` + ``advance``,
what NORA's logits processor pays per generated token) with cold and warm mask caches; and
tokens per chunk. Chunks are the real Bridge episodes in ../shared/data when present (fit on
them), else smooth random chunks.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np

DEFAULT_DATA = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("fast", help="FAST+ encode/decode and constrained-decoding step costs")
    p.add_argument("--table", default=None, help="FAST tokenizer.json or folder to time (default: fit one on the data)")
    p.add_argument("--vocab", type=int, default=None, help="vocab size when fitting (default: FAST+'s 2048)")
    p.add_argument("--repeats", type=int, default=200, help="timed repetitions per figure (default 200)")
    p.set_defaults(func=run)


def _chunks(horizon: int) -> tuple[list[np.ndarray], str]:
    from nora_ros.actions import NormStats

    folder = DEFAULT_DATA / "octo_bridge_debug" / "extracted_train"
    stats_file = DEFAULT_DATA / "norm_stats" / "bridge_orig_action_stats.json"
    if folder.is_dir() and stats_file.is_file():
        stats = NormStats.from_json(stats_file, "bridge_orig")
        out = []
        for f in sorted(folder.glob("episode_*.npz")):
            a = np.clip(stats.normalize(np.load(f)["action"]), -1.0, 1.0)
            out += [a[i : i + horizon] for i in range(len(a) - horizon + 1)]
        return out, f"{len(out)} real Bridge chunks"
    rng = np.random.default_rng(0)
    out = [np.clip(np.cumsum(rng.normal(0, 0.1, (horizon, 7)), axis=0), -1, 1) for _ in range(200)]
    return out, "200 random smooth chunks (../shared/data absent)"


def _stat(samples: list[float]) -> str:
    s = np.array(samples) * 1e6
    return f"median {np.median(s):8.1f} us  p90 {np.percentile(s, 90):8.1f} us"


def run(args: argparse.Namespace) -> int:
    from nora_ros.policy.fast.codec import FAST_PLUS_VOCAB_SIZE
    from nora_ros.policy.fast.constraint import FastConstraint
    from nora_ros.policy.fast.tokenizer import FastTokenizer

    c1, source1 = _chunks(1)
    c5, source5 = _chunks(5)
    if args.table:
        fast = FastTokenizer.load(args.table)
        print(f"table: {args.table} -> {fast}")
    else:
        t0 = time.perf_counter()
        fast = FastTokenizer.fit(c1 + c5, vocab_size=args.vocab or FAST_PLUS_VOCAB_SIZE)
        print(f"fit on {source1} (T=1) and {source5} (T=5): {time.perf_counter() - t0:.3f} s -> {fast}")
    t0 = time.perf_counter()
    FastConstraint(fast, 1)
    print(f"constraint tables (once per table): {(time.perf_counter() - t0) * 1e3:.1f} ms")
    rng = np.random.default_rng(0)
    for horizon, chunks in ((1, c1), (5, c5)):
        ids = [fast.encode(c) for c in chunks]
        enc, dec = [], []
        for i in range(args.repeats):
            c = chunks[i % len(chunks)]
            t0 = time.perf_counter()
            tok = fast.encode(c)
            t1 = time.perf_counter()
            fast.decode(tok, horizon)
            t2 = time.perf_counter()
            enc.append(t1 - t0)
            dec.append(t2 - t1)
        print(f"T={horizon}: tokens per chunk mean {np.mean([len(t) for t in ids]):.1f} "
              f"(of {horizon * 7} coefficients)")
        print(f"T={horizon}: encode {_stat(enc)}")
        print(f"T={horizon}: decode {_stat(dec)}")
        t0 = time.perf_counter()
        con = FastConstraint(fast, horizon)
        build = time.perf_counter() - t0
        # Cold: a fresh constraint per sequence (no mask cached); warm: the same walk again.
        cold, warm = [], []
        for i in range(min(args.repeats, len(ids))):
            fresh = FastConstraint(fast, horizon)
            for con_, out in ((fresh, cold), (fresh, warm)):
                state = con_.start()
                for tok in ids[i]:
                    t0 = time.perf_counter()
                    con_.allowed(state)
                    state = con_.advance(state, tok)
                    out.append(time.perf_counter() - t0)
        print(f"T={horizon}: constraint build {build * 1e3:.2f} ms")
        print(f"T={horizon}: step (allowed + advance) cold {_stat(cold)}")
        print(f"T={horizon}: step (allowed + advance) warm {_stat(warm)}")
        # A random walk too, as a model with random weights would take.
        steps = []
        for _ in range(20):
            state = con.start()
            while not con.done(state):
                choices = np.flatnonzero(con.allowed(state))
                t0 = time.perf_counter()
                state = con.advance(state, int(choices[rng.integers(choices.size)]))
                con.allowed(state)
                steps.append(time.perf_counter() - t0)
        print(f"T={horizon}: random-walk step {_stat(steps)} ({len(con._masks)} cached states)")
    return 0
