"""The reach report: exact ledger numbers per wave, channel and partner, times to 50/90/99 %
sent from the ledger's per-second histogram, partners' own reach, the k-anonymous cell map,
and the CSV and PNG exports, only for police of the case's agency."""

from __future__ import annotations

import csv
import io

from alerts.users.roles import Role
from channels import ledger
from channels.ledger import Ledger, Target
from tests.factories import make_agency, make_partner, make_user, partner_headers, token
from tests.integration.reach import support as sx


def partner_id(name: str) -> int:
    from sqlalchemy import select

    from alerts.partners.models import Partner
    from ops.platform.db import session_scope

    with session_scope() as s:
        return s.scalar(select(Partner.id).where(Partner.name == name))


def seeded(console, redis_client) -> dict:
    """A case with two waves: wave 1 on APNs (partner A) and SMS (partner B, receipts),
    wave 2 on FCM (partner A); devices claimed in two cells (9 and 10 devices)."""
    key = make_partner("MapsApp", ("reach:write",))
    make_partner("CarrierApp")
    a, b = partner_id("MapsApp"), partner_id("CarrierApp")
    case_id = sx.approved_case(console)
    w1, m1 = sx.wave_with_message(case_id, 1)
    w2, m2 = sx.wave_with_message(case_id, 2)
    t1 = sx.started_at(m1)

    # Wave 1: 100 devices targeted (80 APNs for A, 20 SMS for B).
    Ledger(redis_client, m1, "apns").target([Target(i, a) for i in range(1, 81)])
    Ledger(redis_client, m1, "sms").target([Target(i, b) for i in range(81, 101)])
    sx.send_at(redis_client, m1, "apns", a, range(1, 41), t1 + 3)  # 40 % at +3 s
    sx.send_at(redis_client, m1, "sms", b, range(81, 91), t1 + 7)  # 50 % at +7 s
    sx.send_at(redis_client, m1, "apns", a, range(41, 81), t1 + 20)  # 90 % at +20 s
    sx.send_at(redis_client, m1, "sms", b, range(91, 100), t1 + 65)  # 99 % at +65 s
    Ledger(redis_client, m1, "sms").move([Target(100, b)], ledger.State.ENDED, "failed")
    sms = Ledger(redis_client, m1, "sms")
    assert sms.deliver([Target(i, b) for i in range(81, 86)]) == 5

    # Wave 2: 10 FCM devices for A, 4 sent: never reaches 50 %.
    Ledger(redis_client, m2, "fcm").target([Target(i, a) for i in range(101, 111)])
    sx.send_at(redis_client, m2, "fcm", a, range(101, 105), sx.started_at(m2) + 2)

    # Claims: 9 devices in cell A (wave 1), 10 in cell B (6 in wave 1, 4 in wave 2).
    sx.claim(redis_client, case_id, w1, sx.CELL_A, range(1, 10))
    sx.claim(redis_client, case_id, w1, sx.CELL_B, range(81, 87))
    sx.claim(redis_client, case_id, w2, sx.CELL_B, range(101, 105))
    return {"case": case_id, "m1": m1, "m2": m2, "a": a, "b": b, "key": key}


def test_report_counts_each_wave_channel_and_partner_exactly(console, redis_client):
    w = seeded(console, redis_client)
    res = console.get(f"/api/v1/cases/{w['case']}/reach", headers=token(console, "officer1"))
    assert res.status_code == 200, res.text
    assert res.headers["cache-control"] == "no-store"
    body = res.json()
    first, second = body["waves"]
    assert (first["message_id"], first["wave"], second["wave"]) == (w["m1"], 1, 2)
    assert (first["devices_targeted"], first["devices_sent"], first["devices_delivered"]) == (
        100,
        99,
        5,
    )
    rows = {(c["channel"], c["partner_id"]): c for c in first["counts"]}
    assert rows[("apns", w["a"])] == {
        "channel": "apns",
        "partner_id": w["a"],
        "targeted": 80,
        "sent": 80,
        "delivered": 0,
        "failed": 0,
    }
    assert (rows[("sms", w["b"])]["sent"], rows[("sms", w["b"])]["delivered"]) == (19, 5)
    assert rows[("sms", w["b"])]["failed"] == 1
    assert [(c["channel"], c["targeted"], c["sent"]) for c in second["counts"]] == [("fcm", 10, 4)]
    # No personal data: the case's child, place and officer never appear.
    from tests.factories import CHILD_NAME

    assert CHILD_NAME not in res.text


