"""The console in a real browser: Debian's Chromium driven by Playwright against `reunite serve`.

An officer creates a case with a photo, a supervisor enrols TOTP, signs in with it and approves,
the dashboard and delivery panel move as the worker targets registered devices, and the case is
resolved. Negative paths: lockout, missing CSRF token, an officer approving, bad uploads.
Screenshots of the main pages go to docs/screenshots/ for the README.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyotp
import pytest
from PIL import Image

from tests.factories import PASSWORD
from tests.workers import free_port, reunite_env, reunite_process, wait_for

pytestmark = pytest.mark.slow
playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
LAT, LON = 23.1291, 113.2644

if not Path(CHROMIUM).exists():  # .ci/run installs it; a bare checkout may not have it
    pytest.skip("Debian chromium is not installed", allow_module_level=True)


ENROLMENT_CODES: dict[str, str] = {}  # what the admin hands over for a first TOTP enrolment


def cli(args: list[str], env, cwd, stdin: str | None = None) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "alerts.cli", *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def _ready(http: httpx.Client) -> bool:
    try:
        return http.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`reunite serve` on embedded defaults with users, a partner and devices near the case."""
    tmp = tmp_path_factory.mktemp("console")
    env = reunite_env(
        DATABASE_URL=None,
        REDIS_URL=None,
        REUNITE_DATA_DIR=str(tmp / "d"),
        REUNITE_MODE="development",
        REUNITE_RELAY_INTERVAL_SECONDS="1",
        REUNITE_WAVE_TICK_SECONDS="1",
    )
    port = free_port()
    with reunite_process(["serve", "--port", str(port)], env, tmp, tmp / "serve.log"):
        base = f"http://127.0.0.1:{port}"
        http = httpx.Client(base_url=base, timeout=10)
        wait_for(lambda: _ready(http), timeout=90)
        for name, role, rank in [
            ("officer1", "officer", "constable"),
            ("sup1", "supervisor", "inspector"),
            ("ops1", "operator", "constable"),
            ("lockme", "officer", "constable"),
        ]:
            cli(
                [
                    "users",
                    "create",
                    name,
                    "--role",
                    role,
                    "--rank",
                    rank,
                    "--agency",
                    "Guangzhou",
                    "--password-stdin",
                ],
                env,
                tmp,
                stdin=PASSWORD + "\n",
            )
        for name in ("sup1", "ops1"):
            out = cli(["users", "enrolment-code", name], env, tmp)
            ENROLMENT_CODES[name] = out.strip().rsplit(" ", 1)[-1]
        out = cli(["partners", "create", "MapsApp", "--scope", "devices:write"], env, tmp)
        key = out.strip().rsplit(" ", 1)[-1]
        for i in range(12):
            res = http.put(
                f"/api/v1/partner/devices/dev-{i}",
                json={
                    "platform": "fcm",
                    "address": f"fcm-token-{i:04d}-abcdef",
                    "lat": LAT + 0.01 * i,
                    "lon": LON - 0.01 * i,
                },
                headers={"Authorization": f"Bearer {key}"},
            )
            assert res.status_code == 200, res.text
        yield base


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        # launch() gives every run a fresh temporary profile (user-data-dir).
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def new_page(browser, server):
    context = browser.new_context(base_url=server, viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    return page


def sign_in(page, username: str) -> None:
    page.goto("/console/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit] >> nth=-1")
    page.wait_for_load_state()


def english(page) -> None:
    """Switch the session to English (the screenshots; this machine has no CJK fonts)."""
    with page.expect_navigation():
        page.select_option("#language", "en")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def photo_bytes() -> bytes:
    img = Image.new("RGB", (480, 600), (236, 239, 244))
    for y in range(120, 480):
        for x in range(140, 340, 4):
            img.putpixel((x, y), (190, 60, 60))
    buf = io.BytesIO()
    img.save(buf, "JPEG")
    return buf.getvalue()


def fill_case(page, *, photo: dict | None) -> None:
    when = datetime.now(UTC) + timedelta(hours=8) - timedelta(minutes=35)
    page.fill("#f-child_name", "Lin Xiaoyu")
    page.select_option("#f-sex", "female")
    page.fill("#f-age_years", "6")
    page.fill("#f-height_cm", "115")
    page.fill("#f-clothing", "红色外套，蓝色牛仔裤")
    page.fill("#f-last_seen_at", when.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#f-lat", str(LAT))
    page.fill("#f-lon", str(LON))
    page.fill("#f-address", "广州市北京路步行街")
    page.fill("#f-tip_line", "+86 20 110")
    if photo:
        page.set_input_files("#f-photo", photo)


def test_officer_creates_supervisor_approves_delivery_moves_and_case_resolves(browser, server):
    officer = new_page(browser, server)
    officer.goto("/console/login")
    english(officer)
    shot(officer, "login")
    sign_in(officer, "officer1")
    assert officer.locator("#totp-prompt").is_visible()  # officers are prompted, not forced

    officer.goto("/console/cases/new")
    fill_case(
        officer, photo={"name": "child.jpg", "mimeType": "image/jpeg", "buffer": photo_bytes()}
    )
    shot(officer, "new-case")
    officer.click("button[name=action][value=submit]")
    officer.wait_for_url(re.compile(r"/console/cases/[0-9a-f-]{36}$"))
    case_id = officer.url.rsplit("/", 1)[-1]
    assert officer.locator("#case-state").inner_text() == "Submitted"
    assert officer.locator(".photos img").count() == 1
    # The officer's page stays open: it must turn active by itself once approved.
    officer.evaluate("() => { window.notReloaded = true; }")

    # The supervisor must enrol TOTP, then signs in again with a code from it.
    sup = new_page(browser, server)
    sup.goto("/console/login")
    english(sup)
    sign_in(sup, "sup1")
    assert sup.url.endswith("/console/totp/enrol")
    # The password alone never enrols: first the one-time code the admin handed over.
    assert sup.locator(".qr svg").count() == 0
    sup.fill("#enrolment_code", ENROLMENT_CODES["sup1"])
    sup.click("main button[type=submit]")
    sup.wait_for_url("**/console/totp/enrol")
    assert sup.locator(".qr svg").count() == 1
    shot(sup, "totp-enrol")
    secret = sup.locator("#totp-secret").inner_text().replace(" ", "")
    sup.fill("#code", pyotp.TOTP(secret).now())
    sup.click("main button[type=submit]")
    sup.wait_for_url(re.compile(r"/console/$"))
    sup.click("header button:has-text('Sign out')")
    sign_in(sup, "sup1")
    assert sup.url.endswith("/console/login/totp")
    # The enrolment used this step's code; the next step's is accepted (window of one step).
    sup.fill("#code", pyotp.TOTP(secret).at(time.time() + 30))
    sup.click("main button[type=submit]")
    sup.wait_for_url(re.compile(r"/console/$"))

    sup.goto("/console/approvals")
    sup.click(f"tr[data-case='{case_id}'] a")
    sup.wait_for_url(f"**/console/cases/{case_id}/review")
    assert sup.locator(".sms-count").count() == 2
    assert sup.locator("#reach tbody tr").count() >= 3
    # The map (Leaflet over the shipped basemap) draws the first three waves' rings, each
    # labelled with its wave number and radius.
    sup.locator("#review-map[data-ready='1'][data-basemap-ready='1']").wait_for()
    assert sup.locator("#review-map").get_attribute("data-rings") == "3"
    assert "100 km" in sup.locator("#review-map").get_attribute("data-map")
    shot(sup, "review")
    sup.click("#approve")
    sup.wait_for_url(f"**/console/cases/{case_id}")
    assert sup.locator("#case-state").inner_text() == "Active"

    # The officer's "Submitted" page learns of the approval by polling its status JSON and
    # swaps in the active view: no reload (the window flag survives), approver named.
    officer.bring_to_front()
    officer.wait_for_function(
        "() => document.querySelector('#case-live')?.dataset.state === 'active'", timeout=30_000
    )
    assert officer.evaluate("() => window.notReloaded === true")
    assert officer.locator("#case-state").inner_text() == "Active"
    assert re.fullmatch(
        r"approved by sup1 at \d\d:\d\d", officer.locator("#approved-by").inner_text()
    )
    assert officer.locator("#delivery-panel").count() == 1

    # The dashboard (polling) shows the case active and its reach growing past zero.
    officer.goto("/console/")
    row = officer.locator(f"table[data-state=active] tr[data-case='{case_id}']")
    row.wait_for()
    officer.wait_for_function(
        "id => { const c = document.querySelector(`tr[data-case='${id}'] .targeted`);"
        " return c && Number(c.textContent.replace(/,/g, '')) > 0; }",
        arg=case_id,
        timeout=60_000,
    )
    shot(officer, "dashboard")

    # The case page's delivery panel fills in from the channel ledger as the worker fans out.
    officer.goto(f"/console/cases/{case_id}")
    officer.wait_for_function(
        "() => [...document.querySelectorAll('#waves .targeted')]"
        ".some(c => Number(c.textContent.replace(/,/g, '')) > 0)",
        timeout=60_000,
    )
    officer.wait_for_function(
        "() => [...document.querySelectorAll('#delivery-totals tbody tr td.targeted')]"
        ".some(c => Number(c.textContent.replace(/,/g, '')) > 0)",
        timeout=60_000,
    )
    shot(officer, "case-active")

    officer.fill("#resolve-reason", "Found safe at the metro station")
    officer.click("#resolve")
    officer.wait_for_url(f"**/console/cases/{case_id}")
    assert officer.locator("#case-state").inner_text() == "Found"
    assert officer.locator('#timeline .timeline-entry[data-kind="resolved"]').count() == 1

    # The closed case stays findable: the case list, filtered to closed cases.
    officer.click("#nav-case-list")
    officer.wait_for_url("**/console/history")
    officer.select_option("#filter-state", "closed")
    officer.click("#filter-apply")
    row = officer.locator(f'#case-list tr[data-case="{case_id}"]')
    row.wait_for()
    assert row.locator(".outcome").inner_text() == "Found"
    shot(officer, "case-list")

    ops = new_page(browser, server)
    ops.goto("/console/login")
    english(ops)
    sign_in(ops, "ops1")
    ops.fill("#enrolment_code", ENROLMENT_CODES["ops1"])
    ops.click("main button[type=submit]")
    ops.wait_for_url("**/console/totp/enrol")
    secret = ops.locator("#totp-secret").inner_text().replace(" ", "")
    ops.fill("#code", pyotp.TOTP(secret).now())
    ops.click("main button[type=submit]")
    ops.wait_for_url(re.compile(r"/console/partners$"))
    assert ops.locator("#partners").inner_text().count("MapsApp") == 1
    shot(ops, "partners")
    ops.goto("/console/rules")
    ops.fill("#km-1", "50")  # smaller than row 0: refused, naming the row
    ops.click("#validate-rules")
    error = ops.locator("#rules-error").inner_text()
    assert "Row 1 · Radius (km)" in error and "(Row 0)" in error  # rows as the editor numbers
    ops.goto("/console/rules")
    ops.click("#run-preview")
    ops.locator("#rules-map[data-ready='1'][data-basemap-ready='1']").wait_for()
    shot(ops, "rules")


def test_new_case_place_is_set_on_the_map_and_by_address_without_third_party_requests(
    browser, server
):
    page = new_page(browser, server)
    hosts: set[str] = set()
    page.on("request", lambda r: hosts.add(r.url.split("/")[2]))
    page.goto("/console/login")
    english(page)
    sign_in(page, "officer1")
    page.goto("/console/cases/new")
    page.locator("#case-map[data-ready='1'][data-basemap-ready='1']").wait_for()
    assert page.input_value("#f-lat") == "" and page.input_value("#f-lon") == ""
    # A click on the map puts the marker there and fills in the coordinates.
    page.locator("#case-map").click(position={"x": 300, "y": 200})
    lat, lon = float(page.input_value("#f-lat")), float(page.input_value("#f-lon"))
    assert 15 < lat < 55 and 70 < lon < 140
    # Address lookup: Chinese query, English session; the picked result is shown in full.
    page.fill("#address-search", "广州")
    page.press("#address-search", "Enter")  # searches; never submits the case form
    first = page.locator("#address-results .result").first
    first.wait_for()
    assert "Guangzhou · Guangdong" in first.inner_text()
    first.click()
    assert (page.input_value("#f-lat"), page.input_value("#f-lon")) == ("23.11667", "113.25000")
    assert page.input_value("#f-address") == "Guangzhou, Guangdong, China"
    assert page.locator("#address-picked").inner_text() == (
        "Picked: Guangzhou, Guangdong, China · 23.11667, 113.25000"
    )
    assert page.url.endswith("/console/cases/new")
    # Typed coordinates move the marker.
    page.fill("#f-lat", "31.23")
    page.fill("#f-lon", "121.47")
    marker = page.evaluate(
        "() => { let at = null; window.ReuniteMaps.maps['case-map'].eachLayer(l => {"
        " if (l.getLatLng && l.options.draggable) at = l.getLatLng(); }); return at; }"
    )
    assert (round(marker["lat"], 2), round(marker["lng"], 2)) == (31.23, 121.47)
    assert hosts == {server.split("/")[2]}


def test_negative_paths_in_the_browser(browser, server):
    # Wrong passwords lock the account; then even the right one is refused.
    page = new_page(browser, server)
    for _ in range(5):
        page.goto("/console/login")
        page.fill("#username", "lockme")
        page.fill("#password", "not the password")
        page.click("main button[type=submit]")
    assert "锁定" in page.locator("#login-error").inner_text()
    sign_in(page, "lockme")
    assert "锁定" in page.locator("#login-error").inner_text()

    officer = new_page(browser, server)
    sign_in(officer, "officer1")
    request = officer.context.request
    # A state-changing request without the CSRF token is refused.
    res = request.post(f"{server}/console/cases", multipart={"child_name": "x"})
    assert res.status == 403

    # An officer cannot approve, not even their own case.
    officer.goto("/console/cases/new")
    fill_case(officer, photo=None)
    officer.click("button[name=action][value=submit]")
    officer.wait_for_url(re.compile(r"/console/cases/[0-9a-f-]{36}$"))
    case_id = officer.url.rsplit("/", 1)[-1]
    token = officer.locator("input[name=csrf_token]").first.get_attribute("value")
    assert officer.goto(f"/console/cases/{case_id}/review").status == 403
    res = request.post(f"{server}/console/cases/{case_id}/approve", form={"csrf_token": token})
    assert res.status == 403
    officer.goto(f"/console/cases/{case_id}")
    assert officer.locator("#case-state").inner_text() == "待审批"

    # Non-images: the form says so before sending; a disguised one is refused by the server.
    officer.goto("/console/cases/new")
    fill_case(officer, photo={"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"})
    officer.click("button[name=action][value=submit]")
    assert officer.locator("#client-errors").is_visible()
    assert officer.url.endswith("/console/cases/new")
    officer.set_input_files(
        "#f-photo", {"name": "child.jpg", "mimeType": "image/jpeg", "buffer": b"GIF89a fake"}
    )
    officer.click("button[name=action][value=submit]")
    officer.locator("#e-photo").wait_for()
    assert "JPEG" in officer.locator("#e-photo").inner_text()
    shot(officer, "form-errors")

    # Oversized: refused in the page, and by the server when the page is bypassed.
    big = b"\xff\xd8\xff" + b"\0" * (10 * 1024 * 1024 + 10)
    officer.goto("/console/cases/new")
    fill_case(officer, photo={"name": "big.jpg", "mimeType": "image/jpeg", "buffer": big})
    officer.click("button[name=action][value=submit]")
    assert "10 MB" in officer.locator("#client-errors").inner_text()
    token = officer.locator("input[name=csrf_token]").first.get_attribute("value")
    res = request.post(
        f"{server}/console/cases?csrf_token={token}",  # as the form's action carries it
        multipart={
            "csrf_token": token,
            "child_name": "x",
            "photo": {"name": "big.jpg", "mimeType": "image/jpeg", "buffer": big},
        },
    )
    assert res.status == 413
