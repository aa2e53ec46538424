"""The tip form on the public case page (/c/{id}): a challenge, the tip, the page's script.

The page itself stays cached and identical for everyone (alerts.feeds.casepage); its script
(static/tips_public.js) asks for a signed challenge, finds the proof of work (alerts.tips.pow)
and posts the tip with fetch. The server then checks, in this order: the fields (a typo costs
no work), the proof (signed, for this case, unexpired, never used before), the sender's
address (REUNITE_TIP_PUBLIC_PER_HOUR, counted in Redis under a keyed hash, never the address
itself). Without JavaScript the form says so and points to the tip line: a no-proof fallback
would be the door every bot takes, and the phone number works on any handset.

These routes serve the page's own script, not partners: they are left out of the OpenAPI
document (partners have POST /api/v1/partner/tips).
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from alerts.cases.models import Case
from alerts.cases.schemas import PastTime, Phone, Text2000
from alerts.deps import SessionDep, SettingsDep
from alerts.tips import pow as proof
from alerts.tips import service as tips
from ops.platform.config import Settings
from ops.platform.redis_client import get_redis

router = APIRouter(include_in_schema=False)
SCRIPT = Path(__file__).parent / "static" / "tips_public.js"
FORM_SLACK = 64 * 1024

TEXT: dict[str, dict[str, str]] = {
    "zh-CN": {
        "tip_title": "提供线索",
        "tip_intro": "您的线索会直接送到负责此案的民警。紧急情况请直接拨打上面的电话。",
        "tip_text": "您看到了什么？",
        "tip_seen_at": "看到的时间",
        "tip_where": "地点（可选）",
        "tip_locate": "使用我当前的位置",
        "tip_lat": "纬度",
        "tip_lon": "经度",
        "tip_accuracy": "误差（米）",
        "tip_photo": "照片（可选，JPEG/PNG/WebP）",
        "tip_callback": "回拨电话（可选）",
        "tip_send": "发送线索",
        "tip_working": "正在进行防滥用验证，请稍候……",
        "tip_sent": "谢谢！线索已送达办案民警。编号：",
        "tip_failed": "未能发送：",
        "tip_limited": "此网络发送的线索过多，请稍后再试，或直接拨打上面的电话。",
        "tip_noscript": "在线提交线索需要启用 JavaScript（用于在您的设备上完成防滥用验证，"
        "不使用任何第三方服务）。请直接拨打上面的电话提供线索。",
        "tip_privacy": "您的线索和电话号码仅供警方使用，结案后按规定删除。",
    },
    "en": {
        "tip_title": "Send a tip",
        "tip_intro": "Your tip goes straight to the police officer on this case. If it is "
        "urgent, call the number above.",
        "tip_text": "What did you see?",
        "tip_seen_at": "When",
        "tip_where": "Where (optional)",
        "tip_locate": "Use my current location",
        "tip_lat": "Latitude",
        "tip_lon": "Longitude",
        "tip_accuracy": "Accuracy (metres)",
        "tip_photo": "Photo (optional, JPEG/PNG/WebP)",
        "tip_callback": "Number to call you back (optional)",
        "tip_send": "Send tip",
        "tip_working": "Running the anti-abuse check on your device…",
        "tip_sent": "Thank you. Your tip reached the officer. Reference:",
        "tip_failed": "Not sent:",
        "tip_limited": "Too many tips from this network; try again later, or call the number "
        "above.",
        "tip_noscript": "Sending a tip online needs JavaScript (your device solves a small "
        "anti-abuse puzzle; no third-party service is used). Please call the number above "
        "instead.",
        "tip_privacy": "Your tip and number are for the police only, and are deleted after "
        "the case closes.",
    },
}


class PublicTip(BaseModel):
    """The public form's fields, checked like a partner's tip."""

    model_config = ConfigDict(extra="ignore")

    text: Annotated[Text2000, Field(min_length=1)]
    seen_at: PastTime
    lat: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False)
    lon: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False)
    accuracy_m: float | None = Field(default=None, gt=0, le=100_000, allow_inf_nan=False)
    callback: Phone | None = None


def form_context(case_id: str, lang: str) -> dict:
    """What the case page's tip form needs (the same for every visitor: the page is cached)."""
    return {"case_id": case_id, "t": TEXT[lang]}


def _errors(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"field": f, "message": m, "type": "value_error"} for f, m in pairs]


def _live_case(session, case_id: str) -> Case | JSONResponse:
    case = session.get(Case, case_id) if len(case_id) <= 64 else None
    if case is None or case.approved_at is None:
        return JSONResponse({"detail": "no such alert"}, status_code=404)
    try:
        tips.check_open(case)
    except tips.TipRefused as exc:
        return JSONResponse({"detail": str(exc)}, status_code=409)
    return case


