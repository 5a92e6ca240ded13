"""Failed authentication, rate-limited per client address, so that a token cannot be guessed
at the speed of the server: each address that failed lately has a token bucket of
`per_minute` failures, refilled evenly over a minute. A failure that finds its bucket empty,
and every request from that address until a failure's worth has refilled, is refused with
429 and Retry-After (api.auth raises Throttled), whatever token it carries.

A request that authenticates pays one dict lookup here (is its address waiting?); only
failures take the lock and touch a bucket. At most `max_addresses` addresses are tracked: the
one that failed least recently is forgotten first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_ADDRESSES = 10_000


class FailureThrottle:
    """The buckets of the addresses whose authentication failed lately; one per app."""

    def __init__(
        self,
        per_minute: int,
        *,
        max_addresses: int = MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity, self.rate = float(per_minute), per_minute / 60.0
        self.max_addresses, self._clock = max_addresses, clock
        # address -> (failures left, when counted), least recent failure first
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        # address -> when it may try again; only addresses with a bucket
        self._waiting: dict[str, float] = {}
        self._lock = threading.Lock()  # failures are counted from the event loop and threads

    def wait(self, address: str) -> float:
        """Seconds before `address` may try again, 0 if it may now."""
        until = self._waiting.get(address)
        if until is None:
            return 0.0
        left = until - self._clock()
        if left > 0:
            return left
        self._waiting.pop(address, None)
        return 0.0

    def failed(self, address: str) -> float:
        """Count a failed authentication of `address`: 0 while it is within its budget (the
        failure is answered 401), else the seconds it must now wait (429)."""
        with self._lock:
            now = self._clock()
            left, at = self._buckets.pop(address, (self.capacity, now))
            left = min(self.capacity, left + (now - at) * self.rate)
            wait = 0.0
            if left >= 1:
                left -= 1
            else:  # over budget until a whole failure's worth has refilled
                wait = (1 - left) / self.rate
                self._waiting[address] = now + wait
            self._buckets[address] = (left, now)  # now the most recent
            if len(self._buckets) > self.max_addresses:
                forgotten, _ = self._buckets.popitem(last=False)
                self._waiting.pop(forgotten, None)
            return wait

    def tracked(self) -> int:
        """How many addresses are tracked (at most `max_addresses`)."""
        return len(self._buckets)
