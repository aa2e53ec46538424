"""The closing forms ask for the outcome (resolve preselects found safe; cancel offers
unfounded or other) and store it; operators have a statistics page with a CSV download,
which police cannot open."""

from __future__ import annotations

import csv
import io

from alerts.cases.models import Case
from ops.platform.db import session_scope
from tests.integration.console.conftest import csrf_of, login, login_with_totp
from tests.integration.console.test_case_list import approve, new_case


def stored(case_id: str) -> Case:
    with session_scope() as s:
        case = s.get(Case, case_id)
        s.expunge(case)
        return case


def test_the_resolve_form_preselects_found_safe_and_stores_the_chosen_outcome(console):
    case_id = new_case(console, "officer1")
    approve(console, case_id)
    console.cookies.clear()
    login(console, "officer1")
    page = console.get(f"/console/cases/{case_id}").text
    form = page.split('action="/console/cases/' + case_id + '/resolve"')[1].split("</form>")[0]
    assert '<option value="found_safe" selected>' in form
    assert 'id="resolve-reason"' in form and 'id="resolve"' in form
    assert 'value="cancelled_unfounded"' not in form
    res = console.post(
        f"/console/cases/{case_id}/resolve",
        data={
            "csrf_token": csrf_of(page),
            "reason": "At her grandmother's",
            "outcome": "found_with_relative",
            "tip_contributed": "1",
        },
        follow_redirects=False,
    )
    assert res.status_code == 303, res.text
    case = stored(case_id)
    assert (case.state, case.outcome, case.tip_contributed) == (
        "resolved",
        "found_with_relative",
        True,
    )
    assert case.recovery_seconds is not None
    shown = console.get(f"/console/cases/{case_id}").text
    assert 'id="case-outcome"' in shown and "在亲友处找到" in shown


def test_a_closing_form_without_a_valid_outcome_is_refused_and_the_case_stays_open(console):
    case_id = new_case(console, "officer1")
    approve(console, case_id)
    console.cookies.clear()
    login(console, "officer1")
    token = csrf_of(console.get(f"/console/cases/{case_id}").text)
    for outcome in (None, "abducted_by_aliens", "cancelled_unfounded"):
        data = {"csrf_token": token, "reason": "found"}
        if outcome:
            data["outcome"] = outcome
        res = console.post(f"/console/cases/{case_id}/resolve", data=data)
        assert res.status_code == 422, outcome
        assert 'id="resolve-error"' in res.text
    res = console.post(
        f"/console/cases/{case_id}/cancel",
        data={"csrf_token": token, "reason": "duplicate", "outcome": "found_safe"},
    )
    assert res.status_code == 422 and 'id="cancel-outcome-error"' in res.text
    assert stored(case_id).state == "active"
    res = console.post(
        f"/console/cases/{case_id}/cancel",
        data={"csrf_token": token, "reason": "never missing", "outcome": "cancelled_unfounded"},
        follow_redirects=False,
    )
    assert res.status_code == 303
    assert (stored(case_id).state, stored(case_id).outcome) == ("cancelled", "cancelled_unfounded")


def test_operators_see_the_statistics_page_and_download_the_csv(console):
    found = new_case(console, "officer1")
    approve(console, found)
    console.cookies.clear()
    login(console, "officer1")
    page = console.get(f"/console/cases/{found}").text
    console.post(
        f"/console/cases/{found}/resolve",
        data={"csrf_token": csrf_of(page), "outcome": "returned_home"},
    )
    console.cookies.clear()
    login_with_totp(console, "ops1")
    home = console.get("/console/").text
    assert 'id="nav-stats"' in home
    res = console.get("/console/stats")
    assert res.status_code == 200
    table = res.text.split('id="stats-table"')[1].split("</table>")[0]
    row = table.split("<tbody>")[1].split("</tr>")[0]
    assert "Guangzhou" in row
    assert '<td class="num cases">1</td>' in row and '<td class="num rate">100.0%</td>' in row
    outcomes = res.text.split('id="stats-outcomes"')[1].split("</table>")[0]
    assert 'data-outcome="returned_home"><th scope="row">自行回家</th><td class="num">1<' in (
        outcomes
    )
    assert 'href="/console/stats.csv"' in res.text
    filtered = console.get("/console/stats?from=2020-01&to=2020-02")
    assert 'id="stats-none"' in filtered.text
    assert 'href="/console/stats.csv?from=2020-01&amp;to=2020-02"' in filtered.text
    assert console.get("/console/stats?from=January").status_code == 422
    download = console.get("/console/stats.csv")
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(download.text)))
    assert lines[0][:4] == ["month", "agency_id", "agency", "cases"]
    assert len(lines) == 2 and lines[1][2:5] == ["Guangzhou", "1", "1"]


def test_police_get_403_on_the_statistics_page_and_see_no_link(console):
    for user in ("officer1", "sup1"):
        console.cookies.clear()
        if user == "officer1":
            login(console, user)
        else:
            login_with_totp(console, user)
        assert 'id="nav-stats"' not in console.get("/console/").text
        assert console.get("/console/stats").status_code == 403, user
        assert console.get("/console/stats.csv").status_code == 403, user
