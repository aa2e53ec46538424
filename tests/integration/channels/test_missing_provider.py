"""A batch for a platform with no configured provider ends as dead letters, never dropped.

Before, the batch task raised NotConfigured, Celery logged it and acknowledged the message:
the devices were never alerted and nothing recorded why.
"""

from __future__ import annotations

import time

from sqlalchemy import select

from alerts import status as status_report
from channels import fanout, ledger, service
from channels.ledger import Ledger, Target
from channels.models import DeadLetter
from ops.platform.config import get_settings
from ops.platform.db import session_scope
from ops.platform.redis_client import get_redis
from tests.integration.channels import fanout_env as fx


def test_sms_batch_without_an_sms_provider_is_dead_lettered_and_reported(
    database, redis_client, monkeypatch, capsys
):
    redis_client.flushdb()
    fx.apply(monkeypatch, fx.channel_settings())  # no smpp or sms_http block
    case_id = fx.make_case()
    partner = fx.make_partner("CarrierApp")
    ids = list(fx.add_devices(partner, "sms", [f"+86138000000{i:02d}" for i in range(5)]).values())
    message_id = fx.new_message(case_id)
    Ledger(get_redis(), message_id, "sms").target([Target(i, partner) for i in ids])

    tally, retry = fanout.run_device_batch(
        "sms", message_id, ids, 0, time.time(), get_settings().channels, service.delivery_for
    )

    assert (tally.dead_lettered, retry) == (5, None)
    with session_scope() as s:
        letters = s.scalars(select(DeadLetter).where(DeadLetter.message_id == message_id)).all()
    assert [(d.channel, d.reason, len(d.targets)) for d in letters] == [
        ("sms", fanout.NOT_CONFIGURED, 5)
    ]
    counts = ledger.live_counts(redis_client, message_id)[("sms", partner)]
    assert counts["dead_lettered"] == counts["targeted"] == 5
    status_report.print_status()
    assert fanout.NOT_CONFIGURED in capsys.readouterr().out
