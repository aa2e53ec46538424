"""The public case page every push, SMS and CAP `<web>` link opens: `/c/{case_id}`.

Bilingual (zh-CN, en; `?lang=` or the browser's Accept-Language), plain HTML and an inline SVG
map, so it works on any phone that follows an SMS link; the one script is the tip form's
(alerts.tips.public: its proof of work), and without it the page loses only that form. While
the alert is live it shows the photo, description, last-seen place and time, the alert area,
the tip line and the tip form. Once the case closes it says only "found" or "cancelled" (the
child's details leave at closure, not at erasure); after erasure, or when the alert ran out,
"this alert has ended". A drill says so before anything else. Drafts and cases awaiting
approval are not public (404).

A viral link is a flood: each (case, language) page is built at most once per
`REUNITE_PUBLIC_FEED_CACHE_S` and served from Redis in between (alerts.feeds.public).
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import jinja2
from fastapi import APIRouter, Header, Query, Response, status
from sqlalchemy.orm import Session

from alerts.cases import content
from alerts.cases.lifecycle import CaseState
from alerts.cases.models import Case
from alerts.console import svgmap
from alerts.deps import SettingsDep
from alerts.feeds import photos, public
from alerts.feeds import service as feeds
from alerts.feeds.models import CaseErasure
from alerts.tips import public as tip_form
from channels import messages
from channels.base import Area
from channels.messages import AlertStatus, MessageKind
from ops.platform.config import Settings
from ops.platform.db import session_scope

router = APIRouter(tags=["public"])
LANGUAGES = (("zh-CN", "中文"), ("en", "English"))
CASE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)

TEXT: dict[str, dict[str, str]] = {
    "zh-CN": {
        "drill": "演练：这不是真实的儿童失踪案件，无需采取任何行动。",
        "test": "系统测试：这不是真实的儿童失踪案件，无需采取任何行动。",
        "photo_alt": "失踪儿童照片",
        "call": "如有线索请拨打",
        "map": "最后出现地点（圆点）与当前预警范围",
        "updated": "页面更新时间：",
        "name": "姓名",
        "age": "年龄",
        "age_value": "{n} 岁",
        "sex": "性别",
        "male": "男",
        "female": "女",
        "unknown": "未知",
        "height": "身高",
        "height_value": "约 {n} 厘米",
        "clothing": "衣着",
        "place": "最后出现地点",
        "seen_at": "最后出现时间",
        "resolved": "孩子已经找到。感谢所有提供帮助的人。",
        "cancelled": "此预警已撤销。",
        "ended": "此预警已结束。",
        "not_found": "没有找到这条预警。",
        "title_ended": "预警已结束",
        "title_missing": "没有这条预警",
    },
    "en": {
        "drill": "DRILL: this is not a real missing child. No action is needed.",
        "test": "SYSTEM TEST: this is not a real missing child. No action is needed.",
        "photo_alt": "Photo of the missing child",
        "call": "If you have information, call",
        "map": "Last seen place (dot) and the current alert area",
        "updated": "Page updated:",
        "name": "Name",
        "age": "Age",
        "age_value": "{n} years",
        "sex": "Sex",
        "male": "boy",
        "female": "girl",
        "unknown": "unknown",
        "height": "Height",
        "height_value": "about {n} cm",
        "clothing": "Clothing",
        "place": "Last seen at",
        "seen_at": "Last seen",
        "resolved": "The child has been found. Thank you to everyone who helped.",
        "cancelled": "This alert was cancelled.",
        "ended": "This alert has ended.",
        "not_found": "There is no such alert.",
        "title_ended": "Alert ended",
        "title_missing": "No such alert",
    },
}
CLOSED_MESSAGE = {
    CaseState.RESOLVED.value: "resolved",
    CaseState.CANCELLED.value: "cancelled",
    CaseState.EXPIRED.value: "ended",
}


def language(lang: str | None, accept_language: str | None) -> str:
    """The page language: an explicit ?lang=, else the browser's first zh/en preference."""
    if lang in TEXT:
        return lang
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return "zh-CN"


def _map(session: Session, case: Case) -> str | None:
    """The current alert area around the last-seen place, as inline SVG."""
    area = None
    for message in reversed(feeds.case_messages(session, case.id)):
        if message.area:
            area = Area.from_json(message.area)
            break
    if area is None:
        return None
    lat, lon = area.center or (case.last_seen_lat, case.last_seen_lon)
    ring = (
        svgmap.Ring(f"{area.radius_km:g} km", radius_km=area.radius_km)
        if area.radius_km
        else svgmap.Ring("", vertices=tuple(area.polygon))
    )
    return svgmap.render(lat, lon, [ring], size=480)


