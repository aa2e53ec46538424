"""The tip form on the public case page: a self-hosted script, a signed proof of work that is
used once, a limit per address, and the same checks as a partner's tip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lxml import html
from sqlalchemy import select

from alerts.feeds import public
from alerts.tips import pow as proof
from alerts.tips.models import Tip
from ops.platform.config import get_settings
from ops.platform.db import session_scope
from tests.factories import jpeg_with_gps
from tests.integration.partners.support import close
from tests.integration.tips.support import MARKER, live_case


def solved(api, case_id: str) -> dict[str, str]:
    res = api.get(f"/c/{case_id}/tips/challenge")
    assert res.status_code == 200, res.text
    assert res.headers["cache-control"] == "no-store"
    body = res.json()
    assert body["bits"] == 8
    return {"challenge": body["challenge"], "nonce": str(proof.solve(body["challenge"], 8))}


def form(**overrides) -> dict[str, str]:
    data = {
        "text": f"I saw her at the bus stop {MARKER}",
        "seen_at": (datetime.now(UTC) - timedelta(minutes=3)).isoformat(),
        "lat": "23.135",
        "lon": "113.28",
        "accuracy_m": "40",
        "callback": "13800138000",
    }
    data.update(overrides)
    return data


def test_the_live_page_has_the_form_its_own_script_and_a_no_script_notice(world, api):
    case_id, _ = live_case(world)
    public.forget()
    res = api.get(f"/c/{case_id}?lang=en")
    doc = html.fromstring(res.text)
    tip_form = doc.get_element_by_id("tip-form")
    assert tip_form.get("data-action") == f"/c/{case_id}/tips"
    assert tip_form.get("hidden") is not None, "hidden until the script can prove the work"
    assert "needs JavaScript" in doc.xpath("//noscript")[0].text_content()
    scripts = doc.xpath("//script")
    assert [s.get("src") for s in scripts] == ["/public/tips.js"]
    assert all(not (s.text or "").strip() for s in scripts), "no inline script"
    csp = res.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1]
    js = api.get("/public/tips.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "sha256FirstWord" in js.text
    assert "Too many tips" in tip_form.get("data-limited")


def test_a_tip_with_a_solved_proof_is_stored_and_the_proof_works_once(world, api):
    case_id, _ = live_case(world)
    proofs = solved(api, case_id)
    photo = {"photo": ("me.jpg", jpeg_with_gps(), "image/jpeg")}
    res = api.post(f"/c/{case_id}/tips", data=form() | proofs, files=photo)
    assert res.status_code == 201, res.text
    with session_scope() as s:
        tip = s.get(Tip, res.json()["id"])
        assert tip.source == "public" and tip.partner_id is None and MARKER in tip.text
        assert tip.accuracy_m == 40 and tip.photo_ref and b"138" not in tip.callback_enc
    again = api.post(f"/c/{case_id}/tips", data=form() | proofs)
    assert again.status_code == 403 and again.json()["detail"][0]["field"] == "proof"
    assert "used already" in again.json()["detail"][0]["message"]


def test_no_proof_a_wrong_nonce_or_another_case_s_challenge_is_refused(world, api):
    case_id, _ = live_case(world)
    other_id, _ = live_case(world)
    refused = [
        api.post(f"/c/{case_id}/tips", data=form()),
        api.post(f"/c/{case_id}/tips", data=form() | solved(api, case_id) | {"nonce": "x"}),
        api.post(f"/c/{case_id}/tips", data=form() | solved(api, other_id)),
    ]
    challenge = solved(api, case_id)["challenge"]
    nonce = next(
        n
        for n in range(10_000)
        if proof.leading_zero_bits(
            __import__("hashlib").sha256(f"{challenge}:{n}".encode()).digest()
        )
        < 8
    )
    refused.append(api.post(f"/c/{case_id}/tips", data=form(challenge=challenge, nonce=str(nonce))))
    for res in refused:
        assert res.status_code == 403, res.text
        assert res.json()["detail"][0]["field"] == "proof"
    with session_scope() as s:
        assert s.scalar(select(Tip.id)) is None


def test_fields_are_checked_by_name_before_any_work_is_spent(world, api):
    case_id, _ = live_case(world)
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    for override, field in [
        ({"text": ""}, "text"),
        ({"seen_at": future}, "seen_at"),
        ({"lat": "95"}, "lat"),
        ({"lon": ""}, "lon"),
        ({"accuracy_m": "-3"}, "accuracy_m"),
        ({"callback": "not a number"}, "callback"),
    ]:
        res = api.post(f"/c/{case_id}/tips", data=form(**override))
        assert res.status_code == 422, (override, res.text)
        assert field in {e["field"] for e in res.json()["detail"]}, res.json()
        assert MARKER not in res.text
    photo = {"photo": ("x.jpg", b"not an image", "image/jpeg")}
    res = api.post(f"/c/{case_id}/tips", data=form() | solved(api, case_id), files=photo)
    assert res.status_code == 422 and res.json()["detail"][0]["field"] == "photo"


def test_each_address_may_send_only_so_many_tips_an_hour(world, api, monkeypatch):
    monkeypatch.setenv("REUNITE_TIP_PUBLIC_PER_HOUR", "2")
    get_settings.cache_clear()
    case_id, _ = live_case(world)
    codes = [
        api.post(f"/c/{case_id}/tips", data=form() | solved(api, case_id)).status_code
        for _ in range(3)
    ]
    assert codes == [201, 201, 429], codes
    last = api.post(f"/c/{case_id}/tips", data=form() | solved(api, case_id))
    assert last.status_code == 429 and 0 < int(last.headers["retry-after"]) <= 3600
    from ops.platform.redis_client import get_redis

    keys = [k.decode() for k in get_redis().scan_iter("tips:public:*")]
    assert keys and not any("testclient" in k or "127.0.0.1" in k for k in keys)


def test_a_closed_case_takes_no_tips_and_says_so(world, api):
    case_id, _ = live_case(world)
    proofs = solved(api, case_id)
    close(world, case_id)
    assert api.get(f"/c/{case_id}/tips/challenge").status_code == 409
    res = api.post(f"/c/{case_id}/tips", data=form() | proofs)
    assert res.status_code == 409 and "tip line" in res.json()["detail"]
    assert api.get("/c/no-such-case/tips/challenge").status_code == 404
    public.forget()
    assert "tip-form" not in api.get(f"/c/{case_id}").text
