"""Feed documents over a session: CAP per message, the Atom and JSON feeds, partner filtering.

Each case message becomes one CAP document (the first an Alert, every later wave or change an
Update); a closing message becomes an AllClear Update with a near expiry and then a Cancel.
A document is rendered and signed once, when it is published (`publish`, in the transaction
that creates its message), and stored: partners get those bytes unchanged until the case's
data is erased, when the stored documents are deleted and fetching one answers 410.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from xml.etree import ElementTree as ET

from pydantic import TypeAdapter
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alerts.cases import content
from alerts.cases.lifecycle import CaseState
from alerts.cases.models import Case
from alerts.feeds import cap, photos, signing, wea
from alerts.feeds.models import CaseErasure, PublishedDocument
from alerts.partners import service as partners
from alerts.partners.models import Partner
from alerts.users.models import Agency
from channels import messages, runtime
from channels.base import Area
from channels.messages import AlertStatus, MessageId, MessageKind
from channels.models import Message
from ops.platform.config import Settings, get_settings

ATOM_NS = "http://www.w3.org/2005/Atom"
IPAWS_CODE = "IPAWSv1.0"
CLOSING = (MessageKind.RESOLVED.value, MessageKind.CANCELLED.value)
EXPIRING = MessageKind.EXPIRED.value  # the alert ran out: a Cancel, without an AllClear
INSTRUCTION = {
    "zh-CN": "如有线索请拨打{tip}。请勿自行接近可疑人员。",
    "en": "If you have information call {tip}. Do not approach anyone yourself.",
}
# A closing notice still tells people what to do (Google's profile asks every info for one).
CLOSED_INSTRUCTION = {
    "zh-CN": "无需采取行动，请停止转发此预警。如有线索，仍可拨打{tip}。",
    "en": "No action is needed; please stop sharing this alert. If you have information, still "
    "call {tip}.",
}
# senderName of documents published before it named the issuing agency.
LEGACY_SENDER_NAME = "Reunite"


@dataclass(frozen=True)
class CapDoc:
    identifier: str
    message_id: str
    case_id: str
    variant: str  # alert, update, allclear, cancel
    sent: datetime
    expires: datetime
    area: dict | None
    document: cap.Document
    # The signed XML as published, by its infos' languages (`languages_key`).
    signed: Mapping[str, str] = field(default_factory=dict)
    # When the feeds started to show this document, if later than its `sent` (a Cancel shown
    # once the AllClear before it expired).
    shown_since: datetime | None = None

    def xml(self) -> bytes:
        """The signed CAP XML as published, with the languages this copy keeps."""
        try:
            return self.signed[languages_key(self.document)].encode()
        except KeyError:
            raise LookupError(f"{self.identifier} was not published in these languages") from None

    @property
    def updated(self) -> datetime:
        """When the feeds' entry for this document last changed."""
        return max(self.sent, self.shown_since or self.sent)


def languages_key(document: cap.Document) -> str:
    """The key of a document's signed copy: its infos' languages, in order."""
    return ",".join(i.language for i in document.infos)


def signed_copies(document: cap.Document, ring: signing.Keyring) -> dict[str, str]:
    """The document signed once for every choice of its languages a partner can make."""
    out = {}
    infos = document.infos
    for size in range(1, len(infos) + 1):
        for chosen in itertools.combinations(infos, size):
            copy = replace(document, infos=list(chosen))
            out[languages_key(copy)] = signing.sign(cap.render(copy), ring).decode()
    return out


def identifier_of(message_id: str, variant: str) -> str:
    """The CAP identifier of a message's document (a Cancel has its own)."""
    return f"reunite:{message_id}" + (":cancel" if variant == "cancel" else "")


def cap_url(settings: Settings, identifier: str, public: bool = False) -> str:
    """Where a partner (or, `public`, anyone) fetches one CAP document."""
    base = settings.public_base_url.rstrip("/")
    if public:
        return f"{base}/public/cap/{identifier}.xml"
    return f"{base}/api/v1/feeds/cap/{identifier}"


