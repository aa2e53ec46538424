"""Message rendering per case, kind and language (pure, no I/O).

The dispatcher renders once per case wave and language; every channel then picks the
rendered text for its recipient's language. Push bodies are held to a byte budget so the
APNs payload stays under 4 KB, and SMS texts to a part budget; in both cases descriptive
fields (clothing, place, name) are cut with an ellipsis and the tip line never is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from channels import romanise, sms
from ops.platform.channel_settings import SMS_MAX_PARTS
from ops.platform.config import DEFAULT_TIMEZONE

DEFAULT_LANGUAGES = ("zh-CN", "en")
# Leaves room in the 4096-byte APNs payload for title, deep link, photo URL and keys.
PUSH_BODY_MAX_BYTES = 1800
PUSH_TITLE_MAX_BYTES = 180
ELLIPSIS = "…"


class MessageKind(StrEnum):
    ALERT = "alert"
    UPDATE = "update"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # the alert outlived its lifetime: partners and feeds are told

    @property
    def closes(self) -> bool:
        """True for the notices that close a case."""
        return self in (MessageKind.RESOLVED, MessageKind.CANCELLED, MessageKind.EXPIRED)


class AlertEvent(StrEnum):
    """The one event vocabulary partners see: webhooks, the live stream and the JSON feed use
    these names, and CAP's msgType follows them (Alert for published, Update for updated,
    AllClear then Cancel for resolved, cancelled and expired)."""

    PUBLISHED = "alert.published"
    UPDATED = "alert.updated"
    RESOLVED = "alert.resolved"
    CANCELLED = "alert.cancelled"
    EXPIRED = "alert.expired"


@dataclass(frozen=True, slots=True)
class MessageId:
    """A case message's id, `case:kind:wave:n`: the idempotency key kept across retries."""

    case_id: str
    kind: MessageKind
    wave: int
    n: int

    def __str__(self) -> str:
        return f"{self.prefix(self.case_id, self.kind, self.wave)}{self.n}"

    @staticmethod
    def prefix(case_id: str, kind: MessageKind, wave: int) -> str:
        """What every message of this case, kind and wave starts with."""
        return f"{case_id}:{kind}:{wave}:"

    @property
    def event(self) -> AlertEvent:
        """The case's first alert is published; every later alert wave or update updates it."""
        if self.kind is MessageKind.ALERT and self.wave == 0 and self.n == 1:
            return AlertEvent.PUBLISHED
        return {
            MessageKind.RESOLVED: AlertEvent.RESOLVED,
            MessageKind.CANCELLED: AlertEvent.CANCELLED,
            MessageKind.EXPIRED: AlertEvent.EXPIRED,
        }.get(self.kind, AlertEvent.UPDATED)

    @staticmethod
    def case_of(text: str) -> str:
        """The case part of a message id or identifier, without validating the rest."""
        return text.partition(":")[0]

    @classmethod
    def parse(cls, text: str) -> MessageId:
        """The parts of a message id; ValueError if it is not one."""
        case_id, kind, wave, n = text.split(":")
        return cls(case_id, MessageKind(kind), int(wave), int(n))


class AlertStatus(StrEnum):
    """Whether an alert is real. A drill (exercise) or a system test carries a mark in every
    text on every channel, and an explicit status in every machine-readable payload."""

    ACTUAL = "actual"
    EXERCISE = "exercise"
    TEST = "test"


# Put before every title, body and SMS of a drill or test, in each language.
_MARKS = {
    "zh-CN": {AlertStatus.EXERCISE: "【演练】", AlertStatus.TEST: "【测试】"},
    "en": {AlertStatus.EXERCISE: "EXERCISE: ", AlertStatus.TEST: "TEST: "},
}


def mark(status: AlertStatus, language: str) -> str:
    """The drill or test mark in a language ("" for a real alert)."""
    return _MARKS[language].get(status, "")


class Sex(StrEnum):
    MALE = "male"
    FEMALE = "female"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class AlertContent:
    case_id: str
    kind: MessageKind
    child_name: str
    age_years: int | None
    sex: Sex
    height_cm: int | None
    clothing: str
    last_seen_at: datetime  # timezone-aware
    last_seen_place: str
    tip_line: str
    deep_link: str
    photo_url: str | None = None  # already signed and expiring
    wave: int = 0
    status: AlertStatus = AlertStatus.ACTUAL

    def __post_init__(self) -> None:
        if self.last_seen_at.tzinfo is None:
            raise ValueError("last_seen_at must be timezone-aware")


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    case_id: str
    kind: MessageKind
    language: str
    title: str
    body: str
    sms_text: str
    deep_link: str
    photo_url: str | None
    wave: int
    status: AlertStatus = AlertStatus.ACTUAL


