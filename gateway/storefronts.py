"""Storefronts are clients: who is asking (by API key), and how fast they may ask."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Hashable

from gateway.problems import Problem
from gateway.ratelimit import RateLimiter
from shared.settings import Settings

#: The client id of every request when the deployment has no storefront keys (development).
ANONYMOUS = ""


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class Storefronts:
    """The configured API keys (as digests: a lookup leaks no key by its timing) and limits."""

    def __init__(self, settings: Settings) -> None:
        self._names = {_digest(k): n for k, n in settings.storefront_key_map().items()}
        self.required = bool(self._names)
        self.per_storefront = RateLimiter(
            settings.storefront_rate_per_second, settings.storefront_rate_burst
        )
        self.per_customer = RateLimiter(
            settings.customer_rate_per_second, settings.customer_rate_burst
        )

    def identify(self, token: str | None) -> str | None:
        """The storefront a bearer token belongs to; ANONYMOUS when none is required."""
        if not self.required:
            return ANONYMOUS
        if not token:
            return None
        return self._names.get(_digest(token))


def throttle(limiter: RateLimiter, key: Hashable, who: str) -> None:
    """429 with Retry-After when `key` has used up its rate."""
    wait = limiter.retry_after(key)
    if wait > 0:
        raise Problem(
            429,
            "rate_limited",
            f"too many requests from this {who}; retry after the Retry-After delay",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
