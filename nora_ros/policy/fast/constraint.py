"""Length-aware constrained decoding of FAST+ tokens: given the tokens generated so far, which
tokens keep the sequence decodable to exactly ``T * D`` in-range coefficients.

The per-tokenizer byte tables are built once (a few hundred milliseconds for 2048 tokens) and
shared by every constraint on that tokenizer, so a generation step is array work only.
"""

from __future__ import annotations

import weakref
from typing import NamedTuple

import numpy as np

from nora_ros.errors import FastDecodeError, InvalidInputError
from nora_ros.policy.fast.codec import DEFAULT_ACTION_DIM, check_shape, coefficient_bounds
from nora_ros.policy.fast.tokenizer import FastTokenizer

_TABLES: weakref.WeakKeyDictionary[FastTokenizer, _PrefixTables] = weakref.WeakKeyDictionary()


def prefix_tables(tokenizer: FastTokenizer) -> _PrefixTables:
    """The byte tables of ``tokenizer``, built at its first constraint and kept while it lives."""
    tables = _TABLES.get(tokenizer)
    if tables is None:
        tables = _TABLES[tokenizer] = _PrefixTables(tokenizer)
    return tables


class FastState(NamedTuple):
    """Where a partial FAST sequence stands: complete characters so far, and the bytes of a
    character begun but not finished (empty when none)."""

    count: int
    pending: bytes


class _PrefixTables:
    """Per-tokenizer tables shared by every :class:`FastConstraint`: for each possible pending
    partial character ``p`` and each token, what appending the token's bytes yields.

    ``ok[p, t]``: the bytes parse (whole alphabet characters, then a proper prefix of one);
    ``nchar[p, t]``: characters completed; ``newp[p, t]``: index of the new pending prefix;
    ``codes[p, t, j]``: the j-th completed character. Computed once per tokenizer (a few
    hundred milliseconds for 2048 tokens) so that each constraint step is array work only.
    """

    def __init__(self, fast: FastTokenizer) -> None:
        alphabet = fast.alphabet_size
        # Every proper prefix of an alphabet character's UTF-8 bytes, with the code-point
        # interval of its completions (UTF-8 preserves order, so it is contiguous).
        spans: dict[bytes, list[int]] = {b"": [0, alphabet - 1]}
        for v in range(128, alphabet):
            enc = chr(v).encode("utf-8")
            for k in range(1, len(enc)):
                span = spans.setdefault(enc[:k], [v, v])
                span[0], span[1] = min(span[0], v), max(span[1], v)
        self.prefixes: list[bytes] = list(spans)
        self.index: dict[bytes, int] = {p: i for i, p in enumerate(self.prefixes)}
        self.cmin = np.array([spans[p][0] for p in self.prefixes], dtype=np.int64)
        self.cmax = np.array([spans[p][1] for p in self.prefixes], dtype=np.int64)
        n_p, n_t = len(self.prefixes), fast.vocab_size
        # A token that spells no byte would let a walk stall forever: never allowed.
        parsed = [
            [self._parse(p + fast.token_bytes(t), alphabet) if fast.token_bytes(t) else None for t in range(n_t)]
            for p in self.prefixes
        ]
        width = max(1, max((len(c) for row in parsed for c, _ in filter(None, row)), default=1))
        self.width = width
        self.ok = np.zeros((n_p, n_t), dtype=bool)
        self.nchar = np.zeros((n_p, n_t), dtype=np.int64)
        self.newp = np.zeros((n_p, n_t), dtype=np.int64)
        self.codes = np.zeros((n_p, n_t, width), dtype=np.int64)
        self.valid_j = np.zeros((n_p, n_t, width), dtype=bool)
        for pi, row in enumerate(parsed):
            for t, res in enumerate(row):
                if res is None:
                    continue
                chars, newp = res
                self.ok[pi, t] = True
                self.nchar[pi, t] = len(chars)
                self.newp[pi, t] = newp
                self.codes[pi, t, : len(chars)] = chars
                self.valid_j[pi, t, : len(chars)] = True

    def _parse(self, data: bytes, alphabet: int) -> tuple[list[int], int] | None:
        """Split ``data`` into whole characters and a trailing pending prefix, or None if it
        cannot be the start of a well-formed FAST string."""
        for k in range(min(3, len(data)) + 1):
            tail = data[len(data) - k :] if k else b""
            pi = self.index.get(tail)
            if pi is None:
                continue
            try:
                head = data[: len(data) - k].decode("utf-8")
            except UnicodeDecodeError:
                continue
            chars = [ord(c) for c in head]
            if any(c >= alphabet for c in chars):
                return None
            return chars, pi
        return None


