"""The load-time probe of NORA's own decoding loop: one cached decode step against a full pass.

Why: :mod:`nora_ros.policy.nora.compat` explains how transformers' call conventions moved under
one major version without an error; the probe is what catches a version (or a loop) that gets
them wrong before the policy acts: :func:`check_cached_decoding` refuses to start.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nora_ros.errors import ModelLoadError
from nora_ros.policy.nora.compat import TRANSFORMERS_ACCEPTED, transformers_version
from nora_ros.policy.nora.decoding import CachedDecoder

if TYPE_CHECKING:
    import torch

    from nora_ros.camera.frame import Frame
    from nora_ros.policy.nora.decoding import FastConstraintProcessor

log = logging.getLogger(__name__)

PROBE_INSTRUCTION = "put the carrot on the plate"
"""The instruction of the load-time probe (any valid one would do)."""

PROBE_TOLERANCE = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 5e-2}
"""Largest relative difference (L2 norm of the difference / L2 norm of the full pass's last hidden
state) :func:`check_cached_decoding` accepts, per dtype. A cached step and a full pass add the same
numbers in another order: on the tiny checkpoint the difference is ~1e-7 in float32 and 0 in
bfloat16, while a step at position 0 differs by 3e-3 (float32, a random tiny model barely reacts to
positions; a trained one far more) and a step without the cache by 0.8. The bfloat16 / float16
bounds leave room for a 36-layer model's rounding (not measured on the 3B model here)."""


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
