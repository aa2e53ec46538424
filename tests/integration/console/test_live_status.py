"""Every case page updates itself from one status JSON, and the numbers mean one thing each.

Before, the details card of an active case ("Current wave —", "Devices reached 0") never
refreshed, the "Submitted" page stayed Submitted after approval, and the dashboard's "Devices
reached" counted targeted devices (115,499) when 1,147 pushes had been sent. Partners showed
as ids and messages as "Message alert:0".
"""

from __future__ import annotations

import re

from alerts.console.i18n import translate
from alerts.users.roles import Role
from channels import ledger
from channels.ledger import Ledger, Target
from ops.platform.db import session_scope
from tests.factories import CHILD_NAME, make_agency, make_partner, make_user
from tests.integration.channels import fanout_env as fx
from tests.integration.console.conftest import csrf_of, login, login_with_totp
from tests.integration.console.test_console_security import post_case


def zh(key: str, **kw) -> str:
    return translate("zh-CN", key, **kw)


def partner_id(name: str) -> int:
    from sqlalchemy import select

    from alerts.partners.models import Partner

    with session_scope() as s:
        return s.scalar(select(Partner.id).where(Partner.name == name))


def approve(console, case_id: str, supervisor: str = "sup2") -> None:
    console.cookies.clear()
    login_with_totp(console, supervisor)
    review = console.get(f"/console/cases/{case_id}/review")
    res = console.post(
        f"/console/cases/{case_id}/approve",
        data={"csrf_token": csrf_of(review.text)},
        follow_redirects=False,
    )
    assert res.status_code == 303, res.text


def seed(redis_client, message_id: str, channel: str, partner: int, **stats: int) -> None:
    """Set a message's ledger counters as the fan-out leaves them (absolute values)."""
    redis_client.hset(
        ledger.counts_key(message_id),
        mapping={f"{channel}:{partner}:{stat}": n for stat, n in stats.items()},
    )


def test_status_json_follows_the_ledger_with_partner_names_and_message_labels(
    console, redis_client
):
    make_partner("MapsApp")
    maps = partner_id("MapsApp")
    login_with_totp(console, "sup1")
    case_id = post_case(console).headers["location"].rsplit("/", 1)[-1]
    approve(console, case_id)
    message_id = fx.new_message(case_id, wave=1)  # the second wave, 100 km
    led = Ledger(redis_client, message_id, "apns")
    led.target([Target(i, maps) for i in range(1, 1501)])
    led.move([Target(i, maps) for i in range(1, 1201)], ledger.State.SENT, "sent")
    led.move([Target(i, maps) for i in range(1201, 1204)], ledger.State.ENDED, "dead")

    res = console.get(f"/console/cases/{case_id}/status")
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("application/json")
    assert res.headers["cache-control"] == "no-store"
    status = res.json()
    assert status["state"] == "active" and status["approved_by"] == "sup2"
    assert status["counts"] == {
        "targeted": 1500,
        "sent": 1200,
        "failed": 3,  # a dead token is refused for good: failed, as in the API's dead
        "retrying": 0,
        "delivered": 0,
        "withdrawn": 0,
    }
    [row] = status["channels"]
    assert (row["channel"], row["partner"], row["partner_id"]) == ("apns", "MapsApp", maps)
    [message] = status["messages"]
    assert message["label"] == "预警 · 第 2 波 · 100 公里"
    assert (message["targeted"], message["done"]) == (1500, 1203)
    assert status["text"]["targeted"] == "1,500" and status["text"]["sent"] == "1,200"
    assert status["text"][f"row:apns:{maps}:sent"] == "1,200"
    assert status["text"][f"msg:{message_id}"] == "1,203 / 1,500"
    assert CHILD_NAME not in res.text and "Lin Xiaoyu" not in res.text, "no personal data"

    # The ledger moves: the next poll says so, and the layout (rows, messages) is unchanged.
    led.move([Target(i, maps) for i in range(1204, 1501)], ledger.State.SENT, "sent")
    later = console.get(f"/console/cases/{case_id}/status").json()
    assert later["counts"]["sent"] == 1497 and later["text"]["sent"] == "1,497"
    assert later["layout"] == status["layout"]
    # A new channel's row changes the layout: the page swaps its live regions.
    seed(redis_client, message_id, "sms", 0, targeted=2, sent=2, delivered=1)
    newer = console.get(f"/console/cases/{case_id}/status").json()
    assert newer["layout"] != status["layout"]
    assert newer["counts"]["delivered"] == 1

    # The page carries the same numbers, labels and names where the script writes them.
    page = console.get(f"/console/cases/{case_id}").text
    assert f'data-layout="{newer["layout"]}"' in page
    assert 'id="count-targeted" data-live="targeted">1,502<' in page
    assert 'id="count-sent" data-live="sent">1,499<' in page
    assert '<td class="partner">MapsApp</td>' in page
    assert '<span class="message-label">预警 · 第 2 波 · 100 公里</span>' in page
    assert "alert:1" not in page.split('id="delivery-panel"')[1].split("</ul>")[0].replace(
        message_id, ""
    ), "no raw message kind:wave label"
    # The delivery panel comes before the details card and the edit form is folded away.
    assert page.index('id="delivery-panel"') < page.index('id="case-details"')
    assert re.search(r'<details class="card" id="edit-case"\s*>', page)


