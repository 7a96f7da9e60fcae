"""pre_trade.max_orders_per_second: the token bucket, driven by an injected clock."""

from __future__ import annotations

from gateway.pipeline.ratelimit import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def takes(bucket: TokenBucket, n: int) -> list[bool]:
    return [bucket.try_take() for _ in range(n)]


def test_admits_its_rate_at_one_instant_and_refuses_beyond() -> None:
    clock = Clock()
    bucket = TokenBucket(2, clock=clock)
    assert takes(bucket, 3) == [True, True, False]


def test_one_token_comes_back_every_1_over_rate_seconds() -> None:
    clock = Clock()
    bucket = TokenBucket(4, clock=clock)
    assert takes(bucket, 5) == [True] * 4 + [False]
    clock.now += 0.125  # half a token
    assert takes(bucket, 1) == [False]
    clock.now += 0.125  # exactly one token: admitted
    assert takes(bucket, 2) == [True, False]


def test_admits_its_rate_per_second_over_a_long_run() -> None:
    clock = Clock()
    bucket = TokenBucket(10, clock=clock)
    admitted = sum(takes(bucket, 20))
    for _ in range(10 * 64):  # 10 s in steps of 1/64 s, 5 attempts per step
        clock.now += 1 / 64
        admitted += sum(takes(bucket, 5))
    # The first full bucket (10) plus 10 per second for 10 s, and not one more.
    assert admitted == 10 + 10 * 10


def test_an_idle_bucket_holds_at_most_one_second_of_orders() -> None:
    clock = Clock()
    bucket = TokenBucket(2, clock=clock)
    clock.now += 3600
    assert takes(bucket, 3) == [True, True, False]