class FastConstraint:
    """Which tokens keep a partial FAST sequence decodable to exactly ``horizon * action_dim``
    in-range coefficients.

    Use: ``s = c.start()``; at each generation step take :meth:`allowed` (a boolean mask over
    the FAST vocabulary), pick a token, ``s = c.advance(s, token)``; when :meth:`done` is true
    only end-of-sequence may follow (the mask is then all false). A sequence built this way
    always decodes (no ``utf8``, ``alphabet``, ``length`` or ``range`` error), and some token
    is always allowed until done: the table holds every single byte, and the value 0 is in
    range at every position. Masks are cached per state ``(count, pending)``; the state space
    is small (``n + 1`` counts times a few dozen pending prefixes).
    """

    def __init__(self, tokenizer: FastTokenizer, horizon: int, action_dim: int = DEFAULT_ACTION_DIM) -> None:
        self.n = check_shape(horizon, action_dim)
        self.horizon = int(horizon)
        self.action_dim = int(action_dim)
        self.tokenizer = tokenizer
        self._t = prefix_tables(tokenizer)
        bound = coefficient_bounds(self.horizon, self.action_dim, tokenizer.scale)
        lo = np.maximum(0, -bound - tokenizer.min_token)
        hi = np.minimum(tokenizer.alphabet_size - 1, bound - tokenizer.min_token)
        # Positions at or beyond n accept nothing (lo > hi), so slices never run off the end.
        pad = self._t.width + 1
        self._lo = np.concatenate([lo, np.ones(pad, dtype=np.int64)])
        self._hi = np.concatenate([hi, np.zeros(pad, dtype=np.int64)])
        self._masks: dict[tuple[int, int], np.ndarray] = {}

    @property
    def max_tokens(self) -> int:
        """An upper bound on the tokens any allowed sequence takes (each token adds a byte)."""
        return self.n * max(len(chr(self.tokenizer.alphabet_size - 1).encode("utf-8")), 1)

    def start(self) -> FastState:
        return FastState(0, b"")

    def _key(self, state: FastState) -> tuple[int, int]:
        pi = self._t.index.get(state.pending)
        if pi is None or not 0 <= state.count <= self.n:
            raise InvalidInputError(f"not a FAST constraint state: {state!r}")
        return state.count, pi

    def allowed(self, state: FastState) -> np.ndarray:
        """Read-only boolean mask over the vocabulary: tokens allowed next in ``state``."""
        key = self._key(state)
        mask = self._masks.get(key)
        if mask is None:
            mask = self._compute(*key)
            self._masks[key] = mask
        return mask

    def _compute(self, count: int, pi: int) -> np.ndarray:
        t = self._t
        nchar = t.nchar[pi]
        ok = t.ok[pi] & (count + nchar <= self.n)
        lo = self._lo[count : count + t.width]
        hi = self._hi[count : count + t.width]
        codes = t.codes[pi]
        in_range = (codes >= lo) & (codes <= hi)
        ok &= np.all(in_range | ~t.valid_j[pi], axis=1)
        # A trailing partial character needs a completion that is in range where it will land.
        newp = t.newp[pi]
        pos = np.minimum(count + nchar, self.n + t.width)
        partial = newp != 0
        completes = (t.cmin[newp] <= self._hi[pos]) & (t.cmax[newp] >= self._lo[pos])
        ok &= ~partial | completes
        ok.setflags(write=False)
        return ok

    def advance(self, state: FastState, token_id: int) -> FastState:
        """The state after appending ``token_id``; raises :class:`FastDecodeError` (reason
        ``constraint``) if the token is not allowed in ``state``."""
        count, pi = self._key(state)
        mask = self.allowed(state)
        tid = int(token_id)
        if not 0 <= tid < mask.size or not mask[tid]:
            raise FastDecodeError(
                "constraint", f"token {tid} is not allowed after {count} of {self.n} coefficients"
            )
        return FastState(count + int(self._t.nchar[pi, tid]), self._t.prefixes[self._t.newp[pi, tid]])

    def done(self, state: FastState) -> bool:
        """Exactly ``n`` complete characters and nothing pending: only end-of-sequence may follow."""
        return state.count == self.n and not state.pending
