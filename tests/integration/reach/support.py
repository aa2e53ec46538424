"""Seeding a case's ledger, timeline and claim records the way fan-out and the wave engine do."""

from __future__ import annotations

import h3
import numpy as np

from channels import ledger
from channels.ledger import Ledger, Target
from channels.models import Message
from geo.waves import claims
from geo.waves import service as waves
from geo.waves.models import Wave
from ops.platform.db import session_scope
from tests.integration.channels import fanout_env as fx
from tests.integration.console.conftest import csrf_of, login_with_totp
from tests.integration.console.test_console_security import post_case

# Two neighbouring resolution-5 cells in Guangzhou.
CELL_A = h3.latlng_to_cell(23.13, 113.26, 5)
CELL_B = next(c for c in h3.grid_disk(CELL_A, 1) if c != CELL_A)


def approved_case(console) -> str:
    """A case sup1 wrote and sup2 approved; returns its id."""
    login_with_totp(console, "sup1")
    case_id = post_case(console).headers["location"].rsplit("/", 1)[-1]
    console.cookies.clear()
    login_with_totp(console, "sup2")
    review = console.get(f"/console/cases/{case_id}/review")
    console.post(f"/console/cases/{case_id}/approve", data={"csrf_token": csrf_of(review.text)})
    console.cookies.clear()
    return case_id


def wave_with_message(case_id: str, number: int) -> tuple[int, str]:
    """A started wave and its alert message (as the wave engine leaves them: `number` counts
    from 1 as people do, the stored index from 0)."""
    message_id = fx.new_message(case_id, wave=number - 1)
    with session_scope() as s:
        created = s.get(Message, message_id).created_at
        wave = Wave(
            case_id=case_id,
            epoch=90 + number,
            index=number - 1,
            starts_at=created,
            started_at=created,
            radius_km=10.0,
            center_lat=23.13,
            center_lon=113.26,
            status="started",
            message_id=message_id,
        )
        s.add(wave)
        s.flush()
        return wave.id, message_id


def started_at(message_id: str) -> int:
    with session_scope() as s:
        return int(s.get(Message, message_id).created_at.timestamp())


def send_at(client, message_id: str, channel: str, partner: int, ids, second: int) -> None:
    """Mark targets sent as a channel task does, stamped at a given unix second."""
    targets = [Target(i, partner) for i in ids]
    key = ledger.timeline_key(message_id, channel, "sent")
    before = {int(k): int(v) for k, v in client.hgetall(key).items()}
    assert Ledger(client, message_id, channel).move(targets, ledger.State.SENT, "sent") == len(ids)
    # The ledger stamped this second; move the count to the second the test means.
    for k, v in client.hgetall(key).items():
        if int(v) != before.get(int(k), 0):
            client.hincrby(key, k, before.get(int(k), 0) - int(v))
    client.hincrby(key, second, len(ids))


def claim(client, case_id: str, wave_id: int, cell: str, ids) -> None:
    """Claim devices in a shard cell for a wave, as the shard task does."""
    record = waves.claim_record(case_id, wave_id, h3.str_to_int(cell))
    claims.claim_once(client, waves.ledger(case_id), record, np.asarray(ids, dtype=np.int64))
