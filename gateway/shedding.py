"""How many requests one gateway process lets in at once: the front door's in-flight bound.

A fixed bound is too low for a quiet machine or too high for a busy one. 256 requests in flight
are answered in about 0.2 s where a process gets 1,200 holds a second decided, and in 0.7 s
where it gets 350 (Little's law): a flood's accepted holds waited seconds on a loaded machine
while the 429s went out at once. So the bound follows how fast this process answers. Every
tick it compares the mean time of the answers completed in that tick with what an answer may
take: `target`, or 1.5 times the fastest tick of the last few seconds when answers cost more
than that even without a queue (shedding does not make a slow partition faster, it only
starves it). Slower answers shrink the bound in proportion; while requests are being shed and
answers are within it, the bound grows back in proportion; never above `ceiling`
(FLASHSALE_MAX_IN_FLIGHT), never below `floor`.
"""

from __future__ import annotations

from collections import deque

#: How often the bound is reconsidered, in seconds.
TICK_SECONDS = 0.1
#: The fastest of this many ticks (with answers) is what an answer costs without a queue.
BASELINE_TICKS = 50
#: The least the bound shrinks to, unless the ceiling is lower.
FLOOR = 32
#: The most one tick shrinks or grows the bound, as factors.
MOST_SHRINK, MOST_GROWTH = 0.5, 1.5


class InFlightBound:
    """One process's bound, `limit`: fed by `answered` and `shed`, moved by `tick`."""

    def __init__(self, ceiling: int, target_seconds: float, floor: int = FLOOR) -> None:
        self.ceiling = ceiling
        #: what an answer may take; 0: the bound stays at the ceiling
        self.target = target_seconds
        self.floor = min(floor, ceiling)
        self.limit = ceiling
        #: whether a tick is scheduled (the server's to keep)
        self.armed = False
        self._value = float(ceiling)
        self._answers = 0
        self._seconds = 0.0
        self._shed = 0
        self._means: deque[float] = deque(maxlen=BASELINE_TICKS)

    def answered(self, seconds: float) -> None:
        """A request let in was answered after `seconds`."""
        self._answers += 1
        self._seconds += seconds

    def shed(self) -> None:
        """A request was refused because `limit` were in flight."""
        self._shed += 1

    def tick(self) -> bool:
        """Reconsider the bound after TICK_SECONDS; whether anything happened in that tick."""
        answers, seconds, shed = self._answers, self._seconds, self._shed
        self._answers, self._seconds, self._shed = 0, 0.0, 0
        if not answers:
            return bool(shed)
        if self.target <= 0:
            return True
        mean = seconds / answers
        self._means.append(mean)
        allowed = max(self.target, 1.5 * min(self._means))
        if mean > allowed:
            self._value *= max(MOST_SHRINK, allowed / mean)
        elif shed:
            self._value *= MOST_GROWTH if mean * MOST_GROWTH <= allowed else allowed / mean
        self._value = min(float(self.ceiling), max(float(self.floor), self._value))
        self.limit = int(self._value)
        return True
