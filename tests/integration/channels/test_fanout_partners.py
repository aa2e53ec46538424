"""Partner webhooks through real workers: pacing, isolation, the breaker, the DLQ and replay."""

from __future__ import annotations

import contextlib
import time

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from channels import pacing, service
from channels.cli import dlq_app
from channels.models import DeadLetter
from ops.peers import keys
from ops.peers import webhook as webhook_sink
from ops.peers._runtime import serve_asgi
from ops.platform.db import session_scope
from tests.integration.channels import fanout_env as fx

pytestmark = pytest.mark.slow


class Timed:
    """Wraps a receiver to record when each request arrived."""

    def __init__(self, receiver: webhook_sink.WebhookReceiver) -> None:
        self.receiver = receiver
        self.arrivals: list[float] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            self.arrivals.append(time.monotonic())
        await self.receiver(scope, receive, send)


@contextlib.contextmanager
def partners(**receivers: webhook_sink.WebhookReceiver):
    """Serve each receiver on its own port; yields {name: (Timed, url)}."""
    with contextlib.ExitStack() as stack:
        out = {}
        for name, receiver in receivers.items():
            timed = Timed(receiver)
            url = stack.enter_context(serve_asgi(timed, name=f"hook-{name}"))
            out[name] = (timed, f"{url}/hooks/{name}")
        yield out


def register(name: str, url: str, secret: str, **kw) -> int:
    partner = fx.make_partner(name)
    with session_scope() as s:
        return service.add_endpoint(s, partner, url, secret, **kw).id


def test_paced_partner_holds_its_rate_while_a_hanging_partner_delays_nobody_and_breaker_opens(
    database, tmp_path, redis_client, app_redis, monkeypatch
):
    redis_client.flushdb()  # the broker; app_redis is flushed by its fixture
    secret = keys.make_webhook_secret()
    doc = fx.channel_settings(
        breaker_failures=3, breaker_open_s=60.0, webhook={"transport": {"timeout_s": 3.0}}
    )
    channels_json = fx.apply(monkeypatch, doc)
    case_id = fx.make_case()
    hang = webhook_sink.WebhookReceiver(secret=secret, hang_s=4.0)
    paced = webhook_sink.WebhookReceiver(secret=secret)
    broken = webhook_sink.WebhookReceiver(secret=secret, status=500)
    n = 6
    with partners(hang=hang, paced=paced, broken=broken) as eps:
        register("Hang", eps["hang"][1], secret, rate_per_s=100, max_concurrency=1)
        paced_id = register("Paced", eps["paced"][1], secret, rate_per_s=4, max_concurrency=1)
        broken_id = register("Broken", eps["broken"][1], secret, rate_per_s=100)
        messages = [fx.new_message(case_id, wave=w) for w in range(1, n + 1)]
        env = fx.worker_env(database, tmp_path, channels_json)
        with fx.worker(env, tmp_path / "w.log", concurrency=2):
            start = time.monotonic()
            for m in messages:
                assert service.fan_out_partners(m) == 3
            fx.wait_until(lambda: len(paced.events) == n, timeout=30, what="paced deliveries")
            first = eps["paced"][0].arrivals[0] - start
            # Had the hanging partner held the workers, this would be >= its 3 s timeout.
            behind_hang = eps["paced"][0].arrivals[0] - eps["hang"][0].arrivals[0]
            span = eps["paced"][0].arrivals[-1] - eps["paced"][0].arrivals[0]
            hang_busy = len(hang.events) < n
            time.sleep(1.0)
            breaker = pacing.Breaker(app_redis, f"webhook:{broken_id}", 3, 60.0)
            broken_attempts = broken.attempts
            state = breaker.state()

    print(
        f"partners: paced targeted={n} delivered={len(paced.events)} "
        f"duplicated={paced.duplicates} lost={n - len(paced.events)} first={first:.2f}s "
        f"after_hanging_partner={behind_hang:.2f}s "
        f"span={span:.2f}s; broken attempts={broken_attempts} breaker={state}"
    )
    assert hang_busy, "the hanging partner was still being retried"
    assert behind_hang < 1.5, f"a hanging partner delayed another partner ({behind_hang:.2f}s)"
    # 6 events at 4/s with a burst of 1: at least 5 intervals of 0.25 s.
    assert span >= 1.1, f"partner rate not held: {n} events in {span:.2f}s"
    assert paced.duplicates == 0 and paced_id
    assert state is pacing.BreakerState.OPEN
    # Without the breaker: 6 events x several retries. With it: 3 failures, then nothing.
    assert broken_attempts <= 3 + 2, f"breaker let {broken_attempts} attempts through"


def test_partner_failing_past_the_horizon_is_dead_lettered_then_replayed(
    database, tmp_path, redis_client, app_redis, monkeypatch
):
    redis_client.flushdb()  # the broker; app_redis is flushed by its fixture
    secret = keys.make_webhook_secret()
    doc = fx.channel_settings(retry_horizon_s=3.0, retry_base_s=0.3, retry_max_delay_s=1.0)
    channels_json = fx.apply(monkeypatch, doc)
    case_id = fx.make_case()
    down = webhook_sink.WebhookReceiver(secret=secret, status=503)
    runner = CliRunner()
    with partners(down=down) as eps:
        register("Down", eps["down"][1], secret)
        message_id = fx.new_message(case_id)
        env = fx.worker_env(database, tmp_path, channels_json)
        with fx.worker(env, tmp_path / "w.log", concurrency=1):
            service.fan_out_partners(message_id)
            with session_scope() as s:
                fx.wait_until(
                    lambda: s.scalars(select(DeadLetter)).all(), timeout=20, what="dead letter"
                )
            attempts_before = down.attempts
            listed = runner.invoke(dlq_app, ["list"])
            assert listed.exit_code == 0, listed.output
            assert "webhook" in listed.output and "http_503" in listed.output
            with session_scope() as s:
                [letter] = s.scalars(select(DeadLetter)).all()

            down.status = None  # the partner is back
            replayed = runner.invoke(dlq_app, ["replay", str(letter.id)])
            assert replayed.exit_code == 0, replayed.output
            fx.wait_until(lambda: len(down.events) == 1, timeout=20, what="replayed delivery")
            assert runner.invoke(dlq_app, ["list"]).output.strip() == "no dead letters"

    with session_scope() as s:
        deliveries = service.case_deliveries(s, case_id)
    [row] = [c for c in deliveries.totals if c.channel == "webhook"]
    print(
        f"dlq: targeted=1 attempts_before_dlq={attempts_before} delivered={len(down.events)} "
        f"duplicated={down.duplicates} lost=0"
    )
    assert attempts_before >= 2, "503 was retried before dead-lettering"
    assert (row.sent, row.dead_lettered, row.retrying) == (1, 0, 0)
    assert down.duplicates == 0
