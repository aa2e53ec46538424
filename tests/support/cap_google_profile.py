"""A second opinion beside the OASIS XSD: the Google Public Alerts CAP profile.

Written from the rules google/cap-library applies (not from its code): the profile checks of
`profile/GoogleProfile.java`, the checks beyond the schema in `CapValidator.java`, the stricter
patterns of `schema/cap12_extended.xsd` and the CAP date pattern of `CapDateUtil.java`, plus the
published profile's limits that REFERENCE.md lists (event under 35 characters, headline under
140, one info per language, scope Public). Levels are the library's: an ERROR makes Google
refuse the alert; WARNING and RECOMMENDATION are what its validator reports; INFO is only a
note (every UTC time gets one, inviting a local offset).

`assert_google_profile` fails on anything but INFO. The enveloped signature is skipped, as the
library's parser does; signatures are checked separately (tests/support/cap_signatures.py).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from urllib.parse import urlsplit

from lxml import etree

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
NS = {"c": CAP_NS}


class Level(IntEnum):
    INFO = 0
    RECOMMENDATION = 1
    WARNING = 2
    ERROR = 3


@dataclass(frozen=True)
class Finding:
    level: Level
    rule: str
    where: str
    detail: str = ""


# CapDateUtil: seconds, optional hundredths or thousandths, a numeric offset (never Z).
DATE = re.compile(
    r"\d{4}-[01]\d-[0-3]\dT[0-2]\d:[0-5]\d:[0-5]\d(\.\d{2}\d?)?([+-])([01]\d):([0-5]\d)"
)
# cap12_extended.xsd: no whitespace, commas, "&" or "<" in identifier and sender.
TOKEN = r"[^\s,&<]+"
REF_DATE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[-,+]\d\d:\d\d"
REFERENCES = re.compile(rf"\s*{TOKEN},{TOKEN},{REF_DATE}(\s+{TOKEN},{TOKEN},{REF_DATE})*\s*")
CIRCLE = re.compile(r"\s*[+-]?\d{0,2}[.]?\d*,[+-]?\d{0,3}[.]?\d*\s[+]?\d*[.]?\d*\s*")
LANGUAGE = re.compile(r"[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*")  # RFC 3066
MEDIA_TYPES = {"application", "audio", "image", "message", "model", "multipart", "text", "video"}
HTML_TAG = re.compile(r"<([^\s>]+)(.*?)>")
BASE64 = re.compile(r"([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)?")
HUMAN_TEXT = ("description", "headline", "instruction", "event")
EVENT_MAX = 34  # fewer than 35 characters
HEADLINE_MAX = 139  # fewer than 140 characters


def _text(el: etree._Element, tag: str) -> str | None:
    value = el.findtext(f"c:{tag}", namespaces=NS)
    return value.strip() if value is not None else None


def _empty(value: str | None) -> bool:
    return value is None or not value.strip()


def _date(value: str) -> datetime | None:
    if not DATE.fullmatch(value):
        return None
    try:
        return datetime.fromisoformat(value.replace(",", "."))
    except ValueError:
        return None


def _absolute(uri: str) -> bool:
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    return bool(parts.scheme) and not any(c.isspace() for c in uri)


class _Report:
    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def add(self, level: Level, rule: str, where: str, detail: str = "") -> None:
        self.findings.append(Finding(level, rule, where, detail))


def check(xml: bytes) -> list[Finding]:
    """Every finding of the Google profile on one CAP 1.2 document."""
    root = etree.fromstring(xml)
    if root.tag != f"{{{CAP_NS}}}alert":
        return [Finding(Level.ERROR, "NOT_CAP_1_2", "/alert[1]", str(root.tag))]
    report = _Report()
    _alert(root, report)
    infos = root.findall("c:info", NS)
    for n, info in enumerate(infos, start=1):
        _info(root, info, f"/alert[1]/info[{n}]", report)
    _across_infos(infos, report)
    _strings(root, report)
    return report.findings


def _alert(root: etree._Element, report: _Report) -> None:
    where = "/alert[1]"
    for tag in ("identifier", "sender"):
        value = _text(root, tag) or ""
        if not re.fullmatch(TOKEN, value):
            report.add(Level.ERROR, f"INVALID_{tag.upper()}", f"{where}/{tag}[1]", value)
    sent = _text(root, "sent") or ""
    sent_at = _date(sent)
    if sent_at is None:
        report.add(Level.ERROR, "INVALID_DATE", f"{where}/sent[1]", sent)
    elif sent_at.utcoffset().total_seconds() == 0:
        report.add(Level.INFO, "SENT_INCLUDES_UTC_TIMEZONE", f"{where}/sent[1]")
    if _text(root, "status") == "Test":
        report.add(Level.RECOMMENDATION, "TEST_ALERT_DISCOURAGED", f"{where}/status[1]")
    scope = _text(root, "scope")
    if scope != "Public":
        report.add(Level.ERROR, "SCOPE_MUST_BE_PUBLIC", f"{where}/scope[1]", str(scope))
    if not _empty(_text(root, "restriction")) and scope != "Restricted":
        report.add(Level.ERROR, "RESTRICTION_SCOPE_MISMATCH", f"{where}/restriction[1]")
    references = _text(root, "references")
    if _text(root, "msgType") in ("Update", "Cancel") and _empty(references):
        report.add(Level.ERROR, "UPDATE_OR_CANCEL_MUST_REFERENCE", f"{where}/msgType[1]")
    if references:
        _references(root, references, sent_at, report)
    if not root.findall("c:info", NS):
        report.add(Level.ERROR, "INFO_IS_REQUIRED", where)


def _references(
    root: etree._Element, references: str, sent_at: datetime | None, report: _Report
) -> None:
    where = "/alert[1]/references[1]"
    if not REFERENCES.fullmatch(references):
        report.add(Level.ERROR, "INVALID_REFERENCES", where, references)
    for reference in references.split():
        parts = reference.split(",", 2)
        if len(parts) > 1 and parts[1] == _text(root, "identifier"):
            report.add(Level.ERROR, "CIRCULAR_REFERENCE", where, reference)
        referenced = _date(parts[2]) if len(parts) > 2 else None
        if referenced is not None and sent_at is not None and referenced > sent_at:
            report.add(Level.WARNING, "POSTDATED_REFERENCE", where, reference)


def _info(root: etree._Element, info: etree._Element, where: str, report: _Report) -> None:
    for tag in ("description", "web", "expires"):
        if _empty(_text(info, tag)):
            report.add(Level.ERROR, f"{tag.upper()}_IS_REQUIRED", where)
    for tag in ("urgency", "severity", "certainty"):
        value = _text(info, tag)
        if _empty(value):
            report.add(Level.ERROR, f"{tag.upper()}_IS_REQUIRED", where)
        elif value == "Unknown":
            report.add(Level.RECOMMENDATION, f"UNKNOWN_{tag.upper()}_DISCOURAGED", where)
    _times(root, info, where, report)
    language = _text(info, "language") or "en-US"
    if not LANGUAGE.fullmatch(language):
        report.add(Level.ERROR, "INVALID_LANGUAGE", f"{where}/language[1]", language)
    web = _text(info, "web")
    if web and not _absolute(web):
        report.add(Level.ERROR, "INVALID_WEB", f"{where}/web[1]", web)
    event = _text(info, "event") or ""
    if len(event) > EVENT_MAX:
        report.add(Level.ERROR, "EVENT_TOO_LONG", f"{where}/event[1]", event)
    _texts(info, where, report)
    for n, resource in enumerate(info.findall("c:resource", NS), start=1):
        _resource(resource, f"{where}/resource[{n}]", report)
    areas = info.findall("c:area", NS)
    if not areas:
        report.add(Level.ERROR, "AREA_IS_REQUIRED", where)
    for n, area in enumerate(areas, start=1):
        _area(area, f"{where}/area[{n}]", report)


def _times(root: etree._Element, info: etree._Element, where: str, report: _Report) -> None:
    parsed = {}
    for tag in ("effective", "onset", "expires"):
        value = _text(info, tag)
        if value is None:
            continue
        when = _date(value)
        if when is None:
            report.add(Level.ERROR, "INVALID_DATE", f"{where}/{tag}[1]", value)
            continue
        parsed[tag] = when
        if when.utcoffset().total_seconds() == 0:
            report.add(Level.INFO, f"{tag.upper()}_INCLUDES_UTC_TIMEZONE", f"{where}/{tag}[1]")
    effective = parsed.get("effective") or _date(_text(root, "sent") or "")
    if effective and "expires" in parsed and effective > parsed["expires"]:
        report.add(Level.ERROR, "EFFECTIVE_NOT_AFTER_EXPIRES", f"{where}/effective[1]")


def _texts(info: etree._Element, where: str, report: _Report) -> None:
    description = _text(info, "description") or ""
    headline = _text(info, "headline")
    instruction = _text(info, "instruction")
    if _empty(_text(info, "senderName")):
        report.add(Level.RECOMMENDATION, "SENDER_NAME_STRONGLY_RECOMMENDED", where)
    if not info.findall("c:responseType", NS):
        report.add(Level.RECOMMENDATION, "RESPONSE_TYPE_STRONGLY_RECOMMENDED", where)
    if _empty(instruction):
        report.add(Level.RECOMMENDATION, "INSTRUCTION_STRONGLY_RECOMMENDED", where)
    if _empty(_text(info, "contact")):
        report.add(Level.RECOMMENDATION, "CONTACT_IS_RECOMMENDED", where)
    if headline is not None and len(headline) > HEADLINE_MAX:
        report.add(Level.RECOMMENDATION, "HEADLINE_TOO_LONG", f"{where}/headline[1]")
    if headline is not None and headline == description:
        report.add(
            Level.RECOMMENDATION, "HEADLINE_AND_DESCRIPTION_SHOULD_DIFFER", f"{where}/headline[1]"
        )
    if not _empty(instruction) and instruction == description:
        report.add(
            Level.RECOMMENDATION,
            "DESCRIPTION_AND_INSTRUCTION_SHOULD_DIFFER",
            f"{where}/description[1]",
        )


def _resource(resource: etree._Element, where: str, report: _Report) -> None:
    mime = _text(resource, "mimeType") or ""
    if "/" not in mime or mime.split("/", 1)[0] not in MEDIA_TYPES:
        report.add(Level.ERROR, "INVALID_MIME_TYPE", f"{where}/mimeType[1]", mime)
    uri = _text(resource, "uri")
    deref = _text(resource, "derefUri")
    if uri is not None and not _absolute(uri) and deref is None:
        report.add(Level.ERROR, "RELATIVE_URI_MISSING_DEREF_URI", f"{where}/uri[1]", uri)
    if deref is not None and not BASE64.fullmatch(deref.replace("\n", "")):
        report.add(Level.ERROR, "INVALID_DEREF_URI", f"{where}/derefUri[1]")


def _area(area: etree._Element, where: str, report: _Report) -> None:
    polygons = [p.text or "" for p in area.findall("c:polygon", NS)]
    circles = [c.text or "" for c in area.findall("c:circle", NS)]
    geocodes = area.findall("c:geocode", NS)
    if not (polygons or circles or geocodes):
        report.add(Level.ERROR, "CIRCLE_POLYGON_OR_GEOCODE_IS_REQUIRED", where)
    elif not (polygons or circles):
        report.add(Level.RECOMMENDATION, "CIRCLE_POLYGON_ENCOURAGED", where)
    for n, text in enumerate(polygons, start=1):
        _polygon(text, f"{where}/polygon[{n}]", report)
    for n, text in enumerate(circles, start=1):
        if not CIRCLE.fullmatch(text):
            report.add(Level.ERROR, "INVALID_CIRCLE", f"{where}/circle[{n}]", text)
        elif float(text.split()[-1] or 0) == 0:
            report.add(Level.RECOMMENDATION, "NONZERO_CIRCLE_RADIUS_RECOMMENDED", where)
    for n, geocode in enumerate(geocodes, start=1):
        if _empty(_text(geocode, "valueName")) or _empty(_text(geocode, "value")):
            report.add(Level.RECOMMENDATION, "EMPTY_GEOCODE_FIELD", f"{where}/geocode[{n}]")
    altitude, ceiling = _text(area, "altitude"), _text(area, "ceiling")
    if ceiling is not None and altitude is None:
        report.add(Level.ERROR, "INVALID_AREA", where)
    if ceiling is not None and altitude is not None and float(altitude) > float(ceiling):
        report.add(Level.ERROR, "INVALID_ALTITUDE_CEILING_RANGE", f"{where}/ceiling[1]")


Point = tuple[float, float]


def _points(text: str) -> list[Point] | None:
    out = []
    for pair in text.split():
        try:
            lat, lon = (float(v) for v in pair.split(","))
        except ValueError:
            return None
        out.append((lat, lon if -180 <= lon <= 180 else (lon - 360 if lon > 180 else lon + 360)))
    return out


def _polygon(text: str, where: str, report: _Report) -> None:
    points = _points(text)
    if points is None or len(points) < 4 or points[0] != points[-1]:
        report.add(Level.ERROR, "INVALID_POLYGON", where, text[:50])
        return
    crossing = _self_intersection(points)
    if crossing:
        report.add(Level.ERROR, "INVALID_POLYGON_SELF_INTERSECTION", where, crossing)


def _orientation(a: Point, b: Point, c: Point) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _on_segment(a: Point, b: Point, p: Point) -> bool:
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def _segments_meet(p0: Point, p1: Point, p2: Point, p3: Point) -> bool:
    """Whether two closed segments share a point (touching and overlap included)."""
    d1, d2 = _orientation(p2, p3, p0), _orientation(p2, p3, p1)
    d3, d4 = _orientation(p0, p1, p2), _orientation(p0, p1, p3)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True
    return (
        (d1 == 0 and _on_segment(p2, p3, p0))
        or (d2 == 0 and _on_segment(p2, p3, p1))
        or (d3 == 0 and _on_segment(p0, p1, p2))
        or (d4 == 0 and _on_segment(p0, p1, p3))
    )


def _self_intersection(points: list[Point]) -> str | None:
    """Two non-adjacent edges that meet, as the library looks for them (skipping repeated
    points at either end, and the first and last edges, which share the closing point)."""
    start = 0
    while start < len(points) - 1 and points[start] == points[start + 1]:
        start += 1
    last = len(points) - 1
    while last > 0 and points[last] == points[last - 1]:
        last -= 1
    for i in range(start, last - 1):
        for j in range(i + 2, last):
            if i == start and j == last - 1:
                continue
            p0, p1, p2, p3 = points[i], points[i + 1], points[j], points[j + 1]
            if p1 == p2 or p0 == p1 or p2 == p3:
                continue
            if _segments_meet(p0, p1, p2, p3):
                return f"{p0}-{p1} meets {p2}-{p3}"
    return None


def _across_infos(infos: list[etree._Element], report: _Report) -> None:
    categories = eventcodes = None
    seen_text: dict[tuple[str, str], str] = {}
    events: dict[str, str] = {}
    languages: set[str] = set()
    for n, info in enumerate(infos, start=1):
        where = f"/alert[1]/info[{n}]"
        cats = {c.text for c in info.findall("c:category", NS)}
        codes = {
            (_text(c, "valueName"), _text(c, "value")) for c in info.findall("c:eventCode", NS)
        }
        if categories is not None and cats != categories:
            report.add(Level.ERROR, "CATEGORIES_MUST_MATCH", f"{where}/category[1]")
        if eventcodes is not None and codes != eventcodes:
            report.add(Level.ERROR, "EVENT_CODES_MUST_MATCH", f"{where}/eventCode[1]")
        categories, eventcodes = cats, codes
        language = _text(info, "language") or "en-US"
        if language in languages:
            report.add(Level.ERROR, "ONE_INFO_PER_LANGUAGE", f"{where}/language[1]", language)
        languages.add(language)
        event = _text(info, "event") or ""
        if events.setdefault(language, event) != event:
            report.add(Level.RECOMMENDATION, "EVENTS_IN_SAME_LANGUAGE_SHOULD_MATCH", where)
        primary = language.split("-")[0].lower()
        for tag in HUMAN_TEXT:
            value = info.findtext(f"c:{tag}", namespaces=NS)
            if value is None:
                continue
            if seen_text.setdefault((tag, value), primary) != primary:
                report.add(Level.WARNING, "SAME_TEXT_DIFFERENT_LANGUAGE", f"{where}/{tag}[1]")


def _strings(root: etree._Element, report: _Report) -> None:
    for el in root.iter(f"{{{CAP_NS}}}*"):
        text = el.text or ""
        if len(el) or not text:
            continue
        where = root.getroottree().getpath(el)
        if html.unescape(text) != text:
            report.add(Level.WARNING, "TEXT_CONTAINS_HTML_ENTITIES", where)
        if HTML_TAG.search(text):
            report.add(Level.WARNING, "TEXT_CONTAINS_HTML_TAGS", where)


def problems(xml: bytes) -> list[Finding]:
    """The findings that keep a document from passing (everything but INFO)."""
    return [f for f in check(xml) if f.level > Level.INFO]


def assert_google_profile(xml: bytes) -> None:
    """Fail with every finding above INFO."""
    found = problems(xml)
    assert not found, "\n".join(f"{f.level.name} {f.rule} at {f.where} {f.detail}" for f in found)
