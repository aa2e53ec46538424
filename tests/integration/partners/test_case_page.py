"""The public case page (/c/{id}) every message links to: no key, no script, bilingual,
the whole alert while it is live, only its outcome after closure, nothing after erasure."""

from __future__ import annotations

import re
from datetime import timedelta

from lxml import html
from sqlalchemy import select

from alerts.cases import content
from alerts.cases.models import Case
from alerts.feeds import public
from alerts.privacy import tasks as privacy_tasks
from channels.models import Message
from ops.platform.config import get_settings
from ops.platform.db import session_scope
from tests.factories import CHILD_NAME, case_payload, uploaded_photo
from tests.integration.partners.support import approved_case, close, start_first_wave


def page(api, case_id: str, **headers) -> tuple[int, str, object]:
    public.forget()
    res = api.get(f"/c/{case_id}", headers=headers)
    return res.status_code, res.text, res


def test_every_message_links_to_a_live_page_with_the_whole_alert(world, api):
    photo = uploaded_photo(world["officer"])
    case_id = approved_case(world, photos=[photo])
    start_first_wave(case_id)
    with session_scope() as s:
        rendered = s.scalars(select(Message).where(Message.case_id == case_id)).first().rendered
    links = {r["deep_link"] for r in rendered["languages"].values()}
    assert links == {f"{get_settings().public_base_url}/c/{case_id}"}, links
    code, text, res = page(api, case_id, **{"Accept-Language": "en-GB,en;q=0.8"})
    assert code == 200 and res.headers["content-type"].startswith("text/html")
    doc = html.fromstring(text)
    assert doc.get("lang") == "en"
    assert CHILD_NAME in text
    assert doc.xpath("//a[@id='tip-line']/@href") == ["tel:+8620110"]
    photo = doc.xpath("//img[@class='photo']/@src")[0]
    assert "/api/v1/photos/photo_0001abcd" in photo
    assert api.get("/" + photo.split("://", 1)[1].split("/", 1)[1]).status_code == 200
    assert doc.xpath("//figure[@class='map']//*[local-name()='svg']"), "an inline map"
    # The one script is the tip form's, from this origin; everything else works without it.
    assert [s.get("src") for s in doc.xpath("//script")] == ["/public/tips.js"]
    assert "script-src 'self';" in res.headers["content-security-policy"]
    assert "default-src 'none'" in res.headers["content-security-policy"]


def test_language_by_query_or_browser_with_zh_cn_the_default(world, api):
    case_id = approved_case(world)
    start_first_wave(case_id)
    _, zh, _ = page(api, case_id)
    assert html.fromstring(zh).get("lang") == "zh-CN" and "如有线索请拨打" in zh
    _, en, _ = page(api, case_id + "?lang=en", **{"Accept-Language": "zh-CN"})
    assert "If you have information, call" in en
    _, zh2, _ = page(api, case_id, **{"Accept-Language": "zh-TW,zh;q=0.9"})
    assert "如有线索请拨打" in zh2


def test_a_drill_says_so_first(world, api):
    case_id = approved_case(world, drill=True)
    start_first_wave(case_id)
    _, text, _ = page(api, case_id + "?lang=en")
    doc = html.fromstring(text)
    assert doc.xpath("//*[@id='drill']")[0].text_content().startswith("DRILL")
    first = doc.xpath("//main/*")[0]
    assert first.get("id") == "drill", "the drill notice comes before anything else"


def test_after_closure_only_the_outcome_and_after_erasure_that_it_ended(world, api):
    found = approved_case(world)
    start_first_wave(found)
    close(world, found)
    _, text, _ = page(api, found + "?lang=en")
    assert "The child has been found" in text and CHILD_NAME not in text
    assert "tip-line" not in text and "/api/v1/photos/" not in text

    cancelled = approved_case(world)
    start_first_wave(cancelled)
    close(world, cancelled, kind="cancelled")
    _, text, _ = page(api, cancelled + "?lang=zh-CN")
    assert "此预警已撤销" in text and CHILD_NAME not in text

    with session_scope() as s:
        s.get(Case, found).closed_at -= timedelta(days=get_settings().erasure_retention_days + 1)
    privacy_tasks.erase_due()
    code, text, _ = page(api, found + "?lang=en")
    assert code == 200 and "This alert has ended" in text


def test_closing_drops_the_cached_live_page_at_once(world, api):
    case_id = approved_case(world)
    start_first_wave(case_id)
    public.forget()
    assert CHILD_NAME in api.get(f"/c/{case_id}?lang=en").text  # now cached
    close(world, case_id)
    text = api.get(f"/c/{case_id}?lang=en").text  # no forget(): the closure itself must
    assert "The child has been found" in text and CHILD_NAME not in text


def test_drafts_pending_and_unknown_cases_are_not_public(world, api):
    from alerts.cases import service as cases
    from alerts.cases.schemas import CaseCreate
    from alerts.users.models import User

    with session_scope() as s:
        officer = s.get(User, world["officer"])
        payload = CaseCreate.model_validate(case_payload())
        draft = cases.create(s, payload, officer, get_settings())
        pending = cases.create(s, payload, officer, get_settings())
        cases.submit(s, pending.id, officer)
        ids = [draft.id, pending.id]
    for case_id in [*ids, "no-such-case", "x" * 300, "..%2e"]:
        code, text, _ = page(api, case_id)
        assert code == 404, case_id
        assert CHILD_NAME not in text and re.search(r"没有找到这条预警", text), case_id


def test_the_texts_carry_no_placeholder_link(world, api):
    case_id = approved_case(world)
    with session_scope() as s:
        alert = content.alert_content(
            s.get(Case, case_id), content.MessageKind.ALERT, 0, get_settings().case_link_base
        )
    assert "reunite.example" not in alert.deep_link
    assert api.get("/" + alert.deep_link.split("/", 3)[3]).status_code == 200
