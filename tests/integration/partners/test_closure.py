"""Closure on every channel: devices that got the alert get the closing push unless the
operator turned that off; partners get it either way."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import h3
import numpy as np
import pytest
from sqlalchemy import select

from alerts.dispatch import flows
from alerts.dispatch import tasks as wave_tasks
from channels import ledger
from channels import service as channels
from channels.fcm import topic_for_cell
from geo import cells, targeting
from geo.devices import service as devices
from geo.devices.service import Platform
from geo.waves import service as waves
from ops.peers import fcm as fcm_sink
from ops.peers import keys, sms_gateway
from ops.platform.config import get_settings
from ops.platform.db import session_scope
from ops.platform.outbox.models import OutboxMessage
from ops.platform.redis_client import get_redis
from tests.factories import make_partner
from tests.integration.channels import fanout_env as fx
from tests.integration.partners.support import CENTER, approved_case, close


def alert_one_device(case_id: str) -> None:
    make_partner("DeviceApp")
    with session_scope() as s:
        device = devices.upsert(
            s,
            1,
            "d1",
            platform=Platform.APNS,
            address="tok-d1-0123456789",
            locale="en",
            opted_in=True,
        )
        device_id = device.id
    devices.location_index().ingest(
        np.array([device_id]),
        cells.snap_many(np.array([CENTER[0]]), np.array([CENTER[1]])),
        datetime.now(UTC),
    )
    with session_scope() as s:
        wave = waves.waves_of(s, case_id)[0]
    with session_scope() as s:
        start = flows.begin_wave(s, wave.id)
    assert start is not None
    for shard in start.shards:
        with session_scope() as s:
            flows.target_shard(s, wave.id, shard.cell, shard.interior)
    assert waves.alerted(case_id).tolist() == [device_id]


def notify(case_id: str, message_id: str) -> int:
    """Run the notify task's body for the closing message (as the worker would)."""
    with session_scope() as s:
        row = s.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.task == flows.NOTIFY_ALERTED)
            .order_by(OutboxMessage.id.desc())
        ).first()
        outbox_id = row.id
    return wave_tasks.notify_alerted(outbox_id, case_id, message_id)


@pytest.mark.parametrize(("push", "devices_notified"), [("true", 1), ("false", 0)])
def test_closing_push_to_alerted_devices_follows_the_operator_setting(
    world, monkeypatch, push, devices_notified
):
    monkeypatch.setenv("REUNITE_CLOSING_PUSH_TO_DEVICES", push)
    get_settings.cache_clear()
    case_id = approved_case(world)
    alert_one_device(case_id)
    message_id = close(world, case_id)
    assert notify(case_id, message_id) == devices_notified


@pytest.mark.slow
def test_closure_reaches_the_cell_topics_and_the_area_broadcast_that_carried_the_alert(
    world, monkeypatch, database, tmp_path
):
    """Through a real worker, the FCM peer and the carrier's gateway: whoever heard the alert
    on a cell topic or by area broadcast hears the closure the same way."""
    account = keys.make_service_account(token_uri="http://placeholder/token")
    fcm = fcm_sink.FcmSink(
        project_id=account.info["project_id"],
        client_email=account.info["client_email"],
        public_key=account.public_key,
    )
    gateway = sms_gateway.SmsGatewaySink(api_token="gw-token-123")
    with contextlib.ExitStack() as stack:
        fcm_url = stack.enter_context(fcm_sink.running(fcm)).url
        gateway_url = stack.enter_context(sms_gateway.running(gateway)).url
        doc = fx.channel_settings(
            fcm={
                "project_id": account.info["project_id"],
                "client_email": account.info["client_email"],
                "private_key": account.info["private_key"],
                "token_uri": f"{fcm_url}/token",
                "base_url": fcm_url,
            },
            sms_http={"base_url": gateway_url, "api_token": "gw-token-123"},
            sms_provider="http",
            sms_area_broadcast=True,
        )
        channels_json = fx.apply(monkeypatch, doc)
        case_id = approved_case(world)
        with session_scope() as s:
            wave = waves.waves_of(s, case_id)[0]
            start = flows.begin_wave(s, wave.id)
            languages = start.languages
        cells_inside = [s.cell for s in targeting.plan(waves.area_of(wave)) if s.interior]
        topics = sorted({h3.int_to_str(c) for c in cells_inside})
        env = fx.worker_env(database, tmp_path, channels_json)
        with fx.worker(env, tmp_path / "w.log"):
            channels.fan_out_topics(start.message_id, topics)  # as start_wave does above it
            assert channels.broadcast_area(start.message_id, languages)
            fx.wait_until(lambda: len(fcm.accepted) == len(topics), what="alert on every topic")
            fx.wait_until(lambda: len(gateway.broadcasts) == len(languages), what="broadcasts")

            closing = close(world, case_id)
            notify(case_id, closing)
            fx.wait_until(lambda: len(fcm.accepted) == 2 * len(topics), what="closure topics")
            fx.wait_until(
                lambda: len(gateway.broadcasts) == 2 * len(languages), what="closure broadcast"
            )

            def sent(channel: str) -> int:
                return ledger.live_counts(get_redis(), closing)[(channel, 0)]["sent"]

            # The peers saw every send; the worker records the last chunk just after.
            fx.wait_until(lambda: sent("fcm_topic") == len(topics), what="topics in the ledger")
            fx.wait_until(lambda: sent("sms_broadcast") == len(set(languages)), what="ledger")

    def kinds(target: str) -> list[str]:
        return [m.message["data"]["kind"] for m in fcm.accepted if m.target == target]

    assert topics and all(
        kinds(f"topic:{topic_for_cell(c)}") == ["alert", "resolved"] for c in topics
    )
    alert_area = [b["area"]["polygons"] for b in gateway.broadcasts[: len(languages)]]
    closing_area = [b["area"]["polygons"] for b in gateway.broadcasts[len(languages) :]]
    assert closing_area == alert_area, "the closure is broadcast where the alert was"


def test_an_audited_agency_setting_opens_its_drills_to_the_public_still_marked(world):
    from typer.testing import CliRunner

    from alerts import cli
    from alerts.cases import content
    from channels.messages import AlertStatus
    from ops.platform.audit.models import AuditEntry

    case_id = approved_case(world, drill=True)
    with session_scope() as s:
        assert content.restricted_audience(s, case_id), "a drill reaches test devices only"
    result = CliRunner().invoke(cli.app, ["agencies", "live-exercises", "Guangzhou PSB", "--on"])
    assert result.exit_code == 0, result.output
    with session_scope() as s:
        assert not content.restricted_audience(s, case_id)
        assert content.case_status(s, case_id) is AlertStatus.EXERCISE, "still marked"
        last = s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
        assert last.action == "agency.live_exercises_set"