def _facts(alert: messages.AlertContent, t: dict[str, str], tz: ZoneInfo) -> list[tuple[str, str]]:
    facts = [(t["name"], alert.child_name)] if alert.child_name else []
    if alert.age_years is not None:
        facts.append((t["age"], t["age_value"].format(n=alert.age_years)))
    facts.append((t["sex"], t[str(alert.sex)]))
    if alert.height_cm:
        facts.append((t["height"], t["height_value"].format(n=alert.height_cm)))
    if alert.clothing:
        facts.append((t["clothing"], alert.clothing))
    facts.append((t["place"], alert.last_seen_place))
    facts.append((t["seen_at"], alert.last_seen_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")))
    return facts


def render(session: Session, case_id: str, lang: str, settings: Settings) -> tuple[int, bytes]:
    """The page's status and HTML for one case in one language."""
    t = TEXT[lang]
    tz = ZoneInfo(settings.timezone)
    page = {
        "lang": lang,
        "languages": LANGUAGES,
        "t": t,
        "drill": False,
        "updated": datetime.now(tz).strftime("%Y-%m-%d %H:%M"),
    }
    case = session.get(Case, case_id) if CASE_ID.fullmatch(case_id) else None
    if case is None or case.approved_at is None:
        html = _ENV.get_template("case_page.html").render(
            page, state="missing", tone="ended", title=t["title_missing"], message=t["not_found"]
        )
        return status.HTTP_404_NOT_FOUND, html.encode()
    drill_status = content.case_status(session, case.id)
    page["drill"] = drill_status is not AlertStatus.ACTUAL
    if page["drill"]:
        t = page["t"] = t | {
            "drill": t["drill" if drill_status is AlertStatus.EXERCISE else "test"]
        }
    erased = session.get(CaseErasure, case.id) is not None
    if case.state != CaseState.ACTIVE.value or erased or case.details is None:
        key = "ended" if erased else CLOSED_MESSAGE.get(case.state, "ended")
        html = _ENV.get_template("case_page.html").render(
            page,
            state=case.state,
            tone="drill" if page["drill"] else "ended",
            title=t["title_ended"],
            message=t[key],
        )
        return status.HTTP_200_OK, html.encode()
    alert = content.alert_content(case, MessageKind.ALERT, 0, settings.case_link_base)
    rendered = messages.render(alert, lang, settings.timezone)
    html = _ENV.get_template("case_page.html").render(
        page,
        state="active",
        tone="drill" if page["drill"] else "",
        title=rendered.title,
        description=rendered.body,
        photo_url=photos.url_for_case(case, settings, time.time()),
        facts=_facts(alert, t, tz),
        tip_line=case.tip_line,
        tip_tel=re.sub(r"[^0-9+]", "", case.tip_line),
        instruction=feeds.INSTRUCTION[lang].format(tip=case.tip_line),
        map_svg=_map(session, case),
        tip_form=tip_form.form_context(case.id, lang),
    )
    return status.HTTP_200_OK, html.encode()


def _build(case_id: str, lang: str, settings: Settings) -> tuple[bytes, str]:
    with session_scope() as session:
        code, html = render(session, case_id, lang, settings)
    if code != status.HTTP_200_OK:
        raise public.Missing(code, html.decode())
    return html, "text/html; charset=utf-8"


def security_headers(settings: Settings) -> dict[str, str]:
    """Scripts only from here (the tip form's, no inline code); images from here and the
    photo host; never framed."""
    origin = settings.public_base_url.rstrip("/")
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; img-src 'self' data: {origin}; style-src 'unsafe-inline'; "
            "script-src 'self'; connect-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        ),
        "Referrer-Policy": "no-referrer",
        "Vary": "Accept-Language",
    }


@router.get(
    "/c/{case_id}",
    response_class=Response,
    responses={
        200: {"content": {"text/html": {}}, "description": "The case page, in any state"},
        404: {"content": {"text/html": {}}, "description": "No such public alert"},
    },
)
def case_page(
    case_id: str,
    settings: SettingsDep,
    lang: Annotated[str | None, Query(max_length=8)] = None,
    accept_language: Annotated[str | None, Header()] = None,
) -> Response:
    """The public page of an alert (what SMS, push and CAP links open). No key needed."""
    chosen = language(lang, accept_language)
    safe_id = case_id if CASE_ID.fullmatch(case_id) else "-"
    body = public.cached(
        f"page:{safe_id}:{chosen}", settings, lambda: _build(safe_id, chosen, settings)
    )
    headers = security_headers(settings) | {"Cache-Control": "public, max-age=30"}
    media_type = "text/html; charset=utf-8"
    return Response(body.content, status_code=body.status, media_type=media_type, headers=headers)
