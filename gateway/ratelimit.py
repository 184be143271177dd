"""Token buckets per client, in the gateway process: a cheap first line against a flood."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable


class RateLimiter:
    """`rate` requests per second per key, bursts up to `burst`; 0 turns it off.

    Memory is bounded: past `max_keys` buckets, the ones that have refilled completely (they
    hold no information) are forgotten.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key → (tokens, at)

    def retry_after(self, key: Hashable) -> float:
        """0 when the request may go (and takes a token), else seconds until one is back."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        if len(self._buckets) >= self.max_keys and key not in self._buckets:
            self._forget_full(now)
        self._buckets[key] = (tokens - 1, now)
        return 0.0

    def _forget_full(self, now: float) -> None:
        full = [
            k for k, (t, at) in self._buckets.items() if t + (now - at) * self.rate >= self.burst
        ]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) >= self.max_keys:  # all busy: start afresh rather than grow
            self._buckets.clear()
