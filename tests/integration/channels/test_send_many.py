"""The fan-out's send loop on a real Redis ledger: the concurrency holds, a channel that raises
is retried rather than dropped, every success is recorded, and a closed case withdraws the rest
within one gate chunk."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from channels.base import Outcome
from channels.fanout import GATE_EVERY, _send_many, _Tokens
from channels.ledger import Ledger, Target, live_counts

N = 3 * GATE_EVERY + 7  # more than one flush and one gate chunk, not a multiple of either


@pytest.fixture
def led(redis_client):
    ledger = Ledger(redis_client, f"case-{uuid.uuid4().hex}:alert:1:1", "apns")
    ledger.target([Target(i, 5) for i in range(N)])
    return ledger


def run(coro):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def test_at_most_the_concurrency_is_in_flight_and_every_send_is_recorded(led, redis_client):
    in_flight = peak = 0

    async def send(i: int) -> Outcome:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001 * (i % 3))
        in_flight -= 1
        if i == 7:
            raise RuntimeError("a channel bug")
        return Outcome.ok()

    items = [(Target(i, 5), i) for i in range(N)]
    results, withdrawn = run(_send_many(items, send, 10, _Tokens(None), led))

    assert peak == 10
    assert withdrawn == 0
    by_id = {t.id: o for t, o in results}
    assert len(by_id) == N
    assert by_id[7].reason == "exception_RuntimeError" and not by_id[7].is_ok
    counts = live_counts(redis_client, led.message_id)[("apns", 5)]
    assert counts["sent"] == N - 1  # the raising one is left for the retry, not counted sent


def test_a_closed_gate_withdraws_the_rest_within_one_chunk(led, redis_client):
    reads = 0

    def gate() -> bool:  # open for the first chunk, closed from the second read on
        nonlocal reads
        reads += 1
        return reads > 1

    async def send(_i: int) -> Outcome:
        return Outcome.ok()

    items = [(Target(i, 5), i) for i in range(N)]
    results, withdrawn = run(_send_many(items, send, 50, _Tokens(None, gate), led))

    assert len(results) == GATE_EVERY
    assert withdrawn == N - GATE_EVERY
    counts = live_counts(redis_client, led.message_id)[("apns", 5)]
    assert (counts["sent"], counts["withdrawn"]) == (GATE_EVERY, N - GATE_EVERY)
