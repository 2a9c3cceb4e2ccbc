"""The per-source token bucket (workflow/prefetch/rate.py) on a mock clock: never more
requests in any minute than the rate, evenly paced, waiting requests served in order."""

import pytest
import trio

from triopacs.workflow.prefetch.rate import TokenBucket, take_token


def windows_hold_at_most(times: list[float], limit: int, width: float = 60.0) -> bool:
    return all(sum(1 for t in times if start <= t < start + width) <= limit for start in times)


async def test_no_minute_holds_more_requests_than_the_rate(autojump_clock):
    bucket = TokenBucket(6, now=trio.current_time())
    times: list[float] = []

    async def request() -> None:
        await take_token(bucket)
        times.append(trio.current_time())

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(request)
    assert len(times) == 20
    assert windows_hold_at_most(times, 6) and not windows_hold_at_most(times, 5)
    assert [round(t - start, 6) for t in times] == [10.0 * n for n in range(20)]


async def test_a_burst_allows_that_many_at_once_then_the_pace(autojump_clock):
    bucket = TokenBucket(60, burst=3, now=trio.current_time())
    start = trio.current_time()
    times = []
    for _ in range(5):
        await take_token(bucket)
        times.append(round(trio.current_time() - start, 6))
    assert times == [0.0, 0.0, 0.0, 1.0, 2.0]


async def test_an_idle_bucket_fills_only_up_to_its_burst(autojump_clock):
    bucket = TokenBucket(60, now=trio.current_time())
    await trio.sleep(3600)
    start = trio.current_time()
    for _ in range(3):
        await take_token(bucket)
    assert trio.current_time() - start == pytest.approx(2.0)


async def test_a_rate_of_zero_is_no_limit(autojump_clock):
    bucket = TokenBucket(0, now=trio.current_time())
    start = trio.current_time()
    for _ in range(1000):
        await take_token(bucket)
    assert trio.current_time() == start
