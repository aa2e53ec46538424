"""The supervisor approves with the whole case in view: the photo, every field, and the push,
SMS and CAP texts per language exactly as the renderers will send them.

Before, the review page showed no photo, appearance, marks, circumstances, vehicle or suspect.
"""

from __future__ import annotations

import html

from sqlalchemy import select

from alerts.cases.content import alert_content
from alerts.cases.models import Case
from alerts.feeds import cap
from alerts.feeds import service as feeds
from channels import messages, sms
from channels.messages import MessageKind
from ops.platform.config import get_settings
from ops.platform.db import session_scope
from tests.factories import jpeg_with_gps
from tests.integration.console.conftest import csrf_of, login, login_with_totp
from tests.integration.console.test_console_security import post_case

FIELDS = {
    "appearance": "short black hair, round glasses",
    "distinguishing_marks": "small scar on the left cheek",
    "weight_kg": "21",
    "circumstances": "separated from her mother at the metro exit",
    "vehicle_description": "white minivan",
    "vehicle_plate": "粤A12345",
    "vehicle_colour": "white",
    "suspect_description": "man in his forties, grey cap",
}


def rendered(case_id: str) -> dict[str, dict[str, str]]:
    """What the renderers make of the case, per language (independently of the page)."""
    settings = get_settings()
    out = {}
    with session_scope() as s:
        case = s.get(Case, case_id)
        alert = alert_content(case, MessageKind.ALERT, 0, settings.case_link_base)
        infos = {i.language: i for i in feeds.alert_infos(settings, case)}
        for lang in ("zh-CN", "en"):
            r = messages.render(
                alert, lang, settings.timezone, sms_max_parts=settings.channels.max_sms_parts
            )
            info = infos[lang]
            out[lang] = {
                "title": r.title,
                "body": r.body,
                "sms": sms.plan(r.sms_text, settings.channels.max_sms_parts).text,
                "cap_headline": cap.headline(info.headline, info.description, lang),
                "cap_instruction": info.instruction,
                "cap_event": cap.event(lang),
            }
    return out


def test_review_shows_photo_every_field_and_the_texts_in_both_languages(console):
    login(console, "officer1")
    res = post_case(
        console, files={"photo": ("child.jpg", jpeg_with_gps(), "image/jpeg")}, **FIELDS
    )
    assert res.status_code == 303, res.text
    case_id = res.headers["location"].rsplit("/", 1)[-1]
    with session_scope() as s:
        [ref] = [p["ref"] for p in s.scalar(select(Case).where(Case.id == case_id)).details.photos]
    texts = rendered(case_id)

    console.cookies.clear()
    login_with_totp(console, "sup1")
    for ui in ("zh-CN", "en"):
        page = console.get(f"/console/cases/{case_id}/review")
        assert page.status_code == 200
        body = page.text
        card = body.split('id="review-case"')[1].split("</section>")[0]
        assert f'<img src="/console/photos/{ref}/thumb"' in card
        assert console.get(f"/console/photos/{ref}/thumb").status_code == 200
        for name, value in {**FIELDS, "child_name": "Lin Xiaoyu", "clothing": "red jacket"}.items():
            assert f'data-field="{name}">{html.escape(value)}' in card, (ui, name)
        assert 'data-field="address">Beijing Road, Guangzhou<' in card
        assert 'data-field="tip_line">+86 20 110<' in card
        for lang, want in texts.items():
            section = body.split(f'<section class="card preview" aria-labelledby="h-push-{lang}"')[
                1
            ]
            section = section.split("</section>")[0]
            for key, text in want.items():
                assert html.escape(text) in section, (ui, lang, key)
        # Switch the console to English and look again: the same texts, English labels.
        if ui == "zh-CN":
            switched = console.post(
                "/console/language",
                data={"language": "en", "next": "/console/", "csrf_token": csrf_of(body)},
                follow_redirects=False,
            )
            assert switched.status_code == 303
        else:
            assert "The case as it will be published" in body and "CAP headline" in body
