"""Clean text from people: NFC, no control characters, no bidi overrides.

Free text entered by officers and partners ends up in pushes, SMS, CAP and Atom XML, JSON feeds
and the console. Control characters break XML (ElementTree writes them and the document is no
longer well-formed) and terminals; bidi overrides and isolates (U+202A-U+202E, U+2066-U+2069)
make a text display differently from what it says (a "Trojan Source" spoof of a tip line or a
name). Both are refused, never silently stripped, so the officer sees which field to fix.
Multi-line fields keep newlines and tabs (a browser's CRLF becomes LF).
"""

from __future__ import annotations

import unicodedata

BIDI_CONTROLS = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
_XML_NONCHARACTERS = frozenset("\ufffe\uffff")


def _check(value: str, allowed: frozenset[str]) -> str:
    text = unicodedata.normalize("NFC", value)
    for ch in text:
        if ch in allowed:
            continue
        if ch in BIDI_CONTROLS:
            raise ValueError(f"must not contain bidirectional control characters (U+{ord(ch):04X})")
        category = unicodedata.category(ch)
        if category in ("Cc", "Cs") or ch in _XML_NONCHARACTERS:
            raise ValueError(f"must not contain control characters (U+{ord(ch):04X})")
    return text


def clean_line(value: str) -> str:
    """One line of text: NFC, refusing control characters (newlines too) and bidi overrides."""
    return _check(value, frozenset())


def clean_text(value: str) -> str:
    """Multi-line text: as `clean_line`, but newlines and tabs are kept (CRLF becomes LF)."""
    return _check(value.replace("\r\n", "\n"), frozenset("\n\t"))
