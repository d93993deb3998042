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
2. :func:`nora_ros.policy.nora.probe.check_cached_decoding`: one cached decode step through the
   loop's own code must agree with a full forward pass (no cache, positions computed by the model)
   over the prompt plus that token. A version whose conventions moved, or a loop that gets them
   wrong, refuses to start.

:func:`decoder_api` reads the keyword names from the installed ``forward`` itself, so the loop
passes the cache under the name the installed version expects.

This module imports neither torch nor transformers at import time: ``setup.py`` can read
:data:`TRANSFORMERS_ACCEPTED` from it.
"""

from __future__ import annotations

import functools
import inspect
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nora_ros.errors import ModelLoadError

if TYPE_CHECKING:

    pass

log = logging.getLogger(__name__)

TRANSFORMERS_ACCEPTED = ">=5.23,<5.26"
"""The transformers versions NORA runs on (a PEP 440 specifier; pre-releases are refused). The one
place that says so: ``setup.py``'s ``model`` extra should use the same string.

Checked: 5.23.0 (cache keyword ``past_key_values``), 5.24.0 and 5.25.0 (``cache``), each with
the NORA tests and :func:`~nora_ros.policy.nora.probe.check_cached_decoding` on the tiny checkpoint, and 5.23.0 vs 5.25.0
giving identical tokens. Not below 5.23 (the package's floor for other reasons); not 5.26 and
later until someone has run them: ``past_key_values`` is announced to go in 5.40."""

TRANSFORMERS_CHECKED = ("5.23.0", "5.24.0", "5.25.0")
"""The releases :data:`TRANSFORMERS_ACCEPTED` was derived from (named in the refusal)."""

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