def _photo_resources(settings: Settings, case: Case, now: float) -> list[cap.Resource]:
    if case.details is None or case.state != CaseState.ACTIVE.value:
        return []
    # Round the signing time so the document (and its ETag) stays the same for a while.
    step = max(60, settings.photo_url_ttl_seconds // 2)
    signed_at = now - now % step
    out = []
    for photo in case.details.photos or []:
        stored = photos.original(settings, photo["ref"])
        if stored is None:
            continue
        url, _ = photos.signed_url(settings, photo["ref"], signed_at)
        out.append(
            cap.Resource(
                description="Photo of the missing child",
                mime_type=photo.get("content_type") or "image/jpeg",
                uri=url,
                digest=photos.sha1(stored.data),
                size=len(stored.data),
            )
        )
    return out


def _infos(settings: Settings, case: Case, kind: MessageKind, wave: int, langs: list[str]):
    alert = content.alert_content(case, kind, wave, settings.case_link_base)
    out = []
    for lang in langs:
        m = messages.render(
            alert, lang, settings.timezone, sms_max_parts=settings.channels.max_sms_parts
        )
        out.append(
            cap.Info(
                language=lang,
                headline=m.title,
                description=m.body,
                instruction=_instruction(kind, lang, case.tip_line),
                web=m.deep_link,
                contact=case.tip_line,
                parameters=wea.parameters(alert, lang, settings.timezone)
                if settings.cap_ipaws_profile
                else [],
            )
        )
    return out


def alert_infos(settings: Settings, case: Case, wave: int = 0) -> list[cap.Info]:
    """The CAP `<info>` of each alert language the case's wave alert would carry, as
    `_render_documents` writes it (the supervisor's review shows exactly these)."""
    langs = runtime.languages(case.alert_languages)
    return _infos(settings, case, MessageKind.ALERT, wave, langs)


def _instruction(kind: MessageKind, lang: str, tip: str) -> str:
    texts = CLOSED_INSTRUCTION if kind.closes else INSTRUCTION
    return texts.get(lang, texts["en"]).format(tip=tip)


def sender_name(session: Session, case: Case, settings: Settings) -> str:
    """The issuing agency's name, as CAP's senderName."""
    agency = session.get(Agency, case.agency_id)
    return agency.name if agency is not None else settings.cap_sender


def case_messages(session: Session, case_id: str) -> list[Message]:
    """The case's messages in the order they were made."""
    return list(
        session.scalars(
            select(Message).where(Message.case_id == case_id).order_by(Message.created_at)
        )
    )


CAP_STATUS = {
    AlertStatus.ACTUAL: cap.Status.ACTUAL,
    AlertStatus.EXERCISE: cap.Status.EXERCISE,
    AlertStatus.TEST: cap.Status.TEST,
}
DRILL_NOTES = {
    cap.Status.EXERCISE: "Drill: this is not a real missing child.",
    cap.Status.TEST: "System test: this is not a real missing child.",
}


def _for_drills(
    session: Session, case_id: str, partner: Partner | None, public: bool = False
) -> bool:
    """A drill or test reaches only partners that opted in to drills, never the public feed."""
    if not public and (partner is None or partner.drills):
        return True
    return not content.restricted_audience(session, case_id)


_DOCUMENT = TypeAdapter(cap.Document)


class DocumentGone(LookupError):
    """The document's case was erased: it is gone for good (HTTP 410)."""


def _stored_document(row: PublishedDocument) -> cap.Document:
    return _DOCUMENT.validate_python({"sender_name": LEGACY_SENDER_NAME} | row.document)


def publish(session: Session, case: Case, settings: Settings, now: datetime | None = None) -> int:
    """Store the case's documents not yet published, rendered and signed now; how many were
    added.

    The dispatch flow calls this in the transaction that creates each message, so a document
    says what was true when it went out; stored ones are never rendered or signed again.
    """
    from ops.platform.clock import utcnow

    stored = {
        row.identifier: _stored_document(row)
        for row in session.scalars(
            select(PublishedDocument).where(PublishedDocument.case_id == case.id)
        )
    }
    ring = None
    added = 0
    docs = _render_documents(session, case, settings, now=now or utcnow(), stored=stored)
    for position, doc in enumerate(docs):
        if doc.identifier in stored:
            continue
        ring = ring or signing.keyring(settings)
        row = PublishedDocument(
            identifier=doc.identifier,
            case_id=case.id,
            message_id=doc.message_id,
            variant=doc.variant,
            position=position,
            area=doc.area,
            document=_DOCUMENT.dump_python(doc.document, mode="json"),
            signed=signed_copies(doc.document, ring),
        )
        try:
            with session.begin_nested():  # another process may publish the same one now
                session.add(row)
        except IntegrityError:
            continue
        added += 1
    return added


def case_documents(
    session: Session, case: Case, settings: Settings, now: float | None = None
) -> list[CapDoc]:
    """Every CAP document of a case as published, oldest first (publishing any still due)."""
    if session.get(CaseErasure, case.id) is None:
        publish(session, case, settings)
    rows = session.scalars(
        select(PublishedDocument)
        .where(PublishedDocument.case_id == case.id)
        .order_by(PublishedDocument.position)
    )
    out = []
    for row in rows:
        document = _stored_document(row)
        if row.signed is None:
            # Published before documents were signed: signed once now, then kept as they are.
            row.signed = signed_copies(document, signing.keyring(settings))
        out.append(
            CapDoc(
                identifier=row.identifier,
                message_id=row.message_id,
                case_id=row.case_id,
                variant=row.variant,
                sent=document.sent,
                expires=document.expires,
                area=row.area,
                document=document,
                signed=row.signed,
            )
        )
    return out


def _render_documents(
    session: Session,
    case: Case,
    settings: Settings,
    now: datetime,
    stored: Mapping[str, cap.Document],
) -> list[CapDoc]:
    """Every CAP document of a case, oldest first, each referencing the earlier unexpired ones.

    A document already published stands as it was stored (a later one references it as such);
    one published now is dated now if it has no message time of its own (a Cancel).
    """
    status = CAP_STATUS[content.case_status(session, case.id)]
    note = DRILL_NOTES.get(status)
    langs = runtime.languages(case.alert_languages)
    resources = _photo_resources(settings, case, now.timestamp())
    agency = sender_name(session, case, settings)
    codes = [IPAWS_CODE] if settings.cap_ipaws_profile else []
    docs: list[CapDoc] = []
    area = None
    for msg in case_messages(session, case.id):
        area = msg.area or area
        kind = MessageKind(msg.kind)
        shape = Area.from_json(area)
        base = {
            "sender": settings.cap_sender,
            "sender_name": agency,
            "codes": codes,
            "status": status,
            "infos": _infos(settings, case, kind, msg.wave, langs),
            "area_desc": shape.description if shape else "alert area",
            "polygon": shape.cap_polygon() if shape else None,
            "circle": shape.circle if shape else None,
            "note": note,
        }
        if msg.kind in CLOSING:
            sent = msg.created_at
            allclear = cap.Document(
                identifier=identifier_of(msg.id, "allclear"),
                sent=sent,
                msg_type=cap.MsgType.UPDATE,
                expires=sent + timedelta(minutes=settings.allclear_expires_minutes),
                response_type="AllClear",
                urgency="Past",
                severity="Minor",
                certainty="Observed",
                **base,
            )
            cancel_sent = _issued(now, docs, sent)
            cancel = replace(
                allclear,
                identifier=identifier_of(msg.id, "cancel"),
                sent=cancel_sent,
                msg_type=cap.MsgType.CANCEL,
                expires=cancel_sent + timedelta(hours=max(settings.feed_removal_hours, 1)),
            )
            variants = [("allclear", allclear), ("cancel", cancel)]
        elif msg.kind == EXPIRING:
            sent = _issued(now, docs, msg.created_at)
            cancel = cap.Document(
                identifier=identifier_of(msg.id, "cancel"),
                sent=sent,
                msg_type=cap.MsgType.CANCEL,
                expires=sent + timedelta(hours=max(settings.feed_removal_hours, 1)),
                response_type="None",
                urgency="Past",
                severity="Minor",
                certainty="Observed",
                **base,
            )
            variants = [("cancel", cancel)]
        else:
            document = cap.Document(
                identifier=identifier_of(msg.id, "alert"),
                sent=msg.created_at,
                msg_type=cap.MsgType.UPDATE if docs else cap.MsgType.ALERT,
                expires=msg.expires_at,
                resources=resources,
                **base,
            )
            variants = [("update" if docs else "alert", document)]
        for variant, document in variants:
            if document.identifier in stored:
                document = stored[document.identifier]
            else:
                refs = [
                    cap.Reference(d.document.sender, d.identifier, d.sent)
                    for d in docs
                    if d.expires > document.sent
                ]
                document = replace(document, references=refs)
            docs.append(
                CapDoc(
                    identifier=document.identifier,
                    message_id=msg.id,
                    case_id=case.id,
                    variant=variant,
                    sent=document.sent,
                    expires=document.expires,
                    area=area,
                    document=document,
                )
            )
    return docs


def _issued(now: datetime, earlier: list[CapDoc], *also: datetime) -> datetime:
    """A Cancel's sent: when it is issued, and never before what it cancels."""
    return max([now, *(d.sent for d in earlier), *also])


def for_partner(doc: CapDoc, partner: Partner | None) -> CapDoc:
    """The document with only the languages the partner takes (all when none match)."""
    if partner is None or not partner.languages:
        return doc
    infos = [i for i in doc.document.infos if i.language in partner.languages]
    if not infos:
        return doc
    return replace(doc, document=replace(doc.document, infos=infos))


def document(
    session: Session,
    identifier: str,
    settings: Settings,
    partner: Partner | None,
    public: bool = False,
) -> CapDoc | None:
    """One CAP document by identifier, if the partner (or, `public`, anyone) may see it;
    DocumentGone once erased."""
    message_id = identifier.removeprefix("reunite:").removesuffix(":cancel")
    case = session.get(Case, MessageId.case_of(message_id))
    if case is not None and session.get(CaseErasure, case.id) is not None:
        raise DocumentGone(identifier)
    if (
        case is None
        or not _visible(case, settings)
        or not _for_drills(session, case.id, partner, public)
    ):
        return None
    for doc in case_documents(session, case, settings):
        if doc.identifier == identifier:
            if partner is not None and not partners.receives(partner, doc.area):
                return None
            return for_partner(doc, partner)
    return None


def _visible(case: Case, settings: Settings, now: datetime | None = None) -> bool:
    from ops.platform.clock import utcnow

    if case.state == CaseState.ACTIVE.value:
        return True
    if case.closed_at is None:
        return False
    return case.closed_at > (now or utcnow()) - timedelta(hours=settings.feed_removal_hours)


def current(
    session: Session, partner: Partner | None, settings: Settings, public: bool = False
) -> list[CapDoc]:
    """The current document of every alert in the feeds, newest first, for this partner (or,
    `public`, for anyone: no drills)."""
    from ops.platform.clock import utcnow

    now = utcnow()
    cutoff = now - timedelta(hours=settings.feed_removal_hours)
    cases = session.scalars(
        select(Case).where(
            or_(
                Case.state == CaseState.ACTIVE.value,
                Case.closed_at > cutoff,
            ),
            Case.approved_at.is_not(None),
        )
    ).unique()
    out = []
    for case in cases:
        if not _for_drills(session, case.id, partner, public):
            continue
        docs = case_documents(session, case, settings)
        if not docs:
            continue
        latest = docs[-1]
        if latest.variant == "cancel":
            allclear = docs[-2]
            # The AllClear stands until its near expiry; the Cancel after it.
            if now < allclear.expires:
                latest = allclear
            else:
                latest = replace(latest, shown_since=allclear.expires)
        if partner is not None and not partners.receives(partner, latest.area):
            continue
        out.append(for_partner(latest, partner))
    out.sort(key=lambda d: (d.sent, d.identifier), reverse=True)
    return out


def page_of(docs: list[CapDoc], page: int, size: int) -> tuple[list[CapDoc], bool]:
    """One page of documents and whether another follows."""
    start = (page - 1) * size
    return docs[start : start + size], len(docs) > start + size


def atom(
    docs: list[CapDoc], settings: Settings, page: int, has_next: bool, public: bool = False
) -> bytes:
    """The Atom feed page: one entry per alert, linking to its CAP document (the public feed's
    entries link to the public documents)."""
    ET.register_namespace("", ATOM_NS)

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        el = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
        if text is not None:
            el.text = text
        return el

    path = "/public/alerts.atom" if public else "/api/v1/feeds/atom"
    base = settings.public_base_url.rstrip("/") + path
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    sub(feed, "id", "urn:reunite:feeds:public" if public else "urn:reunite:feeds:atom")
    sub(feed, "title", "Reunite missing-child alerts")
    newest = max((d.updated for d in docs), default=None)
    sub(feed, "updated", cap.rfc3339(newest) if newest else "1970-01-01T00:00:00+00:00")
    author = sub(feed, "author")
    sub(author, "name", settings.cap_sender)
    sub(feed, "link", rel="self", href=f"{base}?page={page}")
    if has_next:
        sub(feed, "link", rel="next", href=f"{base}?page={page + 1}")
    if page > 1:
        sub(feed, "link", rel="previous", href=f"{base}?page={page - 1}")
    for doc in docs:
        info = doc.document.infos[0]
        entry = sub(feed, "entry")
        sub(entry, "id", f"urn:uuid:{doc.case_id}")
        sub(entry, "title", cap.headline(info.headline, info.description, info.language))
        sub(entry, "updated", cap.rfc3339(doc.updated))
        sub(entry, "summary", info.description)
        sub(entry, "category", term=doc.variant)
        sub(
            entry,
            "link",
            rel="alternate",
            type="application/cap+xml",
            href=cap_url(settings, doc.identifier, public),
        )
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


def json_feed(
    docs: list[CapDoc], settings: Settings, page: int, has_next: bool, public: bool = False
) -> bytes:
    """The JSON Feed 1.1 page of the same alerts, with the area and CAP link per item."""
    path = "/public/alerts.json" if public else "/api/v1/feeds/json"
    base = settings.public_base_url.rstrip("/") + path
    items = []
    for doc in docs:
        d = doc.document
        first = d.infos[0]
        items.append(
            {
                "id": doc.case_id,
                "url": first.web,
                "title": cap.headline(first.headline, first.description, first.language),
                "content_text": first.description,
                "date_modified": cap.rfc3339(doc.updated),
                "_reunite": {
                    "cap_identifier": doc.identifier,
                    "cap_url": cap_url(settings, doc.identifier, public),
                    "event": str(MessageId.parse(doc.message_id).event),
                    "msg_type": str(d.msg_type),
                    "status": str(d.status),
                    "variant": doc.variant,
                    "expires": cap.rfc3339(doc.expires),
                    "area": {"polygon": d.polygon, "circle": d.circle},
                    "languages": {
                        i.language: {"headline": i.headline, "description": i.description}
                        for i in d.infos
                    },
                },
            }
        )
    body = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Reunite missing-child alerts",
        "feed_url": f"{base}?page={page}",
        "items": items,
    }
    if has_next:
        body["next_url"] = f"{base}?page={page + 1}"
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def message_area(session: Session, message: Message) -> dict | None:
    """A message's area, or for a closing notice the area of the case's latest alert."""
    if message.area:
        return message.area
    for earlier in reversed(case_messages(session, message.case_id)):
        if earlier.area:
            return earlier.area
    return None


