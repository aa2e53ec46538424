"""The console in a real browser: Debian's Chromium driven by Playwright against `reunite serve`.

The walk-through, in English and in Chinese: an officer places a case on the map and by address
and submits it with a photo; a supervisor enrols TOTP, signs in with it and approves with the
whole case in view; the officer's Submitted page turns active by itself; rings, the dashboard
and the delivery panel move as the worker targets registered devices; a sighting is added, the
case resolved and found in the list of closed cases. No page, the API docs included, makes a
request to any host but Reunite's own. Negative paths: lockout, missing CSRF token, an officer
approving, bad uploads. Screenshots of each page go to docs/screenshots/ for the README.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pyotp
import pytest
from PIL import Image

from alerts.console import i18n
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
    port = free_port()
    env = reunite_env(
        DATABASE_URL=None,
        REDIS_URL=None,
        REUNITE_DATA_DIR=str(tmp / "d"),
        REUNITE_MODE="development",
        REUNITE_RELAY_INTERVAL_SECONDS="1",
        REUNITE_WAVE_TICK_SECONDS="1",
        REUNITE_TIP_POW_BITS="12",  # the public tip form's proof of work, quick in a test
        # Links in public pages (the case page's photo) point at this server, as in production.
        REUNITE_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
    )
    with reunite_process(["serve", "--port", str(port)], env, tmp, tmp / "serve.log"):
        base = f"http://127.0.0.1:{port}"
        http = httpx.Client(base_url=base, timeout=10)
        wait_for(lambda: _ready(http), timeout=90)
        for name, role, rank in [
            ("officer1", "officer", "constable"),
            ("sup1", "supervisor", "inspector"),
            ("sup2", "supervisor", "inspector"),
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
        for name in ("sup1", "sup2", "ops1"):
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


REQUESTS: list = []  # every request a page of the walk-through made


def hosts_contacted() -> set[str]:
    """The hosts the browser sent requests to. A request the page's Content-Security-Policy
    refused never left the browser (Redoc's sidebar always tries to fetch its logo from
    cdn.redoc.ly; the docs pages' policy blocks it)."""
    return {
        urlsplit(r.url).netloc
        for r in REQUESTS
        if urlsplit(r.url).netloc and r.failure != "csp"  # Chromium's word for a CSP refusal
    }


def new_page(browser, server, **options):
    context = browser.new_context(
        base_url=server, viewport={"width": 1360, "height": 900}, **options
    )
    context.on("request", lambda r: REQUESTS.append(r))
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
    """Switch the session to English (the console's default is zh-CN)."""
    with page.expect_navigation():
        page.select_option("#language", "en")


def choose_language(page, lang: str) -> None:
    page.goto("/console/login")
    if lang == "en":
        english(page)


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


def local_input(minutes_ago: int) -> str:
    """A datetime-local value in the console's zone (Asia/Shanghai, UTC+8)."""
    when = datetime.now(UTC) + timedelta(hours=8) - timedelta(minutes=minutes_ago)
    return when.strftime("%Y-%m-%dT%H:%M")


def fill_case(page, *, photo: dict | None, place: bool = True) -> None:
    page.fill("#f-child_name", "Lin Xiaoyu")
    page.select_option("#f-sex", "female")
    page.fill("#f-age_years", "6")
    page.fill("#f-height_cm", "115")
    page.fill("#f-clothing", "红色外套，蓝色牛仔裤")
    page.fill("#f-last_seen_at", local_input(35))
    if place:
        page.fill("#f-lat", str(LAT))
        page.fill("#f-lon", str(LON))
    page.fill("#f-address", "广州市北京路步行街")
    page.fill("#f-tip_line", "+86 20 110")
    if photo:
        page.set_input_files("#f-photo", photo)


def place_on_map_then_by_address(page, query: str) -> None:
    """The officer clicks the map, then looks the city up: the coordinates follow each."""
    page.locator("#case-map[data-ready='1'][data-basemap-ready='1']").wait_for()
    assert page.input_value("#f-lat") == "" and page.input_value("#f-lon") == ""
    page.locator("#case-map").click(position={"x": 300, "y": 200})
    lat, lon = float(page.input_value("#f-lat")), float(page.input_value("#f-lon"))
    assert 15 < lat < 55 and 70 < lon < 140
    page.fill("#address-search", query)
    page.press("#address-search", "Enter")  # searches; never submits the case form
    first = page.locator("#address-results .result").first
    first.wait_for()
    first.click()
    assert (page.input_value("#f-lat"), page.input_value("#f-lon")) == ("23.11667", "113.25000")
    assert "23.11667, 113.25000" in page.locator("#address-picked").inner_text()


SECRETS: dict[str, str] = {}  # TOTP secrets of the supervisors enrolled so far


def sign_in_supervisor(page, name: str, *, screenshot: bool) -> None:
    """First sign-in: the admin's one-time code, then TOTP enrolment; then a fresh sign-in."""
    sign_in(page, name)
    assert page.url.endswith("/console/totp/enrol")
    # The password alone never enrols: first the one-time code the admin handed over.
    assert page.locator(".qr svg").count() == 0
    page.fill("#enrolment_code", ENROLMENT_CODES[name])
    page.click("main button[type=submit]")
    page.wait_for_url("**/console/totp/enrol")
    assert page.locator(".qr svg").count() == 1
    if screenshot:
        shot(page, "totp-enrol")
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    SECRETS[name] = secret
    page.fill("#code", pyotp.TOTP(secret).now())
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r"/console/$"))
    page.click("header form[action$='/logout'] button")
    sign_in(page, name)
    assert page.url.endswith("/console/login/totp")
    # The enrolment used this step's code; the next step's is accepted (window of one step).
    page.fill("#code", pyotp.TOTP(secret).at(time.time() + 30))
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r"/console/$"))


