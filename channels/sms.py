"""SMS encoding and splitting (pure, no I/O).

A text goes out as GSM-7 when every character is in the GSM 03.38 default alphabet or its
extension table, otherwise as UCS-2 (which Chinese always needs). The plan this module returns
is what the SMPP channel submits and what the console previews ("2 parts, 134 chars").

GSM-7 parts are encoded unpacked, one septet per octet, which is what SMPP data_coding 0
(the SMSC default alphabet) carries; an extension character is the escape 0x1B plus its code.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

# GSM 03.38 default alphabet; index is the septet value. 0x1B is the escape to the extension table.
_GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_ESCAPE = 0x1B
GSM_BASIC: dict[str, int] = {ch: i for i, ch in enumerate(_GSM_BASIC) if i != GSM_ESCAPE}
GSM_EXTENSION: dict[str, int] = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}
GSM_DECODE_BASIC: dict[int, str] = {v: k for k, v in GSM_BASIC.items()}
GSM_DECODE_EXTENSION: dict[int, str] = {v: k for k, v in GSM_EXTENSION.items()}

GSM7_SINGLE = 160
GSM7_PART = 153
UCS2_SINGLE = 70
UCS2_PART = 67

# "…" is not in GSM-7, so a GSM-7 text is cut with three dots to stay in the cheaper encoding.
_ELLIPSIS = {"gsm7": "...", "ucs2": "…"}


class SmsEncoding(StrEnum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"

    @property
    def data_coding(self) -> int:
        """The SMPP data_coding value for this encoding."""
        return 0 if self is SmsEncoding.GSM7 else 8

    @property
    def single_limit(self) -> int:
        """Units (septets or UTF-16 code units) that fit in an unsplit message."""
        return GSM7_SINGLE if self is SmsEncoding.GSM7 else UCS2_SINGLE

    @property
    def part_limit(self) -> int:
        """Units per part of a concatenated message (the 6-byte UDH takes the rest)."""
        return GSM7_PART if self is SmsEncoding.GSM7 else UCS2_PART


@dataclass(frozen=True, slots=True)
class SmsPart:
    text: str
    payload: bytes  # encoded user data without UDH
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2


@dataclass(frozen=True, slots=True)
class SmsPlan:
    text: str  # the text actually sent (truncated when `truncated`)
    encoding: SmsEncoding
    parts: tuple[SmsPart, ...]
    truncated: bool
    original_char_count: int

    @property
    def part_count(self) -> int:
        """How many SMS this text costs."""
        return len(self.parts)

    @property
    def char_count(self) -> int:
        """Characters (code points) in the text that is sent."""
        return len(self.text)

    @property
    def unit_count(self) -> int:
        """Septets or UTF-16 code units in the text that is sent."""
        return sum(p.units for p in self.parts)

    @property
    def data_coding(self) -> int:
        """The SMPP data_coding value."""
        return self.encoding.data_coding

    @property
    def payload(self) -> bytes:
        """The whole encoded text, for a message_payload TLV."""
        return b"".join(p.payload for p in self.parts)

    def summary(self) -> str:
        """Console preview, e.g. '2 parts, 134 chars (ucs2)'."""
        noun = "part" if self.part_count == 1 else "parts"
        cut = ", truncated" if self.truncated else ""
        return f"{self.part_count} {noun}, {self.char_count} chars ({self.encoding}){cut}"


def is_gsm7(text: str) -> bool:
    """True when every character has a GSM-7 encoding."""
    return all(ch in GSM_BASIC or ch in GSM_EXTENSION for ch in text)


def detect_encoding(text: str) -> SmsEncoding:
    """GSM-7 when possible (160 per SMS), else UCS-2 (70 per SMS)."""
    return SmsEncoding.GSM7 if is_gsm7(text) else SmsEncoding.UCS2


def char_units(ch: str, encoding: SmsEncoding) -> int:
    """Units one character occupies: 2 for GSM-7 extension chars and UCS-2 astral chars."""
    if encoding is SmsEncoding.GSM7:
        return 2 if ch in GSM_EXTENSION else 1
    return 2 if ord(ch) > 0xFFFF else 1


def count_units(text: str, encoding: SmsEncoding) -> int:
    """Units the whole text occupies in the given encoding."""
    return sum(char_units(ch, encoding) for ch in text)


def encode(text: str, encoding: SmsEncoding) -> bytes:
    """Encode text for SMPP short_message: unpacked GSM-7 septets or UTF-16-BE."""
    if encoding is SmsEncoding.UCS2:
        return text.encode("utf-16-be")
    out = bytearray()
    for ch in text:
        if ch in GSM_EXTENSION:
            out += bytes((GSM_ESCAPE, GSM_EXTENSION[ch]))
        else:
            out.append(GSM_BASIC[ch])
    return bytes(out)


def decode(payload: bytes, data_coding: int) -> str:
    """Decode a short_message by data_coding (0 unpacked GSM-7, 8 UCS-2); used by the test SMSC."""
    if data_coding == 8:
        return payload.decode("utf-16-be")
    chars: list[str] = []
    it = iter(payload)
    for b in it:
        if b == GSM_ESCAPE:
            nxt = next(it, None)
            chars.append(GSM_DECODE_EXTENSION.get(nxt, " ") if nxt is not None else "")
        else:
            chars.append(GSM_DECODE_BASIC.get(b, "?"))
    return "".join(chars)


def _pack(text: str, encoding: SmsEncoding, limit: int) -> Iterator[str]:
    """Greedy split on character boundaries, so no extension pair or surrogate pair is cut."""
    chunk: list[str] = []
    used = 0
    for ch in text:
        u = char_units(ch, encoding)
        if used + u > limit:
            yield "".join(chunk)
            chunk, used = [], 0
        chunk.append(ch)
        used += u
    if chunk:
        yield "".join(chunk)


def _split(text: str, encoding: SmsEncoding) -> list[str]:
    if count_units(text, encoding) <= encoding.single_limit:
        return [text] if text else []
    return list(_pack(text, encoding, encoding.part_limit))


def _truncate(text: str, encoding: SmsEncoding, max_parts: int) -> str:
    """Longest prefix plus ellipsis that packs into max_parts (packing is monotone: bisect)."""
    ellipsis = _ELLIPSIS[encoding.value]

    def candidate(n: int) -> str:
        return text[:n].rstrip() + ellipsis

    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(_split(candidate(mid), encoding)) <= max_parts:
            lo = mid
        else:
            hi = mid - 1
    return candidate(lo)


def plan(text: str, max_parts: int = 4) -> SmsPlan:
    """Encode and split text into at most max_parts SMS, truncating with an ellipsis if needed."""
    if max_parts < 1:
        raise ValueError("max_parts must be at least 1")
    encoding = detect_encoding(text)
    chunks = _split(text, encoding)
    truncated = len(chunks) > max_parts
    sent = text
    if truncated:
        sent = _truncate(text, encoding, max_parts)
        chunks = _split(sent, encoding)
    parts = tuple(
        SmsPart(text=c, payload=encode(c, encoding), units=count_units(c, encoding)) for c in chunks
    )
    return SmsPlan(
        text=sent,
        encoding=encoding,
        parts=parts,
        truncated=truncated,
        original_char_count=len(text),
    )


def fits(text: str, max_parts: int) -> bool:
    """True when text goes out untruncated in at most max_parts SMS."""
    encoding = detect_encoding(text)
    return len(_split(text, encoding)) <= max_parts


def concat_udh(ref: int, total: int, seq: int) -> bytes:
    """The 6-byte concatenation UDH (IEI 0x00, 8-bit reference) that prefixes each part."""
    return bytes((0x05, 0x00, 0x03, ref & 0xFF, total, seq))
