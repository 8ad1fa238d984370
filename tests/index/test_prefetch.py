"""Prefetch: order kept, memory bounded by bytes, producer errors raised, early exit clean."""

from __future__ import annotations

import threading

import pytest

from mmrag.index.prefetch import Prefetch


def test_items_arrive_in_order_and_the_queue_stays_within_budget() -> None:
    items = [b"x" * (10 + i % 7 * 30) for i in range(500)]
    prefetch = Prefetch(items, len, max_bytes=300)
    got = []
    with prefetch as stream:
        for item in stream:
            got.append(item)
    assert got == items
    # the budget, plus the one item let through when the queue was just under it
    assert 0 < prefetch.peak_bytes <= 300 + max(len(i) for i in items)


def test_an_item_larger_than_the_budget_still_passes() -> None:
    with Prefetch([b"a" * 1000, b"b"], len, max_bytes=10) as stream:
        assert list(stream) == [b"a" * 1000, b"b"]


def test_a_producer_error_is_raised_in_the_consumer_after_the_good_items() -> None:
    def produce():
        yield 1
        yield 2
        raise ValueError("bad file")

    got = []
    with pytest.raises(ValueError, match="bad file"), Prefetch(produce(), lambda _: 1, 10) as s:
        for item in s:
            got.append(item)
    assert got == [1, 2]


def test_leaving_early_stops_the_producer_and_runs_its_cleanup() -> None:
    closed = threading.Event()

    def produce():
        try:
            yield from range(10_000)
        finally:
            closed.set()

    with Prefetch(produce(), lambda _: 1, max_bytes=4) as stream:
        assert next(stream) == 0
    assert closed.is_set()  # the thread was joined on exit, so its finally has run


def test_budget_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Prefetch([], len, max_bytes=0)
