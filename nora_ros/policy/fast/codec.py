"""FAST+'s numbers: a normalized action chunk <-> the integer characters its BPE table spells.

Encoding: orthonormal DCT-II along time per dimension, times ``scale``, rounded half to even,
flattened frequency-major (every dimension's frequency 0, then frequency 1, ...), minus
``min_token``, each integer one character ``chr(v)``. Decoding checks every character on the
way back (alphabet, count, and the ``range`` no chunk in ``[-1, 1]`` can leave) before the
inverse DCT: a malformed sequence is a :class:`FastDecodeError`, never zeros.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.fft import dct, idct

from nora_ros.errors import FastDecodeError, InvalidInputError

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


def check_shape(horizon: int, action_dim: int) -> int:
    for name, v in (("horizon", horizon), ("action_dim", action_dim)):
        if not isinstance(v, int | np.integer) or isinstance(v, bool) or v < 1:
            raise InvalidInputError(f"{name} must be a positive integer, got {v!r}")
    return int(horizon) * int(action_dim)


def chunk_text(actions: np.ndarray, scale: float, min_token: int, max_token: int, where: str) -> str:
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


def codes_to_chunk(codes: np.ndarray, horizon: int, action_dim: int, scale: float, min_token: int,
                   alphabet_size: int) -> np.ndarray:
    """The normalized chunk ``(horizon, action_dim)`` float64 that the characters ``codes`` (code
    points) spell; :class:`FastDecodeError` (``alphabet``, ``length`` or ``range``) otherwise."""
    n = check_shape(horizon, action_dim)
    outside = np.flatnonzero(codes >= alphabet_size)
    if outside.size:
        i = int(outside[0])
        raise FastDecodeError(
            "alphabet",
            f"character {i} is U+{int(codes[i]):04X}, outside the FAST alphabet 0..{alphabet_size - 1} "
            f"(coefficients {min_token}..{min_token + alphabet_size - 1})",
        )
    if codes.size != n:
        raise FastDecodeError(
            "length",
            f"expected {n} coefficients ({horizon} steps x {action_dim} dims), got {codes.size}",
        )
    coef = codes + min_token
    bound = coefficient_bounds(horizon, action_dim, scale)
    over = np.flatnonzero(np.abs(coef) > bound)
    if over.size:
        i = int(over[0])
        raise FastDecodeError(
            "range",
            f"coefficient {int(coef[i]) / scale:g} (frequency {i // action_dim}, dim {i % action_dim}) "
            f"exceeds {int(bound[i]) / scale:g}, the most a chunk in [-1, 1] can produce",
        )
    return idct(coef.reshape(horizon, action_dim) / scale, axis=0, norm="ortho")
