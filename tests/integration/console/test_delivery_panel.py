"""The case page's delivery panel tells "in progress" from "stuck" and shows dead letters.

Before, the panel showed progress bars only: an officer or operator could not tell a message
whose batches the broker had lost from one still sending, nor why targets were dead-lettered.
"""

from __future__ import annotations

import time

from alerts.console.i18n import DEFAULT, translate
from channels import reconcile
from channels.ledger import Ledger, Target
from channels.models import DeadLetter
from ops.platform.db import session_scope
from tests.integration.channels import fanout_env as fx
from tests.integration.console.conftest import csrf_of, login_with_totp
from tests.integration.console.test_console_security import post_case


def t(key: str) -> str:
    return translate(DEFAULT, key)


def approved_case(console) -> str:
    login_with_totp(console, "sup1")
    case_id = post_case(console).headers["location"].rsplit("/", 1)[-1]
    console.cookies.clear()
    login_with_totp(console, "sup2")
    review = console.get(f"/console/cases/{case_id}/review")
    console.post(f"/console/cases/{case_id}/approve", data={"csrf_token": csrf_of(review.text)})
    return case_id


def test_panel_shows_in_progress_then_stuck_then_dead_letters_with_their_reason(
    console, redis_client
):
    case_id = approved_case(console)
    message_id = fx.new_message(case_id, wave=5)
    Ledger(redis_client, message_id, "apns").target([Target(i, 0) for i in range(1, 41)])
    reconcile.expect(redis_client, message_id, "apns", 60.0)

    panel = console.get(f"/console/cases/{case_id}/delivery").text
    assert t("delivery.in_progress") in panel and t("delivery.stuck") not in panel

    # Its deadline passes with every target still open: the broker lost its batches.
    redis_client.zadd(reconcile.OPEN, {f"{message_id}|apns": time.time() - 5})
    panel = console.get(f"/console/cases/{case_id}/delivery").text
    assert f"{t('delivery.stuck')}: apns" in panel

    with session_scope() as s:
        s.add(
            DeadLetter(
                message_id=message_id,
                case_id=case_id,
                channel="sms",
                targets=[[7, 0], [8, 0], [9, 0]],
                reason="provider_not_configured",
                attempts=1,
            )
        )
    panel = console.get(f"/console/cases/{case_id}/delivery").text
    table = panel.split('id="dead-letters"')[1].split("</table>")[0]
    assert "<td>sms</td><td><code>provider_not_configured</code></td>" in table
    assert '<td class="num">3</td>' in table


def test_delivered_means_the_same_in_the_panel_the_api_and_the_snapshot(console, redis_client):
    """`delivered` (a carrier receipt for every part) is its own column, never folded into
    `sent`, and the database snapshot keeps it once Redis lets the live counters go."""
    from channels import ledger
    from channels import service as channels
    from ops.platform.redis_client import get_redis

    case_id = approved_case(console)
    message_id = fx.new_message(case_id, wave=6)
    led = Ledger(redis_client, message_id, "sms")
    led.target([Target(i, 4) for i in (1, 2, 3)])
    led.move([Target(i, 4) for i in (1, 2, 3)], ledger.State.SENT, "sent")
    assert led.deliver([Target(1, 4), Target(2, 4)]) == 2
    assert led.deliver([Target(2, 4)]) == 0, "a second receipt counts nothing"

    panel = console.get(f"/console/cases/{case_id}/delivery").text
    table = panel.split('id="delivery-totals"')[1].split("</table>")[0]
    assert t("delivery.delivered") in table
    # Partner 4 has no row in this test's database: the key still names the channel's row.
    assert 'data-live="row:sms:4:sent">3</td>' in table
    assert 'data-live="row:sms:4:failed">0</td>' in table
    assert 'data-live="row:sms:4:retrying">0</td>' in table
    assert 'data-live="row:sms:4:delivered">2</td>' in table
    with session_scope() as s:
        ledger.persist(s, get_redis(), message_id, case_id)
    redis_client.delete(ledger.counts_key(message_id))
    with session_scope() as s:
        [totals] = channels.case_deliveries(s, case_id).totals
    assert (totals.channel, totals.sent, totals.delivered) == ("sms", 3, 2)
