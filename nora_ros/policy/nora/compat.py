"""Which transformers NORA's own decoding loop trusts, and a load-time check that it is right.

NORA decodes in its own greedy loop (:mod:`nora_ros.policy.nora.decoding`), not through
``generate``, so it depends on the call conventions of ``Qwen2_5_VLModel.forward``, and those
have moved under the same major version, silently:

- transformers 4.52-4.57: a decode step called without ``cache_position`` sits at position 0;
- 5.23 takes the cache as ``past_key_values``; 5.24 renamed it ``cache`` (the old name still
  works with a FutureWarning) and announces its removal for 5.40, inside ``<6``: a call with the
  old name would then run without the cache, on the new token alone.

Each gives other tokens than the reference and raises nothing. Hence two checks at load:

1. :func:`check_transformers_version`: only the versions we have run NORA on are accepted
   (:data:`TRANSFORMERS_ACCEPTED`; colcon does not enforce ``setup.py``'s pin, so the package
   checks it itself) and anything else is a one-line :class:`ModelLoadError`.
2. :func:`check_cached_decoding`: one cached decode step through the loop's own code must agree
   with a full forward pass (no cache, positions computed by the model) over the prompt plus that
   token. A version whose conventions moved, or a loop that gets them wrong, refuses to start.

:func:`decoder_api` reads the keyword names from the installed ``forward`` itself, so the loop
passes the cache under the name the installed version expects.

This module imports neither torch nor transformers at import time: ``setup.py`` can read
:data:`TRANSFORMERS_ACCEPTED` from it.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nora_ros.errors import ModelLoadError

if TYPE_CHECKING:
    import torch

    from nora_ros.camera.frame import Frame
    from nora_ros.policy.nora.decoding import FastConstraintProcessor

log = logging.getLogger(__name__)

TRANSFORMERS_ACCEPTED = ">=5.23,<5.26"
"""The transformers versions NORA runs on (a PEP 440 specifier; pre-releases are refused). The one
place that says so: ``setup.py``'s ``model`` extra should use the same string.

