"""The case list and a case's history: police find their agencies' cases (open and closed,
with the outcome), never another agency's; each case page has a timeline and keeps the place
first reported after a sighting moves the alert; erased cases keep only non-personal facts."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from alerts.cases.models import Case
from alerts.console.i18n import translate
from alerts.users.models import Agency
from alerts.users.roles import Role
from geo.waves import service as waves
from ops.platform.clock import utcnow
from ops.platform.config import get_settings
from ops.platform.db import session_scope
from tests.factories import make_agency, make_user
from tests.integration.console.conftest import csrf_of, login, login_with_totp
from tests.integration.console.test_console_security import post_case


def zh(key: str, **kw) -> str:
    return translate("zh-CN", key, **kw)


def new_case(console, user: str, **overrides) -> str:
    console.cookies.clear()
    login(console, user)
    res = post_case(console, **overrides)
    assert res.status_code == 303, res.text
    return res.headers["location"].rsplit("/", 1)[-1]


def approve(console, case_id: str) -> None:
    console.cookies.clear()
    login_with_totp(console, "sup2")
    review = console.get(f"/console/cases/{case_id}/review")
    res = console.post(
        f"/console/cases/{case_id}/approve",
        data={"csrf_token": csrf_of(review.text)},
        follow_redirects=False,
    )
    assert res.status_code == 303, res.text


def search(console, **fields) -> str:
    page = console.get("/console/history")
    assert page.status_code == 200
    res = console.post("/console/history", data={"csrf_token": csrf_of(page.text), **fields})
    assert res.status_code == 200, res.text
    return res.text


def rows(html: str) -> str:
    return html.split('id="case-list"')[1].split("</table>")[0] if 'id="case-list"' in html else ""


def test_police_see_only_their_agencies_cases_whatever_the_filter(console):
    make_agency("Shenzhen")
    make_user("sz_officer", Role.OFFICER, "Shenzhen")
    ours = new_case(console, "officer1", child_name="Lin Xiaoyu")
    theirs = new_case(console, "sz_officer", child_name="Chen Hao", address="Futian, Shenzhen")
    with session_scope() as s:
        shenzhen = s.scalar(select(Agency.id).where(Agency.name == "Shenzhen"))

    console.cookies.clear()
    login(console, "officer1")
    listed = console.get("/console/history").text
    assert 'id="nav-case-list"' in listed
    assert f'data-case="{ours}"' in listed and theirs not in listed
    for fields in (
        {"q": "Chen"},
        {"q": theirs[:8]},
        {"q": "Shenzhen"},
        {"agency": str(shenzhen)},
        {"state": "submitted"},
        {"q": "%"},
    ):
        assert theirs not in search(console, **fields), fields
    assert f'data-case="{ours}"' in rows(search(console, q="xiaoyu"))
    assert f'data-case="{ours}"' in rows(search(console, q=ours[:8]))
    assert rows(search(console, q="Chen")) == ""


def test_search_text_is_never_in_a_url_or_a_log(console, caplog):
    new_case(console, "officer1", child_name="Zhao Mingyue")
    console.cookies.clear()
    login(console, "officer1")
    page = console.get("/console/history").text
    assert 'method="post" action="/console/history"' in page
    with caplog.at_level(logging.DEBUG):
        html = search(console, q="Mingyue")
    assert "Zhao Mingyue" in rows(html)
    assert "Mingyue" not in caplog.text


def test_closed_cases_are_listed_with_their_outcome_and_filters_work(console):
    found = new_case(console, "officer1", child_name="Wu Lei")
    approve(console, found)
    page = console.get(f"/console/cases/{found}")
    console.post(
        f"/console/cases/{found}/resolve",
        data={"csrf_token": csrf_of(page.text), "reason": "", "outcome": "found_safe"},
    )
    draft = new_case(console, "officer1", child_name="He Yun", action="save")
    closed = rows(search(console, state="closed"))
    assert f'data-case="{found}" data-state="resolved"' in closed
    assert zh("state.resolved") in closed and draft not in closed
    assert found not in rows(search(console, state="open"))
    linked = rows(console.get("/console/history?state=closed&q=ignored").text)
    assert found in linked and draft not in linked  # a link to the closed cases; no text
    assert draft in rows(search(console, state="draft"))
    today = (utcnow() + timedelta(hours=8)).date()
    assert found in rows(search(console, **{"from": today.isoformat(), "to": today.isoformat()}))
    tomorrow = (today + timedelta(days=1)).isoformat()
    assert rows(search(console, **{"from": tomorrow})) == ""


def test_the_list_pages_through_many_cases(console):
    from alerts.cases import history

    ids = [new_case(console, "officer1", action="save") for _ in range(history.PAGE_SIZE + 1)]
    first = search(console, page="1")
    assert rows(first).count("data-case=") == history.PAGE_SIZE
    assert 'id="page-next"' in first and 'id="page-prev"' not in first
    second = search(console, page="2")
    assert rows(second).count("data-case=") == 1 and 'id="page-prev"' in second
    assert ids[0] in rows(second)  # oldest last


def test_timeline_keeps_the_first_place_after_a_sighting_and_the_list_survives_erasure(console):
    from alerts.privacy import service as privacy

    case_id = new_case(console, "officer1", child_name="Sun Li", address="Beijing Road")
    approve(console, case_id)
    with session_scope() as s:  # what the dispatch worker does at approval and when due
        first = waves.plan(s, s.get(Case, case_id), utcnow())[0]
        first.status, first.started_at = "started", utcnow()
    console.cookies.clear()
    login(console, "officer1")
    page = console.get(f"/console/cases/{case_id}")
    when = (utcnow() + timedelta(hours=8) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
    res = console.post(
        f"/console/cases/{case_id}/sightings",
        data={
            "csrf_token": csrf_of(page.text),
            "at": when,
            "lat": "23.1300",
            "lon": "113.2650",
            "address": "Haizhu Square",
        },
        follow_redirects=False,
    )
    assert res.status_code == 303, res.text
    html = console.get(f"/console/cases/{case_id}").text
    timeline = html.split('id="timeline"')[1].split("</section>")[0]
    origin = timeline.split('id="origin-place"')[1].split("</p>")[0]
    assert "Beijing Road" in origin and "23.12910, 113.26440" in origin
    kinds = [k.split('"')[0] for k in timeline.split('data-kind="')[1:]]
    assert kinds[:3] == ["created", "submitted", "approved"]
    assert "wave" in kinds and "sighting" in kinds
    assert "Haizhu Square" in timeline and "officer1" in timeline

    page = console.get(f"/console/cases/{case_id}")
    console.post(
        f"/console/cases/{case_id}/cancel",
        data={"csrf_token": csrf_of(page.text), "reason": "duplicate report", "outcome": "other"},
    )
    with session_scope() as s:
        privacy.erase(s, case_id, get_settings())
    listed = rows(search(console, state="cancelled"))
    row = listed.split(f'data-case="{case_id}"')[1].split("</tr>")[0]
    assert "Sun Li" not in row and zh("list.erased") in row and zh("state.cancelled") in row
    assert rows(search(console, q="Sun Li")) == ""
    html = console.get(f"/console/cases/{case_id}").text
    timeline = html.split('id="timeline"')[1].split("</section>")[0]
    assert 'data-kind="erased"' in timeline and 'data-kind="cancelled"' in timeline
    assert "Haizhu Square" not in timeline and "Beijing Road" not in timeline


def test_operators_have_no_case_list(console):
    """The list shows children's names: police only."""
    login_with_totp(console, "ops1")
    assert console.get("/console/history").status_code == 403
    assert 'id="nav-case-list"' not in console.get("/console/").text
