"""FAST+ action tokenizer, native: DCT with scipy, byte-level BPE with ``tokenizers``.

NORA spells an action chunk as FAST+ tokens (DESIGN.md section 6). Encoding a normalized chunk
``(T, D)``: orthonormal DCT-II along time per dimension, times ``scale``, rounded half to even,
flattened frequency-major (every dimension's frequency 0, then frequency 1, ...), minus
``min_token``, each integer to one character ``chr(v)``, then byte-level BPE. Decoding runs the
same steps backwards.

Why native instead of ``AutoProcessor.from_pretrained("physical-intelligence/fast",
trust_remote_code=True)``: remote code is not allowed here, and the reference returns zeros on
a malformed sequence (zeros are a *motion* for a delta policy) and misses out-of-range values.
Here every way a sequence can be malformed raises :class:`FastDecodeError` with a reason tag:

``empty``     no tokens at all;
``token``     an id outside the vocabulary (or not an integer);
``utf8``      the tokens' bytes do not form whole UTF-8 characters (a byte-level BPE token can
              hold part of a multi-byte character; nothing is replaced by U+FFFD or dropped);
``alphabet``  a character outside the table's alphabet ``[0, max_token - min_token]``;
``length``    not exactly ``horizon * action_dim`` coefficients;
``range``     a coefficient that no chunk in the normalized action space ``[-1, 1]`` can
              produce (``|c_k| <= ||w_k||_1``, ``w_k`` the k-th DCT basis vector, plus half a
              rounding step): decoding it would command a motion beyond the statistics' range.

:class:`FastConstraint` is the length-aware decoding support: given the tokens generated so
far, which tokens keep the sequence decodable to exactly ``T * D`` in-range coefficients.
"""

from __future__ import annotations

import functools
import json
import math
import pathlib
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
from scipy.fft import dct, idct
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from nora_ros.errors import ConfigurationError, FastDecodeError, InvalidInputError

FAST_PLUS_SCALE = 10.0
"""DCT coefficient scale of the FAST+ universal tokenizer (one rounding step is 0.1)."""

FAST_PLUS_MIN_TOKEN = -354
"""Smallest scaled coefficient of the FAST+ universal tokenizer (character 0)."""

FAST_PLUS_VOCAB_SIZE = 2048
"""BPE vocabulary size of the FAST+ universal tokenizer (NORA's 2048 action tokens)."""

ACTION_BOUND = 1.0
"""Normalized actions lie in ``[-ACTION_BOUND, ACTION_BOUND]`` (NORA's model space)."""

DEFAULT_ACTION_DIM = 7
"""Bridge actions: ``[dx, dy, dz, droll, dpitch, dyaw, gripper]``."""

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "processor_config.json"

_MAX_VOCAB = 65536
"""A larger table is a language model's tokenizer, not a FAST table (a common mix-up)."""