def test_times_to_50_90_99_percent_come_from_the_seconds_the_ledger_recorded(console, redis_client):
    w = seeded(console, redis_client)
    body = console.get(
        f"/api/v1/cases/{w['case']}/reach", headers=token(console, "officer1")
    ).json()
    first, second = body["waves"]
    assert (first["seconds_to_50"], first["seconds_to_90"], first["seconds_to_99"]) == (7, 20, 65)
    assert (second["seconds_to_50"], second["seconds_to_90"], second["seconds_to_99"]) == (
        None,
        None,
        None,
    )
    sent = [p["sent"] for p in body["timeline"]]
    assert sent == sorted(sent) and sent[-1] == 99 + 4


def test_a_real_send_is_stamped_in_the_current_second(redis_client):
    from ops.platform.clock import utcnow

    before = int(utcnow().timestamp())
    book = Ledger(redis_client, "reach-stamp-test:alert:1:1", "apns")
    redis_client.delete(ledger.timeline_key(book.message_id, "apns", "sent"))
    book.target([Target(i) for i in (1, 2, 3)])
    assert book.move([Target(1), Target(2)], ledger.State.SENT, "sent") == 2
    assert book.move([Target(1)], ledger.State.SENT, "sent") == 0  # a repeat adds nothing
    [(second, n)] = ledger.timeline(redis_client, book.message_id, "apns", "sent")
    assert n == 2 and before <= second <= int(utcnow().timestamp())


def test_cells_below_the_k_floor_are_not_shown(console, redis_client):
    w = seeded(console, redis_client)
    body = console.get(
        f"/api/v1/cases/{w['case']}/reach", headers=token(console, "officer1")
    ).json()
    assert body["k_floor"] == 10
    assert body["cells"] == [{"cell": sx.CELL_B, "targeted": 10, "sent": 10}]
    assert body["cells_suppressed"] == 1
    assert (
        sx.CELL_A
        not in console.get(
            f"/api/v1/cases/{w['case']}/reach.csv", headers=token(console, "officer1")
        ).text
    )


def test_partner_reach_is_replaced_by_the_latest_report(console, redis_client):
    w = seeded(console, redis_client)
    url = f"/api/v1/partner/messages/reunite:{w['m1']}/reach"
    headers = partner_headers(w["key"])
    first = {"impressions": 500, "opened": 40, "reported_at": "2025-06-01T12:00:00+08:00"}
    res = console.post(url, json=first, headers=headers)
    assert res.status_code == 200, res.text
    assert res.json()["message_id"] == w["m1"] and res.json()["partner_id"] == w["a"]
    latest = {"impressions": 900, "reported_at": "2025-06-01T13:00:00+08:00"}
    assert console.post(url, json=latest, headers=headers).status_code == 200

    body = console.get(
        f"/api/v1/cases/{w['case']}/reach", headers=token(console, "officer1")
    ).json()
    [report] = body["waves"][0]["partner_reports"]
    assert (report["partner_id"], report["impressions"], report["opened"]) == (w["a"], 900, None)
    assert body["waves"][1]["partner_reports"] == []


def test_partner_reach_refusals_name_the_field(console, redis_client):
    w = seeded(console, redis_client)
    url = f"/api/v1/partner/messages/{w['m1']}/reach"
    headers = partner_headers(w["key"])

    def fields(body) -> list[str]:
        res = console.post(url, json=body, headers=headers)
        assert res.status_code == 422, res.text
        return [e["field"] for e in res.json()["detail"]]

    assert "impressions" in fields({"impressions": -1, "reported_at": "2025-06-01T12:00:00Z"})
    assert "reported_at" in fields({"impressions": 1, "reported_at": "2999-01-01T00:00:00Z"})
    assert "reported_at" in fields({"impressions": 1, "reported_at": "2025-06-01T12:00:00"})
    assert fields({"impressions": 1, "opened": 2, "reported_at": "2025-06-01T12:00:00Z"}) == [
        "opened"
    ]
    missing = console.post(
        "/api/v1/partner/messages/nope:alert:1:1/reach",
        json={"impressions": 1, "reported_at": "2025-06-01T12:00:00Z"},
        headers=headers,
    )
    assert missing.status_code == 404
    other = make_partner("NoScope", ("feeds:read",))
    refused = console.post(
        url,
        json={"impressions": 1, "reported_at": "2025-06-01T12:00:00Z"},
        headers=partner_headers(other),
    )
    assert refused.status_code == 403