def partner_filter(session: Session, message: Message):
    """A predicate partner_id -> bool: does this message reach that partner by webhook?"""
    area = message_area(session, message)
    rows = {p.id: p for p in session.scalars(select(Partner))}
    drill = content.restricted_audience(session, message.case_id)

    def wanted(partner_id: int) -> bool:
        partner = rows.get(partner_id)
        return (
            partner is not None
            and (partner.drills or not drill)
            and partners.takes_format(partner, partners.Format.WEBHOOK)
            and partners.receives(partner, area)
        )

    return wanted


def announce(session: Session, message: Message, event: str, settings: Settings) -> bool:
    """Put a message on the live stream once (a re-run fan-out does not repeat it)."""
    from alerts.feeds import sse
    from ops.platform.redis_client import get_redis

    client = get_redis()
    ttl = int(settings.stream_retention_hours * 3600) + 3600
    if not client.set(f"feeds:announced:{message.id}", 1, nx=True, ex=ttl):
        return False
    variants = (
        ["allclear", "cancel"]
        if message.kind in CLOSING
        else ["cancel"]
        if message.kind == EXPIRING
        else ["alert"]
    )
    ids = [identifier_of(message.id, v) for v in variants]
    status = content.case_status(session, message.case_id)
    data = {
        "type": event,
        "status": str(status),
        "message_id": message.id,
        "case_id": message.case_id,
        "kind": message.kind,
        "wave": message.wave,
        "cap": [{"identifier": i, "url": cap_url(settings, i)} for i in ids],
    }
    sse.publish(
        client,
        settings,
        event=event,
        data=data,
        area=message_area(session, message),
        restricted=content.restricted_audience(session, message.case_id),
    )
    return True


class PartnerAudience:
    """The channels' Audience port: partner area and format filters, and the live stream."""

    def reaches(self, session: Session, message: Message) -> Callable[[int], bool]:
        """Does this message reach a partner by webhook?"""
        return partner_filter(session, message)

    def announce(self, session: Session, message: Message, event: str) -> None:
        """Put the message on the partners' live stream once."""
        announce(session, message, event, get_settings())
