"""Who may change what: bind address, token, read-only view, rate limits.

- Loopback (127.0.0.1, ::1, the default): only this machine reaches the page; an SSH tunnel
  brings it to another. Changing requests still need ``Content-Type: application/json`` and,
  if the browser sends one, an ``Origin`` equal to the page's own: a form on another site can
  send neither, so it cannot press Start or Success through the operator's browser.
- Any other bind address needs a token (given, or generated at start and printed): every
  changing request carries it in the ``X-Nora-Token`` header. A header, not only a cookie,
  because browsers attach cookies to cross-site requests but never custom headers. Reads take
  the header or the ``nora_token`` cookie (an ``<img>`` stream cannot send headers) unless
  the operator made the read-only view public.
- Rate limits (a token bucket per client address) guard every route except the e-stop, which
  is checked first and never queued behind them.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass, field

from nora_ros.errors import ConfigurationError

TOKEN_HEADER = "X-Nora-Token"
TOKEN_COOKIE = "nora_token"
MIN_TOKEN_CHARS = 16


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything, treat as exposed


@dataclass(frozen=True)
class AccessPolicy:
    """The console's access rules for one bind address (see the module docstring).

    ``token``: required when ``host`` is not loopback (``None`` there: one is generated).
    ``public_view``: reads without a token (only when the operator says so).
    """

    host: str = "127.0.0.1"
    token: str | None = None
    public_view: bool = False
    rate_per_s: float = 20.0
    burst: int = 60

    def __post_init__(self) -> None:
        if self.token is not None and len(self.token) < MIN_TOKEN_CHARS:
            raise ConfigurationError(f"console token must be at least {MIN_TOKEN_CHARS} characters")
        if self.token is None and not is_loopback(self.host):
            object.__setattr__(self, "token", secrets.token_urlsafe(24))

    @property
    def needs_token(self) -> bool:
        return not is_loopback(self.host)

    def token_ok(self, given: str | None) -> bool:
        """Constant-time comparison with the console's token (``True`` when none is needed)."""
        if not self.needs_token:
            return True
        return given is not None and self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())


@dataclass
class RateLimiter:
    """A token bucket per client key: ``rate`` requests per second, bursts up to ``burst``."""

    rate: float
    burst: int
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > 10_000:  # many clients: forget the oldest, keep memory bounded
            self._buckets.pop(next(iter(self._buckets)))
        return True
