"""FAST+ action tokenizer, native: the byte-level BPE table (``tokenizers``) over the DCT
characters of :mod:`nora_ros.policy.fast.codec`.

NORA spells an action chunk as FAST+ tokens (DESIGN.md section 6): a normalized chunk ``(T, D)``
becomes one character per quantized DCT coefficient (the codec), and those characters become
BPE ids (here). Decoding runs the same steps backwards.

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

:class:`~nora_ros.policy.fast.constraint.FastConstraint` is the length-aware decoding support.
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Iterable, Sequence

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from nora_ros.errors import ConfigurationError, FastDecodeError, InvalidInputError
from nora_ros.policy.fast.codec import (
    DEFAULT_ACTION_DIM,
    FAST_PLUS_MIN_TOKEN,
    FAST_PLUS_SCALE,
    FAST_PLUS_VOCAB_SIZE,
    check_shape,
    chunk_text,
    codes_to_chunk,
)

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
        texts = [chunk_text(c, scale, min_token, max_token, where=f"chunk {i}") for i, c in enumerate(chunks)]
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
        text = chunk_text(actions, self._scale, self._min_token, self._max_token, where="actions")
        return list(self._tok.encode(text).ids)

    def decode(self, ids: Sequence[int] | np.ndarray, horizon: int, action_dim: int = DEFAULT_ACTION_DIM) -> np.ndarray:
        """The normalized chunk ``(horizon, action_dim)`` float64 spelled by ``ids``.

        Raises :class:`FastDecodeError` (reason ``empty``, ``token``, ``utf8``, ``alphabet``,
        ``length`` or ``range``); never returns zeros or drops anything.
        """
        check_shape(horizon, action_dim)
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
        return codes_to_chunk(codes, horizon, action_dim, self._scale, self._min_token, self.alphabet_size)