@router.get("/c/{case_id}/tips/challenge")
def challenge(case_id: str, session: SessionDep, settings: SettingsDep) -> Response:
    """A fresh proof-of-work challenge for this case's tip form (never cached)."""
    case = _live_case(session, case_id)
    if isinstance(case, JSONResponse):
        return case
    issued = proof.issue(
        settings.secret_key.get_secret_value(),
        case.id,
        settings.tip_pow_bits,
        time.time(),
        settings.tip_challenge_ttl_s,
    )
    return JSONResponse(
        {"challenge": issued.text, "bits": issued.bits, "expires": issued.expires},
        headers={"Cache-Control": "no-store"},
    )


def _address_key(settings: Settings, address: str, now: float) -> str:
    digest = hashlib.sha256(
        b"reunite tip address\x00"
        + settings.secret_key.get_secret_value().encode()
        + b"\x00"
        + address.encode()
    ).hexdigest()[:32]
    return f"tips:public:{digest}:{int(now // 3600)}"


def _seen_at(raw: str, tz: str) -> datetime | str:
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return raw
    return value.replace(tzinfo=ZoneInfo(tz)) if value.tzinfo is None else value


@router.post("/c/{case_id}/tips")
async def send_tip(
    case_id: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    """A tip from the public page: fields, then proof of work, then the address's limit."""
    form = await request.form(max_files=1, max_fields=20)

    def field(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    raw = {
        "text": field("text"),
        "seen_at": _seen_at(field("seen_at"), settings.timezone) if field("seen_at") else None,
        "lat": field("lat") or None,
        "lon": field("lon") or None,
        "accuracy_m": field("accuracy_m") or None,
        "callback": field("callback") or None,
    }
    try:
        data = PublicTip.model_validate(raw)
    except ValidationError as exc:
        found = [(".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()]
        return JSONResponse({"detail": _errors(*found)}, status_code=422)
    if (data.lat is None) != (data.lon is None):
        missing = "lon" if data.lon is None else "lat"
        return JSONResponse(
            {"detail": _errors((missing, "give both latitude and longitude, or neither"))},
            status_code=422,
        )
    upload = form.get("photo")
    photo = None
    if upload is not None and not isinstance(upload, str) and upload.filename:
        photo = await upload.read(settings.photo_max_bytes + 1)
    now = time.time()
    try:
        used = proof.verify(
            settings.secret_key.get_secret_value(),
            field("challenge"),
            field("nonce"),
            case_id,
            settings.tip_pow_bits,
            now,
        )
    except proof.ProofRefused as exc:
        return JSONResponse({"detail": _errors(("proof", str(exc)))}, status_code=403)
    client = get_redis()
    if not client.set(f"tips:pow:{used}", 1, nx=True, ex=settings.tip_challenge_ttl_s + 60):
        refused = ("proof", "this anti-abuse proof was used already; send the tip again")
        return JSONResponse({"detail": _errors(refused)}, status_code=403)
    address = request.client.host if request.client else "unknown"
    key = _address_key(settings, address, now)
    pipe = client.pipeline()
    pipe.incr(key)
    pipe.expire(key, 7200)
    if int(pipe.execute()[0]) > settings.tip_public_per_hour:
        retry = max(1, 3600 - int(now % 3600))
        return JSONResponse(
            {"detail": f"too many tips from this address; try again in {retry} s or call"},
            status_code=429,
            headers={"Retry-After": str(retry)},
        )

    def store() -> Response:
        case = _live_case(session, case_id)
        if isinstance(case, JSONResponse):
            return case
        try:
            row = tips.receive(
                session,
                case,
                tips.TipInput(
                    text=data.text,
                    seen_at=data.seen_at,
                    lat=data.lat,
                    lon=data.lon,
                    accuracy_m=data.accuracy_m,
                    photo=photo,
                    callback=data.callback,
                ),
                settings,
                source="public",
            )
        except tips.TipRefused as exc:
            if exc.status == 422:
                return JSONResponse({"detail": _errors((exc.field, str(exc)))}, status_code=422)
            return JSONResponse({"detail": str(exc)}, status_code=exc.status)
        session.commit()
        return JSONResponse({"id": row.id}, status_code=201)

    return await run_in_threadpool(store)


@router.get("/public/tips.js")
def script() -> Response:
    """The case page's tip script (same origin: the page's CSP allows no other)."""
    return Response(
        SCRIPT.read_bytes(),
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )
