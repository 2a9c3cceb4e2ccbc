"""A per-source rate limit: a token bucket over Trio's clock.

`rate_per_minute` tokens come back each minute, at an even pace, into a bucket of `burst`
tokens (1 by default: requests are spaced 60/rate seconds apart, so no window of a
minute holds more than `rate_per_minute` of them). A request takes a token; when none is
left it reserves the next one to come and sleeps until then, so waiting requests go in
the order they asked. A rate of 0 is no limit.
"""

from __future__ import annotations

import trio


class TokenBucket:
    def __init__(self, rate_per_minute: float, *, burst: int = 1, now: float = 0.0) -> None:
        self.interval = 60.0 / rate_per_minute if rate_per_minute > 0 else 0.0
        self.burst = max(1, burst)
        # The moment the bucket would be full again; tokens = burst - (this - now) / interval.
        self._full_at = now

    def reserve(self, now: float) -> float:
        """Take a token: the moment the caller may go (now, or when its token comes back)."""
        if not self.interval:
            return now
        # A full bucket holds no more than `burst` tokens, whatever time went by.
        self._full_at = max(self._full_at, now)
        go_at = max(now, self._full_at - (self.burst - 1) * self.interval)
        self._full_at += self.interval
        return go_at


async def take_token(bucket: TokenBucket) -> None:
    """Wait for a token of `bucket` (a cancelled wait gives its reservation up to no one:
    the pace stays under the limit, never over)."""
    await trio.sleep_until(bucket.reserve(trio.current_time()))