def _gpt2_byte_decoder() -> dict[str, int]:
    """Character -> byte of the byte-level BPE alphabet (GPT-2's ``bytes_to_unicode``, inverted)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = dict(zip(printable, printable, strict=True))
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = 256 + extra
            extra += 1
    return {chr(c): b for b, c in chars.items()}


_BYTE_DECODER = _gpt2_byte_decoder()


def _token_to_bytes(token: str) -> bytes:
    """The bytes a vocabulary entry stands for, exactly as ``tokenizers``' ByteLevel decoder does.

    An entry made only of byte-level symbols is those bytes; any other entry (the FAST+ table
    holds raw ``chr(i)`` entries from its training alphabet) stands for its own UTF-8 bytes.
    """
    try:
        return bytes(_BYTE_DECODER[c] for c in token)
    except KeyError:
        return token.encode("utf-8")


@functools.lru_cache(maxsize=64)
def coefficient_bounds(horizon: int, action_dim: int, scale: float) -> np.ndarray:
    """Largest ``|scaled coefficient|`` a ``(horizon, action_dim)`` chunk in ``[-1, 1]`` can have.

    Returned per flattened (frequency-major) position, as integers. Coefficient ``k`` is
    ``w_k . x`` with ``w_k`` the orthonormal DCT basis vector, so over ``x`` in ``[-1, 1]^T``
    its largest magnitude is ``||w_k||_1`` (attained at ``x = sign(w_k)``); rounding adds at
    most half a step, which ``floor(. + 0.5)`` covers.
    """
    basis = dct(np.eye(horizon), axis=0, norm="ortho")  # basis[k, t] = w_k[t]
    l1 = np.abs(basis).sum(axis=1) * ACTION_BOUND * scale
    per_freq = np.floor(l1 + 0.5 + 1e-9).astype(np.int64)
    out = np.repeat(per_freq, action_dim)
    out.setflags(write=False)
    return out


class FastTokenizer:
    """FAST+ action tokenizer: a byte-level BPE table plus ``scale`` and ``min_token``.

    ``max_token`` bounds the alphabet: characters ``0 .. max_token - min_token`` are the
    encodable values. Build one with :meth:`load` (a ``tokenizer.json``, e.g. the checkpoint's
    own) or :meth:`fit` (train a table on action data); :meth:`save` writes both files.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        scale: float = FAST_PLUS_SCALE,
        min_token: int = FAST_PLUS_MIN_TOKEN,
        max_token: int | None = None,
    ) -> None:
        if not (isinstance(scale, int | float) and math.isfinite(scale) and scale > 0):
            raise ConfigurationError(f"FAST scale must be a positive number, got {scale!r} (FAST+ uses {FAST_PLUS_SCALE:g})")
        if int(min_token) != min_token or min_token > 0:
            raise ConfigurationError(
                f"FAST min_token must be an integer <= 0 (coefficient 0 must be encodable), got {min_token!r} "
                f"(FAST+ uses {FAST_PLUS_MIN_TOKEN})"
            )
        self._tok = tokenizer
        self._scale = float(scale)
        self._min_token = int(min_token)
        spec = json.loads(tokenizer.to_str())
        model_type = spec.get("model", {}).get("type")
        decoder_type = (spec.get("decoder") or {}).get("type")
        if model_type != "BPE" or decoder_type != "ByteLevel":
            raise ConfigurationError(
                f"a FAST table is a byte-level BPE (model BPE, decoder ByteLevel); this tokenizer has model "
                f"{model_type!r} and decoder {decoder_type!r}: point at the FAST tokenizer.json"
            )
        vocab = tokenizer.get_vocab(with_added_tokens=True)
        size = len(vocab)
        if size > _MAX_VOCAB:
            raise ConfigurationError(
                f"this tokenizer has {size} entries: it looks like a language model's tokenizer, not a FAST "
                f"table (FAST+ has {FAST_PLUS_VOCAB_SIZE}); point at the FAST tokenizer.json"
            )
        if sorted(vocab.values()) != list(range(size)):
            raise ConfigurationError(f"FAST table ids must be 0..{size - 1} without gaps")
        self._token_bytes: list[bytes] = [b""] * size
        for token, idx in vocab.items():
            self._token_bytes[idx] = _token_to_bytes(token)
        if max_token is None:
            max_token = self._infer_max_token(vocab)
        if int(max_token) != max_token or max_token < 0:
            raise ConfigurationError(f"FAST max_token must be an integer >= 0, got {max_token!r}")
        self._max_token = int(max_token)
        if self.alphabet_size > 0xD800:
            raise ConfigurationError(
                f"FAST alphabet of {self.alphabet_size} characters reaches the UTF-16 surrogates; "
                "max_token - min_token must stay below 55296"
            )
        self._check_round_trip()
        self._tables: _PrefixTables | None = None

    # ------------------------------------------------------------------ construction

    def _infer_max_token(self, vocab: dict[str, int]) -> int:
        """Alphabet end when no config says it: the reference trains with every ``chr(i)``,
        ``i <= max_token - min_token``, as a raw vocabulary entry, so the largest raw entry marks
        it. Never smaller than the symmetric ``-min_token``."""
        raw = [ord(t) for t in vocab if len(t) == 1 and t not in _BYTE_DECODER]
        return max([-self._min_token, *(i + self._min_token for i in raw)])

    def _check_round_trip(self) -> None:
        """Encoding must spell the text exactly: a normalizer or ``add_prefix_space`` would not."""
        probe = "".join(chr(v) for v in range(self.alphabet_size))
        ids = self._tok.encode(probe).ids
        if b"".join(self._token_bytes[i] for i in ids) != probe.encode("utf-8"):
            raise ConfigurationError(
                "this tokenizer.json alters the text it encodes (a normalizer, or add_prefix_space in its "
                "pre-tokenizer): a FAST table must spell characters exactly"
            )
        needed = {b for v in range(self.alphabet_size) for b in chr(v).encode("utf-8")}
        single = {tb[0] for tb in self._token_bytes if len(tb) == 1}
        if missing := sorted(needed - single):
            raise ConfigurationError(
                f"FAST table lacks single-byte tokens for bytes {missing[:8]}: byte-level BPE must hold all of "
                "its base alphabet, or constrained decoding cannot always finish a character"
            )

    @classmethod
    def load(cls, path: str | pathlib.Path, config: str | pathlib.Path | None = None) -> FastTokenizer:
        """Load a table from ``tokenizer.json`` (or a folder holding one).

        ``scale``, ``min_token`` and ``max_token`` come from ``config`` or a
        ``processor_config.json`` beside the table; missing values take the FAST+ defaults
        (scale 10, min_token -354). A ``vocab_size`` in the config must match the table.
        """
        path = pathlib.Path(path)
        table = path / TOKENIZER_FILE if path.is_dir() else path
        if not table.is_file():
            raise ConfigurationError(
                f"FAST table {table} does not exist: give a tokenizer.json or a folder holding one "
                "(`FastTokenizer.fit(...).save(folder)` writes one)"
            )
        cfg_path = pathlib.Path(config) if config is not None else table.parent / CONFIG_FILE
        cfg: dict = {}
        if config is not None or cfg_path.is_file():
            try:
                cfg = json.loads(cfg_path.read_text())
            except FileNotFoundError as exc:
                raise ConfigurationError(f"FAST processor config {cfg_path} does not exist") from exc
            except json.JSONDecodeError as exc:
                raise ConfigurationError(f"FAST processor config {cfg_path} is not valid JSON: {exc}") from exc
            if not isinstance(cfg, dict):
                raise ConfigurationError(f"FAST processor config {cfg_path} must hold a JSON object")
        try:
            tok = Tokenizer.from_file(str(table))
        except Exception as exc:  # tokenizers raises a bare Exception on a malformed file
            raise ConfigurationError(f"FAST table {table} cannot be read by tokenizers: {exc}") from exc
        scale, min_token = cfg.get("scale"), cfg.get("min_token")
        out = cls(
            tok,
            scale=FAST_PLUS_SCALE if scale is None else scale,
            min_token=FAST_PLUS_MIN_TOKEN if min_token is None else min_token,
            max_token=cfg.get("max_token"),
        )
        want = cfg.get("vocab_size")
        if want is not None and want != out.vocab_size:
            raise ConfigurationError(
                f"{cfg_path} says vocab_size {want} but {table} holds {out.vocab_size} entries: the two files "
                "belong to different tables"
            )
        return out

    @classmethod
    def fit(
        cls,
        chunks: Iterable[np.ndarray],
        vocab_size: int = FAST_PLUS_VOCAB_SIZE,
        scale: float = FAST_PLUS_SCALE,
        min_token: int = FAST_PLUS_MIN_TOKEN,
        max_token: int | None = None,
    ) -> FastTokenizer:
        """Train a byte-level BPE table on normalized action chunks (each ``(T, D)`` in ``[-1, 1]``).

        The initial alphabet is all 256 byte symbols, so every value in the alphabet stays
        encodable whatever the data holds; merges stop at ``vocab_size`` or when no pair occurs
        twice (small data gives a smaller table). ``max_token`` defaults to ``-min_token``.
        """
        if max_token is None:
            max_token = -int(min_token)
        if vocab_size < 256:
            raise ConfigurationError(f"vocab_size must be at least 256 (the byte alphabet), got {vocab_size}")
        texts = [_chunk_text(c, scale, min_token, max_token, where=f"chunk {i}") for i, c in enumerate(chunks)]
        if not texts:
            raise InvalidInputError("FastTokenizer.fit needs at least one action chunk")
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=int(vocab_size),
            min_frequency=2,
            special_tokens=[],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok, scale=scale, min_token=min_token, max_token=max_token)

    def save(self, folder: str | pathlib.Path) -> pathlib.Path:
        """Write ``tokenizer.json`` and ``processor_config.json`` into ``folder``; return the folder."""
        folder = pathlib.Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._tok.save(str(folder / TOKENIZER_FILE))
        cfg = {
            "processor_class": "UniversalActionProcessor",
            "scale": self._scale,
            "min_token": self._min_token,
            "max_token": self._max_token,
            "vocab_size": self.vocab_size,
            "time_horizon": None,
            "action_dim": None,
        }
        (folder / CONFIG_FILE).write_text(json.dumps(cfg, indent=1) + "\n")
        return folder

    # ------------------------------------------------------------------ properties

    @property
    def vocab_size(self) -> int:
        return len(self._token_bytes)

    @property
    def scale(self) -> float:
        return self._scale

    @property
    def min_token(self) -> int:
        return self._min_token

    @property
    def max_token(self) -> int:
        return self._max_token

    @property
    def alphabet_size(self) -> int:
        """Number of encodable characters: ``chr(0) .. chr(max_token - min_token)``."""
        return self._max_token - self._min_token + 1

    @property
    def tokenizer(self) -> Tokenizer:
        """The underlying ``tokenizers`` object (for inspection; do not mutate)."""
        return self._tok

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes token ``token_id`` spells (may be part of a multi-byte character)."""
        return self._token_bytes[token_id]

    def __repr__(self) -> str:
        return (
            f"FastTokenizer(vocab_size={self.vocab_size}, scale={self._scale:g}, min_token={self._min_token}, "
            f"max_token={self._max_token})"
        )

    # ------------------------------------------------------------------ encode / decode

    def encode(self, actions: np.ndarray) -> list[int]:
        """BPE ids (``0 .. vocab_size - 1``) of a normalized chunk ``(T, D)`` in ``[-1, 1]``.

        Raises :class:`InvalidInputError` for a wrong shape, non-finite values or values outside
        ``[-1, 1]`` (clip after normalizing, and report it): nothing is clipped here.
        """
        text = _chunk_text(actions, self._scale, self._min_token, self._max_token, where="actions")
        return list(self._tok.encode(text).ids)

    def decode(self, ids: Sequence[int] | np.ndarray, horizon: int, action_dim: int = DEFAULT_ACTION_DIM) -> np.ndarray:
        """The normalized chunk ``(horizon, action_dim)`` float64 spelled by ``ids``.

        Raises :class:`FastDecodeError` (reason ``empty``, ``token``, ``utf8``, ``alphabet``,
        ``length`` or ``range``); never returns zeros or drops anything.
        """
        n = _check_shape(horizon, action_dim)
        arr = np.asarray(ids)
        if arr.size == 0:
            raise FastDecodeError("empty", "no action tokens were generated")
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise FastDecodeError("token", f"token ids must be a flat sequence of integers, got {arr.dtype} shape {arr.shape}")
        bad = np.flatnonzero((arr < 0) | (arr >= self.vocab_size))
        if bad.size:
            raise FastDecodeError(
                "token",
                f"id {int(arr[bad[0]])} at position {int(bad[0])} is outside the FAST vocabulary 0..{self.vocab_size - 1}",
            )
        data = b"".join([self._token_bytes[i] for i in arr.tolist()])
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            where = "the sequence ends inside a character" if exc.end >= len(data) and exc.reason.startswith("unexpected end") else exc.reason
            raise FastDecodeError(
                "utf8", f"the tokens' bytes do not form whole UTF-8 characters at byte {exc.start} of {len(data)} ({where})"
            ) from exc
        codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int64)
        outside = np.flatnonzero(codes >= self.alphabet_size)
        if outside.size:
            i = int(outside[0])
            raise FastDecodeError(
                "alphabet",
                f"character {i} is U+{int(codes[i]):04X}, outside the FAST alphabet 0..{self.alphabet_size - 1} "
                f"(coefficients {self._min_token}..{self._max_token})",
            )
        if codes.size != n:
            raise FastDecodeError(
                "length",
                f"expected {n} coefficients ({horizon} steps x {action_dim} dims), got {codes.size}",
            )
        coef = codes + self._min_token
        bound = coefficient_bounds(horizon, action_dim, self._scale)
        over = np.flatnonzero(np.abs(coef) > bound)
        if over.size:
            i = int(over[0])
            raise FastDecodeError(
                "range",
                f"coefficient {int(coef[i]) / self._scale:g} (frequency {i // action_dim}, dim {i % action_dim}) "
                f"exceeds {int(bound[i]) / self._scale:g}, the most a chunk in [-1, 1] can produce",
            )
        return idct(coef.reshape(horizon, action_dim) / self._scale, axis=0, norm="ortho")

    # ------------------------------------------------------------------ constraint support

    def _prefix_tables(self) -> _PrefixTables:
        if self._tables is None:
            self._tables = _PrefixTables(self)
        return self._tables


def _check_shape(horizon: int, action_dim: int) -> int:
    for name, v in (("horizon", horizon), ("action_dim", action_dim)):
        if not isinstance(v, int | np.integer) or isinstance(v, bool) or v < 1:
            raise InvalidInputError(f"{name} must be a positive integer, got {v!r}")
    return int(horizon) * int(action_dim)


def _chunk_text(actions: np.ndarray, scale: float, min_token: int, max_token: int, where: str) -> str:
    """The FAST character string of one normalized chunk (validated, never clipped)."""
    a = np.asarray(actions, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise InvalidInputError(f"{where}: an action chunk is (T, D) with T, D >= 1, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        t, d = np.argwhere(~np.isfinite(a))[0]
        raise InvalidInputError(f"{where}: non-finite value at step {t}, dim {d}")
    if np.any(np.abs(a) > ACTION_BOUND):
        t, d = np.argwhere(np.abs(a) > ACTION_BOUND)[0]
        raise InvalidInputError(
            f"{where}: value {a[t, d]:.4g} at step {t}, dim {d} is outside the normalized range [-1, 1]; "
            "normalize with NormStats and clip (reporting it) before encoding"
        )
    coef = np.around(dct(a, axis=0, norm="ortho") * scale).astype(np.int64).reshape(-1)
    if coef.min() < min_token or coef.max() > max_token:
        raise InvalidInputError(
            f"{where}: scaled DCT coefficients span {coef.min()}..{coef.max()}, outside the table's "
            f"{min_token}..{max_token}"
        )
    return "".join(map(chr, (coef - min_token).tolist()))


# --------------------------------------------------------------------------- constrained decoding


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
        self.n = _check_shape(horizon, action_dim)
        self.horizon = int(horizon)
        self.action_dim = int(action_dim)
        self.tokenizer = tokenizer
        self._t = tokenizer._prefix_tables()
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