def truncate_bytes(text: str, max_bytes: int, ellipsis: str = ELLIPSIS) -> str:
    """Cut text on a character boundary so its UTF-8 form, ellipsis included, fits max_bytes."""
    if len(text.encode()) <= max_bytes:
        return text
    room = max_bytes - len(ellipsis.encode())
    if room <= 0:
        return ""
    cut = text.encode()[:room].decode("utf-8", errors="ignore")
    return cut.rstrip() + ellipsis


def truncate_chars(text: str, max_chars: int, ellipsis: str = ELLIPSIS) -> str:
    """Cut text to max_chars characters, ellipsis included."""
    if len(text) <= max_chars:
        return text
    if max_chars <= len(ellipsis):
        return ""
    return text[: max_chars - len(ellipsis)].rstrip() + ellipsis


def _fit(
    build: Callable[[Mapping[str, str]], str],
    fields: dict[str, str],
    groups: Sequence[Sequence[str]],
    ok: Callable[[str], bool],
    cut: Callable[[str, int], str],
    size: Callable[[str], int],
    whole: frozenset[str] = frozenset(),
) -> str:
    """Shrink fields, largest first within the earliest non-empty group, until ok(build(fields)).
    A field in `whole` is dropped whole rather than shortened."""
    text = build(fields)
    for group in groups:
        while not ok(text):
            name = max(group, key=lambda n: size(fields[n]))
            current = size(fields[name])
            if current == 0:
                break
            if name in whole:
                fields[name] = ""
            else:
                # Cut a quarter (at least one unit) per round: few rounds, little overshoot.
                fields[name] = cut(fields[name], current - max(1, current // 4))
            text = build(fields)
    return text


def _sms_cut(text: str, max_chars: int) -> str:
    # "…" is not GSM-7: a GSM-7 field is cut with dots so the SMS does not fall back to UCS-2.
    return truncate_chars(text, max_chars, "..." if sms.is_gsm7(text) else ELLIPSIS)


_SEX = {
    "zh-CN": {Sex.MALE: "男", Sex.FEMALE: "女", Sex.UNKNOWN: ""},
    "en": {Sex.MALE: "boy", Sex.FEMALE: "girl", Sex.UNKNOWN: "child"},
}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _local_time(when: datetime, language: str, tz: str) -> str:
    local = when.astimezone(ZoneInfo(tz))
    if language == "zh-CN":
        return f"{local.month}月{local.day}日{local:%H:%M}"
    # A UTC offset, not an abbreviation: "CST" is China in Beijing and Chicago in the US.
    minutes = int((local.utcoffset() or timedelta()).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    offset = f"UTC{sign}{hours}" + (f":{mins:02d}" if mins else "")
    return f"{local.day} {_MONTHS[local.month - 1]} {local:%H:%M} ({offset})"


_HEIGHT = {"zh-CN": "身高约{cm}厘米", "en": "about {cm} cm tall"}


def _height(c: AlertContent, language: str) -> str:
    return _HEIGHT[language].format(cm=c.height_cm) if c.height_cm is not None else ""


def _describe_zh(c: AlertContent, f: Mapping[str, str]) -> str:
    bits = [_SEX["zh-CN"][c.sex]]
    if c.age_years is not None:
        bits.append(f"{c.age_years}岁")
    bits.append(f["height"])
    return "，".join(b for b in bits if b)


def _describe_en(c: AlertContent, f: Mapping[str, str]) -> str:
    age = f"{c.age_years}-year-old " if c.age_years is not None else ""
    height = f", {f['height']}" if f["height"] else ""
    return f"{age}{_SEX['en'][c.sex]}{height}"


def _templates_zh(c: AlertContent, tz: str) -> tuple[Callable, Callable, Callable]:
    when = _local_time(c.last_seen_at, "zh-CN", tz)
    prefix = {MessageKind.ALERT: "儿童失踪预警", MessageKind.UPDATE: "儿童失踪预警（更新）"}

    if c.kind in prefix:

        def title(f: Mapping[str, str]) -> str:
            return f"{prefix[c.kind]}：{f['name']}"

        def body(f: Mapping[str, str]) -> str:
            wear = f"，穿{f['clothing']}" if f["clothing"] else ""
            place = f"在{f['place']}" if f["place"] else ""
            desc = _describe_zh(c, f)
            return f"{f['name']}，{desc}{wear}。{when}{place}走失。如有线索请拨打{c.tip_line}。"

        def sms_text(f: Mapping[str, str]) -> str:
            wear = f"，穿{f['clothing']}" if f["clothing"] else ""
            place = f"在{f['place']}" if f["place"] else ""
            link = f" {f['link']}" if f["link"] else ""
            return (
                f"【{prefix[c.kind]}】{f['name']}，{_describe_zh(c, f)}{wear}，{when}{place}走失。"
                f"线索请拨{c.tip_line}{link}"
            )

    elif c.kind is MessageKind.RESOLVED:

        def title(f: Mapping[str, str]) -> str:
            return f"已找到：{f['name']}"

        def body(f: Mapping[str, str]) -> str:
            return f"{f['name']}已找到，平安。感谢每一位关注和转发的市民！"

        def sms_text(f: Mapping[str, str]) -> str:
            return f"【儿童失踪预警】{f['name']}已找到，感谢您的关注与帮助！"

    elif c.kind is MessageKind.EXPIRED:

        def title(f: Mapping[str, str]) -> str:
            return f"预警结束：{f['name']}"

        def body(f: Mapping[str, str]) -> str:
            return f"关于{f['name']}的儿童失踪预警已到期结束。如有线索，仍请拨打{c.tip_line}。"

        def sms_text(f: Mapping[str, str]) -> str:
            return f"【儿童失踪预警】关于{f['name']}的预警已结束。线索仍请拨{c.tip_line}。"

    else:

        def title(f: Mapping[str, str]) -> str:
            return f"预警撤销：{f['name']}"

        def body(f: Mapping[str, str]) -> str:
            return f"关于{f['name']}的儿童失踪预警已撤销，请勿再转发。感谢关注。"

        def sms_text(f: Mapping[str, str]) -> str:
            return f"【儿童失踪预警】关于{f['name']}的预警已撤销，请勿转发。"

    return title, body, sms_text


def _templates_en(c: AlertContent, tz: str) -> tuple[Callable, Callable, Callable]:
    when = _local_time(c.last_seen_at, "en", tz)
    prefix = {MessageKind.ALERT: "Missing child alert", MessageKind.UPDATE: "Missing child update"}

    if c.kind in prefix:

        def title(f: Mapping[str, str]) -> str:
            return f"{prefix[c.kind]}: {f['name']}"

        def body(f: Mapping[str, str]) -> str:
            wear = f", wearing {f['clothing']}" if f["clothing"] else ""
            place = f" at {f['place']}" if f["place"] else ""
            return (
                f"{f['name']}, {_describe_en(c, f)}{wear}. Last seen {when}{place}. "
                f"If you have information call {c.tip_line}."
            )

        def sms_text(f: Mapping[str, str]) -> str:
            wear = f", wearing {f['clothing']}" if f["clothing"] else ""
            place = f" at {f['place']}" if f["place"] else ""
            link = f" {f['link']}" if f["link"] else ""
            return (
                f"{prefix[c.kind].upper()}: {f['name']}, {_describe_en(c, f)}{wear}. "
                f"Last seen {when}{place}. Call {c.tip_line}{link}"
            )

    elif c.kind is MessageKind.RESOLVED:

        def title(f: Mapping[str, str]) -> str:
            return f"Found: {f['name']}"

        def body(f: Mapping[str, str]) -> str:
            return f"{f['name']} has been found safe. Thank you to everyone who looked and shared."

        def sms_text(f: Mapping[str, str]) -> str:
            return f"MISSING CHILD ALERT: {f['name']} has been found. Thank you for your help."

    elif c.kind is MessageKind.EXPIRED:

        def title(f: Mapping[str, str]) -> str:
            return f"Alert ended: {f['name']}"

        def body(f: Mapping[str, str]) -> str:
            return (
                f"The missing child alert for {f['name']} has ended. "
                f"If you have information, still call {c.tip_line}."
            )

        def sms_text(f: Mapping[str, str]) -> str:
            return f"MISSING CHILD ALERT for {f['name']} ended. Information: call {c.tip_line}."

    else:

        def title(f: Mapping[str, str]) -> str:
            return f"Alert withdrawn: {f['name']}"

        def body(f: Mapping[str, str]) -> str:
            return (
                f"The missing child alert for {f['name']} has been withdrawn. "
                "Please do not share it further."
            )

        def sms_text(f: Mapping[str, str]) -> str:
            return f"MISSING CHILD ALERT for {f['name']} withdrawn. Please do not share it."

    return title, body, sms_text


_TEMPLATES = {"zh-CN": _templates_zh, "en": _templates_en}
SUPPORTED_LANGUAGES = tuple(_TEMPLATES)


def render(
    content: AlertContent,
    language: str = "zh-CN",
    tz: str = DEFAULT_TIMEZONE,
    *,
    body_max_bytes: int = PUSH_BODY_MAX_BYTES,
    sms_max_parts: int = SMS_MAX_PARTS,
) -> RenderedMessage:
    """Render one case message in one language, with times in the case's time zone."""
    try:
        templates = _TEMPLATES[language]
    except KeyError:
        raise ValueError(f"unsupported language {language!r}") from None
    title_t, body_t, sms_t = _marked(content.status, language, *templates(content, tz))
    fields = {
        "name": content.child_name.strip(),
        "clothing": content.clothing.strip(),
        "place": content.last_seen_place.strip(),
        "height": _height(content, language),
        "link": content.deep_link,
    }
    if language != "zh-CN":
        # Chinese in an English text would make the SMS UCS-2 and cost the name its room.
        fields["name"] = romanise.name(fields["name"])
        fields["clothing"] = romanise.text(fields["clothing"])
        fields["place"] = romanise.text(fields["place"])
    # The name goes last: it is what people recognise and repeat.
    shrink = (("clothing", "place"), ("name",))
    # An SMS drops the least important first: clothing, the height, the link (the page has
    # the photo), and only then shortens the place and, last of all, the name. Age, sex,
    # time and tip line are never cut.
    sms_shrink = (("clothing",), ("height",), ("link",), ("place",), ("name",))

    def nbytes(s: str) -> int:
        return len(s.encode())

    title = _fit(
        title_t,
        dict(fields),
        (("name",),),
        lambda t: nbytes(t) <= PUSH_TITLE_MAX_BYTES,
        truncate_bytes,
        nbytes,
    )
    body = _fit(
        body_t, dict(fields), shrink, lambda t: nbytes(t) <= body_max_bytes, truncate_bytes, nbytes
    )
    sms_text = _fit(
        sms_t,
        dict(fields),
        sms_shrink,
        lambda t: sms.fits(t, sms_max_parts),
        _sms_cut,
        len,
        whole=frozenset({"height", "link"}),
    )
    ended = content.kind.closes
    return RenderedMessage(
        case_id=content.case_id,
        kind=content.kind,
        language=language,
        title=title,
        body=body,
        sms_text=sms_text,
        deep_link=content.deep_link,
        # A closing notice carries no description, and so no photo either.
        photo_url=None if ended else content.photo_url,
        wave=content.wave,
        status=content.status,
    )


def _marked(status: AlertStatus, language: str, *templates: Callable) -> tuple[Callable, ...]:
    """The templates with the drill or test mark in front (fitting never cuts the mark)."""
    prefix = mark(status, language)
    if not prefix:
        return templates

    def marked(template: Callable) -> Callable:
        return lambda fields: prefix + template(fields)

    return tuple(marked(t) for t in templates)


def render_all(
    content: AlertContent,
    languages: Iterable[str] = DEFAULT_LANGUAGES,
    tz: str = DEFAULT_TIMEZONE,
    *,
    sms_max_parts: int = SMS_MAX_PARTS,
) -> dict[str, RenderedMessage]:
    """Render a case message in every requested language, keyed by language tag."""
    return {lang: render(content, lang, tz, sms_max_parts=sms_max_parts) for lang in languages}


def rendering_to_json(rendered: Mapping[str, RenderedMessage]) -> dict[str, dict[str, Any]]:
    """The renderings of a message as JSON-ready dicts, by language (order kept)."""
    return {
        lang: {f.name: _plain(getattr(r, f.name)) for f in fields(RenderedMessage)}
        for lang, r in rendered.items()
    }


def rendering_from_json(doc: Mapping[str, Mapping[str, Any]]) -> dict[str, RenderedMessage]:
    """The inverse of `rendering_to_json`."""
    out = {}
    for lang, stored in doc.items():
        values = dict(stored)
        values["kind"] = MessageKind(values["kind"])
        values["status"] = AlertStatus(values["status"])
        out[lang] = RenderedMessage(**values)
    return out


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, StrEnum) else value


def with_kind(content: AlertContent, kind: MessageKind) -> AlertContent:
    """The same content as another kind of message (e.g. the closing notice of a case)."""
    return replace(content, kind=kind)