def number_in(page, selector: str) -> int:
    return int(page.locator(selector).inner_text().replace(",", "") or 0)


@pytest.mark.parametrize(
    ("lang", "supervisor", "query"), [("en", "sup1", "Guangzhou"), ("zh-CN", "sup2", "广州")]
)
def test_walk_through_from_the_map_to_the_closed_list(browser, server, lang, supervisor, query):
    """The whole flow in each language, every page served by Reunite alone: an officer places
    the case on the map and by address, the supervisor approves with the whole case in view,
    the officer's Submitted page turns active by itself, rings and live counts appear, a
    sighting is added, the case is resolved and found again in the list of closed cases."""
    say = i18n.MESSAGES[lang]
    sfx = "" if lang == "en" else "-zh"
    REQUESTS.clear()

    officer = new_page(browser, server)
    choose_language(officer, lang)
    if lang == "en":
        shot(officer, "login")
    sign_in(officer, "officer1")
    assert officer.locator("#totp-prompt").is_visible()  # officers are prompted, not forced

    officer.goto("/console/cases/new")
    place_on_map_then_by_address(officer, query)
    fill_case(
        officer,
        photo={"name": "child.jpg", "mimeType": "image/jpeg", "buffer": photo_bytes()},
        place=False,
    )
    shot(officer, "new-case" + sfx)
    officer.click("button[name=action][value=submit]")
    officer.wait_for_url(re.compile(r"/console/cases/[0-9a-f-]{36}$"))
    case_id = officer.url.rsplit("/", 1)[-1]
    assert officer.locator("#case-state").inner_text() == say["state.submitted"]
    assert officer.locator(".photos img").count() == 1
    # The officer's page stays open: it must turn active by itself once approved.
    officer.evaluate("() => { window.notReloaded = true; }")

    sup = new_page(browser, server)
    choose_language(sup, lang)
    sign_in_supervisor(sup, supervisor, screenshot=lang == "en")
    sup.goto("/console/approvals")
    sup.click(f"tr[data-case='{case_id}'] a")
    sup.wait_for_url(f"**/console/cases/{case_id}/review")
    # The whole case as it will be published: photo, fields and the texts per language.
    review = sup.locator("#review-case")
    assert review.locator("dd[data-field=child_name]").inner_text() == "Lin Xiaoyu"
    assert "红色外套" in review.locator("dd[data-field=clothing]").inner_text()
    assert "广州市北京路步行街" in review.locator("dd[data-field=address]").inner_text()
    assert sup.locator("#review-photos img").count() == 1
    assert sup.locator(".cap-headline").count() == 2  # zh-CN and en
    assert sup.locator(".sms-count").count() == 2
    assert sup.locator("#reach tbody tr").count() >= 3
    # The map (Leaflet over the shipped basemap) draws the first three waves' rings, each
    # labelled with its wave number and radius.
    sup.locator("#review-map[data-ready='1'][data-basemap-ready='1']").wait_for()
    assert sup.locator("#review-map").get_attribute("data-rings") == "3"
    assert "100 km" in sup.locator("#review-map").get_attribute("data-map")
    shot(sup, "review" + sfx)
    sup.click("#approve")
    sup.wait_for_url(f"**/console/cases/{case_id}")
    assert sup.locator("#case-state").inner_text() == say["state.active"]

    # The officer's "Submitted" page learns of the approval by polling its status JSON and
    # swaps in the active view: no reload (the window flag survives), approver named.
    officer.bring_to_front()
    officer.locator("#case-live[data-state='active']").wait_for(timeout=30_000)
    assert officer.evaluate("() => window.notReloaded === true")
    assert officer.locator("#case-state").inner_text() == say["state.active"]
    approved = re.escape(say["live.approved_by"])
    approved = approved.replace(re.escape("{name}"), supervisor)
    approved = approved.replace(re.escape("{at}"), r"\d\d:\d\d")
    assert re.fullmatch(approved, officer.locator("#approved-by").inner_text())
    assert officer.locator("#delivery-panel").count() == 1
    # ...and the swapped-in page draws its map: the first wave's ring, live.
    officer.locator("#case-area-map[data-ready='1']").wait_for()

    # The dashboard (polling) shows the case active, on its map, and targeted past zero.
    officer.goto("/console/")
    officer.locator(f"table[data-state=active] tr[data-case='{case_id}']").wait_for()
    officer.wait_for_function(
        "id => { const c = document.querySelector(`tr[data-case='${id}'] .targeted`);"
        " return c && Number(c.textContent.replace(/,/g, '')) > 0; }",
        arg=case_id,
        timeout=60_000,
    )
    officer.locator("#dashboard-map[data-ready='1']").wait_for()
    assert int(officer.locator("#dashboard-map").get_attribute("data-points")) >= 1
    shot(officer, "dashboard" + sfx)

    # The case page: rings on the map, counts that move by themselves as the worker fans out.
    officer.goto(f"/console/cases/{case_id}")
    officer.wait_for_function(
        "() => Number(document.querySelector('#count-targeted').textContent.replace(/,/g, '')) > 0",
        timeout=60_000,
    )
    officer.wait_for_function(
        "() => [...document.querySelectorAll('#delivery-totals tbody tr td.targeted')]"
        ".some(c => Number(c.textContent.replace(/,/g, '')) > 0)",
        timeout=60_000,
    )
    area = officer.locator("#case-area-map[data-ready='1']")
    area.wait_for()
    assert int(area.get_attribute("data-rings")) >= 1
    assert officer.locator("#case-area-map path.ring-current").count() == 1
    shot(officer, "case-active" + sfx)

    # A tip from the public case page (its own script solves the proof of work) appears in
    # the officer's tips panel by itself and on the case map; marked credible, one click
    # makes it the case's sighting.
    public = new_page(browser, server, timezone_id="Asia/Shanghai")  # a phone in Guangzhou
    public.goto(f"/c/{case_id}")
    public.locator("#tip-form:not([hidden])").wait_for()
    public.fill("#tip-text", "在体育西路地铁站看到穿红色外套的小女孩")
    public.fill("#tip-seen-at", local_input(10))
    public.fill("#tip-lat", str(LAT + 0.03))
    public.fill("#tip-lon", str(LON + 0.01))
    public.fill("#tip-accuracy", "30")
    public.fill("#tip-callback", "+86 138 0013 8000")
    public.click("#tip-send")
    form = public.locator("#tip-form")
    sent, working = form.get_attribute("data-sent"), form.get_attribute("data-working")
    status = public.locator("#tip-status")
    deadline = time.monotonic() + 30
    while status.inner_text() in ("", working) and time.monotonic() < deadline:
        time.sleep(0.2)  # the page's CSP allows no evaluated script: poll from here
    assert sent in status.inner_text(), status.inner_text()
    public.context.close()
    tip = officer.locator("#tips-list > li[data-state='new']").first
    tip.wait_for(timeout=30_000)  # the panel polls; no reload
    tip_id = tip.get_attribute("id")  # tip-N
    assert "体育西路" in officer.locator(f"#{tip_id}-text").inner_text()
    officer.reload()
    officer.locator("#case-area-map[data-ready='1'] .point-tip").first.wait_for()
    if lang == "en":
        shot(officer, "tips")
    officer.click(f"#{tip_id}-credible")
    officer.locator(f"#{tip_id}[data-state='credible']").wait_for()
    officer.click(f"#{tip_id}-promote")
    officer.locator(f"#{tip_id}-promoted").wait_for()
    officer.locator('#timeline .timeline-entry[data-kind="sighting"]').wait_for()

    # A sighting typed in (within the live-change distance, so no second person is needed).
    sighting = officer.locator("form[action$='/sightings']")
    sighting.locator("input[name=at]").fill(local_input(5))
    sighting.locator("input[name=lat]").fill(str(LAT + 0.02))
    sighting.locator("input[name=lon]").fill(str(LON + 0.02))
    sighting.locator("input[name=address]").fill("天河区体育西路")
    sighting.locator("button[type=submit]").click()
    officer.wait_for_url(f"**/console/cases/{case_id}")
    assert officer.locator('#timeline .timeline-entry[data-kind="sighting"]').count() == 2
    assert "广州市北京路步行街" in officer.locator("#origin-place").inner_text()
    officer.locator("#case-area-map[data-ready='1'] .point-sighting").first.wait_for()

    officer.fill("#resolve-reason", "Found safe at the metro station")
    officer.click("#resolve")
    officer.wait_for_url(f"**/console/cases/{case_id}")
    assert officer.locator("#case-state").inner_text() == say["state.resolved"]
    assert officer.locator('#timeline .timeline-entry[data-kind="resolved"]').count() == 1
    # The outcome (found safe, preselected) and that a tip helped are kept for statistics.
    outcome = officer.locator("#case-outcome").inner_text()
    assert say["outcome.found_safe"] in outcome and say["outcome.after_tip"] in outcome

    # The reach report: per wave, channel and partner, with the delivery plot drawn server-side.
    officer.click("#reach-link a")
    officer.wait_for_url(f"**/console/cases/{case_id}/reach")
    assert officer.locator("#reach-waves tbody tr").count() >= 1
    assert officer.locator("#reach-plot").evaluate("i => i.decode().then(() => i.naturalWidth)") > 0
    if lang == "en":
        shot(officer, "reach")

    # The closed case stays findable: the case list, filtered to closed cases.
    officer.click("#nav-case-list")
    officer.wait_for_url("**/console/history")
    officer.select_option("#filter-state", "closed")
    officer.click("#filter-apply")
    row = officer.locator(f'#case-list tr[data-case="{case_id}"]')
    row.wait_for()
    assert row.locator(".outcome").inner_text() == say["state.resolved"]
    shot(officer, "case-list" + sfx)

    if lang == "en":
        operator_pages(browser, server)
    # Nothing any page asked for left Reunite's own host: no CDN, tiles or fonts elsewhere.
    own = urlsplit(server).netloc
    elsewhere = sorted({r.url for r in REQUESTS if urlsplit(r.url).netloc != own})
    assert hosts_contacted() == {own}, elsewhere


def operator_pages(browser, server) -> None:
    """Partner health, the rules editor and preview, and the API documentation."""
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
    # Outcome statistics: the walk-through's case counts as recovered after a tip.
    ops.goto("/console/stats")
    assert ops.locator("#stats-total").count() == 1
    shot(ops, "stats")
    # The API documentation renders from Reunite's own copies of Swagger UI and Redoc.
    ops.goto("/docs")
    ops.locator(".swagger-ui .info .title").wait_for()
    ops.goto("/redoc")
    ops.locator("redoc .api-info h1, [role=navigation]").first.wait_for()


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