def test_csv_has_the_header_and_one_row_per_wave_channel_and_cell(console, redis_client):
    w = seeded(console, redis_client)
    res = console.get(f"/api/v1/cases/{w['case']}/reach.csv", headers=token(console, "officer1"))
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/csv")
    assert res.headers["cache-control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(res.text)))
    assert res.text.splitlines()[0] == (
        "row,message_id,kind,wave,channel,partner_id,cell,targeted,sent,delivered,failed,"
        "seconds_to_50,seconds_to_90,seconds_to_99,impressions,opened"
    )
    waves = [r for r in rows if r["row"] == "wave"]
    assert [(r["wave"], r["targeted"], r["sent"], r["seconds_to_90"]) for r in waves] == [
        ("1", "100", "99", "20"),
        ("2", "10", "4", ""),
    ]
    channels = [
        (r["wave"], r["channel"], r["partner_id"], r["sent"]) for r in rows if r["row"] == "channel"
    ]
    assert channels == [
        ("1", "apns", str(w["a"]), "80"),
        ("1", "sms", str(w["b"]), "19"),
        ("2", "fcm", str(w["a"]), "4"),
    ]
    assert [(r["cell"], r["targeted"]) for r in rows if r["row"] == "cell"] == [(sx.CELL_B, "10")]


def test_png_is_a_real_image(console, redis_client):
    w = seeded(console, redis_client)
    res = console.get(f"/api/v1/cases/{w['case']}/reach.png", headers=token(console, "officer1"))
    assert res.status_code == 200 and res.headers["content-type"] == "image/png"
    assert res.headers["cache-control"] == "no-store"
    assert res.content[:8] == b"\x89PNG\r\n\x1a\n" and len(res.content) > 5_000


def test_police_of_another_agency_see_nothing(console, redis_client):
    w = seeded(console, redis_client)
    make_agency("Shenzhen")
    make_user("szofficer", Role.OFFICER, "Shenzhen")
    headers = token(console, "szofficer")
    for suffix in ("reach", "reach.csv", "reach.png"):
        res = console.get(f"/api/v1/cases/{w['case']}/{suffix}", headers=headers)
        assert res.status_code in (403, 404), (suffix, res.status_code)
        assert res.headers["content-type"].startswith("application/json")


def test_console_page_shows_the_report_in_both_languages(console, redis_client):
    from alerts.console.i18n import translate
    from tests.integration.console.conftest import login

    w = seeded(console, redis_client)
    login(console, "officer1")
    case_page = console.get(f"/console/cases/{w['case']}").text
    assert f'href="/console/cases/{w["case"]}/reach"' in case_page

    page = console.get(f"/console/cases/{w['case']}/reach")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    html = page.text
    assert translate("zh-CN", "reach.title", id=w["case"][:8]) in html
    waves = html.split('id="reach-waves"')[1].split("</table>")[0]
    assert (
        '<td class="num">100</td>' in waves and translate("zh-CN", "reach.seconds", n="65") in waves
    )
    assert '<td class="partner">MapsApp</td>' in waves
    # The map draws the shown cell as a polygon; the 9-device cell is not in the page.
    assert sx.CELL_B in html and sx.CELL_A not in html
    assert translate("zh-CN", "reach.map_hint", k=10, n=1) in html
    png = console.get(f"/console/cases/{w['case']}/reach.png")
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    csv_text = console.get(f"/console/cases/{w['case']}/reach.csv").text
    assert csv_text.startswith("row,message_id,")

    from tests.integration.console.conftest import csrf_of

    console.post(
        "/console/language",
        data={"csrf_token": csrf_of(html), "language": "en", "next": "/console/"},
    )
    en = console.get(f"/console/cases/{w['case']}/reach").text
    assert translate("en", "reach.title", id=w["case"][:8]) in en
    assert translate("en", "reach.seconds", n="65") in en


def test_console_page_is_not_for_another_agency(console, redis_client):
    from tests.integration.console.conftest import login

    w = seeded(console, redis_client)
    make_agency("Shenzhen")
    make_user("szofficer", Role.OFFICER, "Shenzhen")
    login(console, "szofficer")
    for suffix in ("reach", "reach.csv", "reach.png"):
        res = console.get(f"/console/cases/{w['case']}/{suffix}")
        assert res.status_code in (403, 404), (suffix, res.status_code)
        assert w["case"] not in res.text or res.status_code == 404
