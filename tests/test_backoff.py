"""Backoff (full jitter, cap, reset) and the rate limiters, on fake clocks."""

from __future__ import annotations

import asyncio
import random
import statistics

import pytest

from xcol.net.backoff import Backoff, TokenBucket, WindowLimiter


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_bounds_always_hold() -> None:
    b = Backoff(0.5, 8.0, rng=random.Random(1))
    for n in range(200):
        ceiling = min(8.0, 0.5 * 2**n)
        d = b.next_delay()
        assert 0.0 <= d <= ceiling
    assert b.attempt == 200
    assert b.ceiling() == 8.0


def test_full_jitter_is_uniform_under_the_ceiling() -> None:
    # At attempt 3 the ceiling is min(10, 0.5 * 8) = 4: delays ~ U(0, 4), mean 2, sd 4/sqrt(12).
    rng = random.Random(12345)
    samples = []
    for _ in range(4000):
        b = Backoff(0.5, 10.0, rng=rng)
        b.attempt = 3
        samples.append(b.next_delay())
    assert min(samples) >= 0.0 and max(samples) <= 4.0
    assert statistics.fmean(samples) == pytest.approx(2.0, abs=0.1)
    assert statistics.pstdev(samples) == pytest.approx(4 / 12**0.5, abs=0.06)
    # Spread over the whole window, not bunched at the top: each quarter gets about 25 %.
    quarters = [sum(1 for s in samples if q <= s < q + 1) for q in range(4)]
    assert all(850 < c < 1150 for c in quarters), quarters


def test_cap_holds_for_huge_attempts() -> None:
    b = Backoff(1.0, 30.0, rng=random.Random(7))
    b.attempt = 10_000  # 2**10000 would overflow a float
    delays = [b.next_delay() for _ in range(500)]
    assert max(delays) <= 30.0
    assert max(delays) > 25.0  # the cap is reached, jitter still spans it


def test_reset_after_healthy_period() -> None:
    clock = FakeClock()
    b = Backoff(1.0, 60.0, reset_after_s=30.0, rng=random.Random(3), clock=clock)
    for _ in range(5):
        b.next_delay()
    assert b.attempt == 5
    b.connected()
    clock.t += 10.0  # short-lived connection: keeps escalating
    b.next_delay()
    assert b.attempt == 6
    b.connected()
    clock.t += 30.0  # healthy long enough: starts over
    d = b.next_delay()
    assert b.attempt == 1 and d <= 1.0


def test_backoff_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        Backoff(0.0, 1.0)
    with pytest.raises(ValueError):
        Backoff(2.0, 1.0)


def test_token_bucket_rate_and_burst() -> None:
    clock = FakeClock()
    tb = TokenBucket(rate_per_s=2.0, burst=3, clock=clock)
    assert [tb.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert tb.delay_for() == pytest.approx(0.5)
    clock.t += 0.5
    assert tb.try_acquire() and not tb.try_acquire()
    clock.t += 100.0  # refill is capped at the burst
    assert tb.tokens == pytest.approx(3.0)


def test_token_bucket_reservations_queue_up() -> None:
    clock = FakeClock()
    tb = TokenBucket(rate_per_s=1.0, burst=1, clock=clock)
    assert tb.reserve() == 0.0
    assert tb.reserve() == pytest.approx(1.0)
    assert tb.reserve() == pytest.approx(2.0)
    with pytest.raises(ValueError):
        tb.reserve(5)


def test_token_bucket_acquire_sleeps() -> None:
    async def main() -> float:
        tb = TokenBucket(rate_per_s=50.0, burst=1)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for _ in range(4):
            await tb.acquire()
        return loop.time() - t0

    elapsed = asyncio.run(main())
    assert 0.05 <= elapsed < 0.5  # 3 waits of 20 ms


def test_window_limiter_is_exact() -> None:
    clock = FakeClock()
    wl = WindowLimiter(3, 300.0, clock=clock)
    assert [wl.try_acquire() for _ in range(4)] == [True, True, True, False]
    clock.t += 299.0
    assert not wl.try_acquire()
    assert wl.delay_for() == pytest.approx(1.0)
    clock.t += 1.0
    assert wl.try_acquire()