def test_the_submitted_page_learns_it_was_approved_and_by_whom(console):
    login(console, "officer1")
    case_id = post_case(console).headers["location"].rsplit("/", 1)[-1]
    before = console.get(f"/console/cases/{case_id}/status").json()
    assert before["state"] == "submitted" and before["approved_by"] is None
    assert before["text"]["state"] == zh("state.submitted")
    page = console.get(f"/console/cases/{case_id}").text
    assert f'data-status="/console/cases/{case_id}/status"' in page
    assert f'data-page="/console/cases/{case_id}" data-state="submitted"' in page

    approve(console, case_id, "sup1")
    console.cookies.clear()
    login(console, "officer1")
    after = console.get(f"/console/cases/{case_id}/status").json()
    assert after["state"] == "active" and after["approved_by"] == "sup1"
    assert after["text"]["state"] == zh("state.active")
    assert re.fullmatch(r"由 sup1 于 \d\d:\d\d 批准", after["text"]["approved_by"])
    assert after["seconds_since_approval"] >= 0 and after["text"]["since_approval"] == zh(
        "since", h=0, m=0
    )
    assert after["layout"] != before["layout"]
    # What the script swaps in: the active view, with the approver and the live fields.
    page = console.get(f"/console/cases/{case_id}").text
    assert 'data-state="active"' in page
    assert f'id="approved-by" data-live="approved_by">{after["text"]["approved_by"]}<' in page
    for live in ("since_approval", "wave", "next_wave", "targeted", "sent", "failed"):
        assert f'data-live="{live}"' in page, live


def test_only_police_of_the_cases_agency_read_its_status(console):
    login(console, "officer1")
    case_id = post_case(console).headers["location"].rsplit("/", 1)[-1]
    console.cookies.clear()
    res = console.get(f"/console/cases/{case_id}/status", follow_redirects=False)
    assert res.status_code == 303 and res.headers["location"] == "/console/login"

    make_agency("Shenzhen")
    make_user("sz_officer", Role.OFFICER, "Shenzhen")
    login(console, "sz_officer")
    res = console.get(f"/console/cases/{case_id}/status")
    assert res.status_code in (403, 404)
    assert not res.headers["content-type"].startswith("application/json")
    assert console.get(f"/console/cases/{case_id}").status_code == res.status_code

    console.cookies.clear()
    login_with_totp(console, "ops1")
    assert console.get(f"/console/cases/{case_id}/status").status_code == 403


def test_dashboard_and_case_page_tell_targeted_from_sent(console, redis_client):
    """The issue's numbers: 115,499 targeted, 1,147 sent; both shown, each under its word."""
    make_partner("MapsApp")
    make_partner("NewsApp")
    maps, news = partner_id("MapsApp"), partner_id("NewsApp")
    login_with_totp(console, "sup1")
    case_id = post_case(console).headers["location"].rsplit("/", 1)[-1]
    approve(console, case_id)
    first = fx.new_message(case_id, wave=0)
    seed(redis_client, first, "fcm", maps, targeted=100_000, sent=1_000, failed=7, retrying=20)
    seed(redis_client, first, "apns", news, targeted=15_499, sent=147, dead=2, dead_lettered=1)

    rows = console.get("/console/dashboard/rows").text
    row = rows.split(f'data-case="{case_id}"')[1].split("</tr>")[0]
    assert '<td class="num targeted">115,499</td>' in row
    assert '<td class="num sent">1,147</td>' in row
    assert '<td class="num failed">10</td>' in row
    assert zh("num.targeted") in rows and zh("num.sent") in rows
    assert zh("col.reach") not in rows, "no 'devices reached' for a targeted count"

    page = console.get(f"/console/cases/{case_id}").text
    assert 'data-live="targeted">115,499<' in page and 'data-live="sent">1,147<' in page
    table = page.split('id="delivery-totals"')[1].split("</table>")[0]
    assert (
        '<td class="partner">MapsApp</td>' in table and '<td class="partner">NewsApp</td>' in table
    )
    assert f'data-live="row:fcm:{maps}:targeted">100,000<' in table
    assert f'data-live="row:apns:{news}:failed">3<' in table
    assert zh("msg.wave_km", kind=zh("kind.alert"), n=1, km="100") in page

    # The API's ledger counts the same targets under the same words.
    from tests.factories import token

    api = console.get(f"/api/v1/cases/{case_id}/deliveries", headers=token(console, "officer1"))
    assert api.status_code == 200, api.text
    totals = api.json()["totals"]
    assert sum(c["targeted"] for c in totals) == 115_499
    assert sum(c["sent"] for c in totals) == 1_147

    # /metrics says the same of the active cases (per channel and partner, no case label).
    from alerts.dispatch import numbers
    from ops.platform.redis_client import get_redis

    with session_scope() as s:
        [family] = list(numbers.gauges(s, get_redis()))
    got = {(m.labels["channel"], m.labels["count"]): m.value for m in family.samples}
    assert got[("fcm", "targeted")] + got[("apns", "targeted")] == 115_499
    assert got[("fcm", "sent")] + got[("apns", "sent")] == 1_147
    assert got[("apns", "failed")] == 3 and got[("fcm", "retrying")] == 20
    assert all(set(m.labels) == {"channel", "partner", "count"} for m in family.samples)

    # English groups thousands the same way.
    english = console.post(
        "/console/language",
        data={"language": "en", "next": "/console/", "csrf_token": csrf_of(page)},
        follow_redirects=False,
    )
    assert english.status_code == 303
    page = console.get(f"/console/cases/{case_id}").text
    assert 'data-live="targeted">115,499<' in page and "Alert · wave 1 · 100 km" in page
