"""Wireless Emergency Alert texts for the IPAWS CAP profile (pure, no I/O).

The IPAWS profile carries the phone texts in `<parameter>`s: CMAMtext of at most 90
characters and CMAMlongtext of at most 360, both in the GSM 03.38 alphabet (counted in septets,
so an extension character such as `€` counts twice). WEA carries English, so only English infos
get them. Names and places are made GSM-7-safe (accents dropped, typographic punctuation made
plain, other scripts left out); the tip line is never cut.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from datetime import timedelta
from zoneinfo import ZoneInfo

from channels import messages, sms
from channels.messages import AlertContent, MessageKind

CMAM_TEXT_MAX = 90
CMAM_LONG_TEXT_MAX = 360
EAS_ORG = "CIV"  # SAME originator: civil authorities (police issue every Reunite alert)
WEA_LANGUAGES = ("en",)
_PLAIN = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u2026": "...",
    "\uff0c": ",",
    "\u3001": ",",
    "\u3002": ".",
    "\uff1a": ":",
    "\uff08": "(",
    "\uff09": ")",
}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SEX = {messages.Sex.MALE: "boy", messages.Sex.FEMALE: "girl", messages.Sex.UNKNOWN: "child"}


def carries(language: str) -> bool:
    """Whether WEA texts go in an info of this language."""
    return language in WEA_LANGUAGES


def septets(text: str) -> int:
    """The GSM-7 length of a GSM-7-safe text."""
    return sms.count_units(text, sms.SmsEncoding.GSM7)


def gsm7(text: str) -> str:
    """The text in GSM-7 characters on one line; what has no GSM-7 form is left out."""
    out = []
    for ch in text:
        if ch.isspace():
            out.append(" ")
        elif sms.is_gsm7(ch):
            out.append(ch)
        elif ch in _PLAIN:
            out.append(_PLAIN[ch])
        else:
            base = unicodedata.normalize("NFKD", ch)
            out.append("".join(c for c in base if sms.is_gsm7(c) and not c.isspace()))
    return " ".join("".join(out).split())


def _field(text: str) -> str:
    """A name, place or clothing in GSM-7: empty if nothing readable is left (a Chinese name),
    without the punctuation its left-out words stood beside."""
    plain = gsm7(text).strip(" ,.;:-")
    return plain if any(ch.isalnum() for ch in plain) else ""


def _cut(text: str) -> str:
    keep = len(text) - max(4, len(text) // 4)
    return text[:keep].rstrip() + "..." if keep > 0 else ""


def _fit(build: Callable[[dict[str, str]], str], fields: dict[str, str], limit: int) -> str:
    """Shorten clothing, then place, then name until the text fits (the tip line never)."""
    fields = dict(fields)
    text = build(fields)
    for name in ("clothing", "place", "name"):
        while septets(text) > limit and fields[name]:
            fields[name] = _cut(fields[name])
            text = build(fields)
    if septets(text) > limit:  # only a mark and tip line longer than any WEA text
        text = text[: limit - 3] + "..."
    return text


def _when(c: AlertContent, tz: str) -> str:
    local = c.last_seen_at.astimezone(ZoneInfo(tz))
    minutes = int((local.utcoffset() or timedelta()).total_seconds() // 60)
    hours, mins = divmod(abs(minutes), 60)
    offset = f"UTC{'+' if minutes >= 0 else '-'}{hours}" + (f":{mins:02d}" if mins else "")
    return f"{local.day} {_MONTHS[local.month - 1]} {local:%H:%M} ({offset})"


def _describe(c: AlertContent) -> str:
    age = f"{c.age_years}-year-old " if c.age_years is not None else ""
    return f"{age}{_SEX[c.sex]}"


def _builders(c: AlertContent, tz: str) -> tuple[Callable, Callable]:
    mark = messages.mark(c.status, "en")  # "EXERCISE: " (ASCII), or "" for a real alert
    tip = gsm7(c.tip_line)
    desc = _describe(c)
    height = f", about {c.height_cm} cm" if c.height_cm is not None else ""
    link = gsm7(c.deep_link)

    def who(f: dict[str, str]) -> str:
        return f"{f['name']}, {desc}" if f["name"] else desc

    def of(f: dict[str, str]) -> str:
        return f" for {f['name']}" if f["name"] else ""

    def alert_short(f: dict[str, str]) -> str:
        return f"{mark}Missing child: {who(f)}. Call {tip}"

    def alert_long(f: dict[str, str]) -> str:
        wear = f", wearing {f['clothing']}" if f["clothing"] else ""
        place = f" at {f['place']}" if f["place"] else ""
        return (
            f"{mark}Missing child: {who(f)}{height}{wear}. Last seen {_when(c, tz)}{place}. "
            f"If you have information call {tip}. {link}"
        )

    def found_short(f: dict[str, str]) -> str:
        return f"{mark}Missing child alert{of(f)}: found safe. Thank you"

    def found_long(f: dict[str, str]) -> str:
        return (
            f"{mark}Missing child alert{of(f)}: the child has been found safe. "
            "Thank you to everyone who looked and shared."
        )

    def withdrawn_short(f: dict[str, str]) -> str:
        return f"{mark}Missing child alert{of(f)} withdrawn. Do not share"

    def withdrawn_long(f: dict[str, str]) -> str:
        return (
            f"{mark}The missing child alert{of(f)} has been withdrawn. "
            "Please do not share it further."
        )

    def ended_short(f: dict[str, str]) -> str:
        return f"{mark}Missing child alert{of(f)} ended. Info: call {tip}"

    def ended_long(f: dict[str, str]) -> str:
        return (
            f"{mark}The missing child alert{of(f)} has ended. "
            f"If you have information, still call {tip}."
        )

    return {
        MessageKind.RESOLVED: (found_short, found_long),
        MessageKind.CANCELLED: (withdrawn_short, withdrawn_long),
        MessageKind.EXPIRED: (ended_short, ended_long),
    }.get(c.kind, (alert_short, alert_long))


def texts(content: AlertContent, tz: str) -> tuple[str, str]:
    """CMAMtext (at most 90 septets) and CMAMlongtext (at most 360), GSM-7 only."""
    fields = {
        "name": _field(content.child_name),
        "clothing": _field(content.clothing),
        "place": _field(content.last_seen_place),
    }
    short, long = _builders(content, tz)
    return _fit(short, fields, CMAM_TEXT_MAX), _fit(long, fields, CMAM_LONG_TEXT_MAX)


def parameters(content: AlertContent, language: str, tz: str) -> list[tuple[str, str]]:
    """The IPAWS `<parameter>`s of one info: EAS-ORG always, the WEA texts in English."""
    out = [("EAS-ORG", EAS_ORG)]
    if carries(language):
        short, long = texts(content, tz)
        out += [("CMAMtext", short), ("CMAMlongtext", long)]
    return out
