"""CAP 1.2 rendering (pure, no I/O), held to the Google Public Alerts profile.

The feed service decides what a document says (msgType, references, texts per language, area,
photo); this module only writes it out: element order as the OASIS schema wants it, times as
`YYYY-MM-DDThh:mm:ss+hh:mm` with UTC written `-00:00` (CAP 1.2 §3.3.2; never `Z`), coordinates
at 6 decimals, one `info` per language with the event named in that language.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from xml.etree import ElementTree as ET

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
# `<event>` in each info's own language: the same text in two languages is what Google's
# validator flags as untranslated content. zh-CN uses the term of the alert texts (儿童失踪预警).
EVENTS = {"zh-CN": "儿童失踪", "en": "Missing child"}
EVENT = EVENTS["en"]
CATEGORY = "Rescue"
SAME_CODE = ("SAME", "CAE")
REUNITE_CODE = ("Reunite", "MISSING_CHILD")
HEADLINE_MAX = 139  # the profile: fewer than 140 characters


class Status(StrEnum):
    ACTUAL = "Actual"
    EXERCISE = "Exercise"
    TEST = "Test"


class MsgType(StrEnum):
    ALERT = "Alert"
    UPDATE = "Update"
    CANCEL = "Cancel"


@dataclass(frozen=True)
class Reference:
    sender: str
    identifier: str
    sent: datetime

    def text(self) -> str:
        """The `sender,identifier,sent` triple."""
        return f"{self.sender},{self.identifier},{cap_time(self.sent)}"


@dataclass(frozen=True)
class Resource:
    description: str
    mime_type: str
    uri: str
    digest: str  # SHA-1 hex of the file
    size: int | None = None


@dataclass(frozen=True)
class Info:
    language: str
    headline: str
    description: str
    instruction: str
    web: str
    contact: str
    # (valueName, value) pairs, e.g. the IPAWS profile's CMAMtext and CMAMlongtext.
    parameters: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Document:
    identifier: str
    sender: str
    sender_name: str  # the issuing agency, as people should read it
    sent: datetime
    status: Status
    msg_type: MsgType
    expires: datetime
    infos: list[Info]
    area_desc: str
    polygon: str | None  # closed "lat,lon" pairs
    circle: str | None  # "lat,lon radius_km"
    response_type: str = "Monitor"
    urgency: str = "Immediate"
    severity: str = "Severe"
    certainty: str = "Likely"
    references: list[Reference] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)
    note: str | None = None
    # Alert-level `<code>`s: the profiles the document follows (e.g. "IPAWSv1.0").
    codes: list[str] = field(default_factory=list)


def event(language: str) -> str:
    """The `<event>` in a language (English for one without its own term)."""
    return EVENTS.get(language, EVENT)


def cap_time(when: datetime) -> str:
    """CAP time in UTC: seconds precision, written `-00:00` as CAP 1.2 §3.3.2 asks (never `Z`)."""
    text = rfc3339(when)
    return text[: -len("+00:00")] + "-00:00"


def rfc3339(when: datetime) -> str:
    """RFC 3339 time in UTC for Atom and JSON (`+00:00`: there `-00:00` means "offset unknown")."""
    if when.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return when.astimezone(UTC).replace(microsecond=0).isoformat()


def six_decimals(text: str) -> str:
    """Rewrite every coordinate and radius in a CAP polygon or circle at 6 decimals at most."""

    def num(value: str) -> str:
        out = f"{float(value):.6f}".rstrip("0").rstrip(".")
        return "0" if out in ("-0", "") else out

    parts = []
    for token in text.split():
        parts.append(",".join(num(v) for v in token.split(",")))
    return " ".join(parts)


def headline(text: str, description: str, language: str = "en") -> str:
    """A headline under 140 characters that differs from the description."""
    text = " ".join(text.split())
    if len(text) > HEADLINE_MAX:
        text = text[: HEADLINE_MAX - 1].rstrip() + "…"
    if text == " ".join(description.split()):
        text = (event(language) + ": " + text)[:HEADLINE_MAX]
    return text


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    el = ET.SubElement(parent, f"{{{CAP_NS}}}{tag}")
    if text is not None:
        el.text = text
    return el


def render(doc: Document) -> bytes:
    """The CAP 1.2 XML of one document."""
    if not doc.infos:
        raise ValueError("a CAP document needs at least one info")
    ET.register_namespace("", CAP_NS)
    alert = ET.Element(f"{{{CAP_NS}}}alert")
    _sub(alert, "identifier", doc.identifier)
    _sub(alert, "sender", doc.sender)
    _sub(alert, "sent", cap_time(doc.sent))
    _sub(alert, "status", str(doc.status))
    _sub(alert, "msgType", str(doc.msg_type))
    _sub(alert, "scope", "Public")
    for code in doc.codes:
        _sub(alert, "code", code)
    if doc.note:
        _sub(alert, "note", doc.note)
    if doc.references:
        _sub(alert, "references", " ".join(r.text() for r in doc.references))
    for item in doc.infos:
        info = _sub(alert, "info")
        _sub(info, "language", item.language)
        _sub(info, "category", CATEGORY)
        _sub(info, "event", event(item.language))
        _sub(info, "responseType", doc.response_type)
        _sub(info, "urgency", doc.urgency)
        _sub(info, "severity", doc.severity)
        _sub(info, "certainty", doc.certainty)
        for name, value in (SAME_CODE, REUNITE_CODE):
            code = _sub(info, "eventCode")
            _sub(code, "valueName", name)
            _sub(code, "value", value)
        _sub(info, "expires", cap_time(doc.expires))
        _sub(info, "senderName", doc.sender_name)
        _sub(info, "headline", headline(item.headline, item.description, item.language))
        _sub(info, "description", item.description)
        if item.instruction:
            _sub(info, "instruction", item.instruction)
        _sub(info, "web", item.web)
        if item.contact:
            _sub(info, "contact", item.contact)
        for name, value in item.parameters:
            parameter = _sub(info, "parameter")
            _sub(parameter, "valueName", name)
            _sub(parameter, "value", value)
        for res in doc.resources:
            resource = _sub(info, "resource")
            _sub(resource, "resourceDesc", res.description)
            _sub(resource, "mimeType", res.mime_type)
            if res.size is not None:
                _sub(resource, "size", str(res.size))
            _sub(resource, "uri", res.uri)
            _sub(resource, "digest", res.digest)
        area = _sub(info, "area")
        _sub(area, "areaDesc", doc.area_desc)
        if doc.polygon:
            _sub(area, "polygon", six_decimals(doc.polygon))
        if doc.circle:
            _sub(area, "circle", six_decimals(doc.circle))
    return ET.tostring(alert, encoding="utf-8", xml_declaration=True)