Checked: 5.23.0 (cache keyword ``past_key_values``), 5.24.0 and 5.25.0 (``cache``), each with
the NORA tests and :func:`check_cached_decoding` on the tiny checkpoint, and 5.23.0 vs 5.25.0
giving identical tokens. Not below 5.23 (the package's floor for other reasons); not 5.26 and
later until someone has run them: ``past_key_values`` is announced to go in 5.40."""

TRANSFORMERS_CHECKED = ("5.23.0", "5.24.0", "5.25.0")
"""The releases :data:`TRANSFORMERS_ACCEPTED` was derived from (named in the refusal)."""

PROBE_INSTRUCTION = "put the carrot on the plate"
"""The instruction of the load-time probe (any valid one would do)."""

PROBE_TOLERANCE = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 5e-2}
"""Largest relative difference (L2 norm of the difference / L2 norm of the full pass's last hidden
state) :func:`check_cached_decoding` accepts, per dtype. A cached step and a full pass add the same
numbers in another order: on the tiny checkpoint the difference is ~1e-7 in float32 and 0 in
bfloat16, while a step at position 0 differs by 3e-3 (float32, a random tiny model barely reacts to
positions; a trained one far more) and a step without the cache by 0.8. The bfloat16 / float16
bounds leave room for a 36-layer model's rounding (not measured on the 3B model here)."""


def transformers_version() -> str:
    """The version of the transformers that Python actually imports."""
    import transformers

    return str(transformers.__version__)


def check_transformers_version(version: str | None = None) -> str:
    """Return the installed transformers version, or raise a one-line :class:`ModelLoadError`
    naming it and :data:`TRANSFORMERS_ACCEPTED` when NORA's decoding has not been checked on it."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    version = version or transformers_version()
    try:
        accepted = SpecifierSet(TRANSFORMERS_ACCEPTED).contains(Version(version), prereleases=False)
    except InvalidVersion:
        accepted = False
    if not accepted:
        raise ModelLoadError(
            f"transformers {version} is installed, but NORA's decoding is checked only on transformers"
            f"{TRANSFORMERS_ACCEPTED} ({', '.join(TRANSFORMERS_CHECKED)}): pip install 'transformers"
            f"{TRANSFORMERS_ACCEPTED}' (other versions can silently decode other tokens)")
    return version


@dataclass(frozen=True)
class DecoderApi:
    """How the installed ``Qwen2_5_VLModel.forward`` takes the cache and positions.

    ``cache_keyword``: ``cache`` (5.24+) or ``past_key_values`` (5.23 and 4.x); the output field
    of the same name holds the cache afterwards. ``cache_position``: whether ``forward`` takes
    ``cache_position`` (4.x); where it does, the loop passes it on every call.
    """

    cache_keyword: str
    cache_position: bool


@functools.lru_cache(maxsize=8)
def decoder_api(backbone_type: type) -> DecoderApi:
    """The :class:`DecoderApi` of ``backbone_type.forward``, read from its signature (decorators
    that wrap it keep ``__wrapped__``, which :func:`inspect.signature` follows)."""
    params = inspect.signature(backbone_type.forward).parameters
    for keyword in ("cache", "past_key_values"):
        if keyword in params:
            return DecoderApi(keyword, "cache_position" in params)
    raise ModelLoadError(
        f"{backbone_type.__name__}.forward takes neither `cache` nor `past_key_values` on transformers "
        f"{transformers_version()}: NORA's decoding loop cannot pass its cache (accepted: transformers"
        f"{TRANSFORMERS_ACCEPTED})")


def probe_frame() -> Frame:
    """A mid-gray 480x640 frame: the camera's shape, so the probe takes the normal resize path."""
    import numpy as np

    from nora_ros.camera.frame import Frame

    return Frame(np.full((480, 640, 3), 128, dtype=np.uint8), 0.0)


@dataclass(frozen=True)
class ProbeReport:
    """What :func:`check_cached_decoding` measured (relative L2 differences, see :data:`PROBE_TOLERANCE`)."""

    transformers: str
    dtype: str
    token_id: int
    prefill_error: float
    step_error: float
    tolerance: float
    seconds: float


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float(), b.float()
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def check_cached_decoding(
    model: torch.nn.Module,
    inputs: dict[str, torch.Tensor],
    processor: FastConstraintProcessor,
    head: torch.Tensor,
) -> ProbeReport:
    """Compare one cached decode step of the policy's own loop with a full forward pass.

    The loop's code (:class:`~nora_ros.policy.nora.decoding.CachedDecoder`) prefills ``inputs``
    (one NORA prompt), picks the first token as the loop would (greedy among the candidates the
    FAST constraint allows first) and decodes it against the cache. Then the model runs once over
    prompt + token with no cache and its own positions. The prompt's last hidden state and the
    token's must agree within :data:`PROBE_TOLERANCE` for the model's dtype, else
    :class:`ModelLoadError` ("cached decoding disagrees with a full forward pass on transformers
    X: ..."): wrong positions or a lost cache would otherwise change the actions without an error.
    Costs about two prompt forward passes, once per policy.
    """
    import torch

    from nora_ros.policy.nora.decoding import CachedDecoder

    version = transformers_version()
    t0 = time.perf_counter()
    with torch.inference_mode():
        decoder = CachedDecoder(model)
        prefill_hidden = decoder.prefill(inputs)
        state = processor.constraint.start()
        token = processor.pick(state, (head @ prefill_hidden.to(head.dtype)).float())
        step_hidden = decoder.step(token)
        full = dict(inputs)
        ids = inputs["input_ids"]
        extra = torch.tensor([[token]], dtype=ids.dtype, device=ids.device)
        full["input_ids"] = torch.cat([ids, extra], dim=1)
        if "attention_mask" in inputs:
            full["attention_mask"] = torch.ones_like(full["input_ids"])
        if "mm_token_type_ids" in inputs:
            types = inputs["mm_token_type_ids"]
            full["mm_token_type_ids"] = torch.cat([types, torch.zeros_like(types[:, :1])], dim=1)
        hidden = model.model(**full, use_cache=False).last_hidden_state[0]
    dtype = str(hidden.dtype).removeprefix("torch.")
    tolerance = PROBE_TOLERANCE.get(dtype, PROBE_TOLERANCE["float16"])
    report = ProbeReport(
        transformers=version,
        dtype=dtype,
        token_id=int(token),
        prefill_error=_relative(prefill_hidden, hidden[-2]),
        step_error=_relative(step_hidden, hidden[-1]),
        tolerance=tolerance,
        seconds=time.perf_counter() - t0,
    )
    if not (report.prefill_error <= tolerance and report.step_error <= tolerance):  # also refuses NaN
        raise ModelLoadError(
            f"cached decoding disagrees with a full forward pass on transformers {version}: relative difference "
            f"{report.step_error:.3g} for decoded token {token} and {report.prefill_error:.3g} for the prompt's last "
            f"token (tolerance {tolerance:g} in {dtype}); NORA's loop would decode other tokens than generate, so "
            f"the policy does not start. Use transformers{TRANSFORMERS_ACCEPTED}")
    log.info("cached decoding agrees with a full forward pass on transformers %s (%s): relative difference "
             "%.2g (step), %.2g (prompt), tolerance %g; probe took %.3f s", version, dtype, report.step_error,
             report.prefill_error, tolerance, report.seconds)
    return report
