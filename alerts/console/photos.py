"""Photo intake: decode, re-encode without metadata, thumbnail, store under an opaque ref.

Only JPEG, PNG and WebP pass, judged by decoding (the declared type and file name are not
trusted). Re-encoding from raw pixels drops EXIF (GPS included), XMP, ICC and text chunks.
Both go to the shared photo store (ops/platform/blobstore.py) for the alert pipeline; the
console only ever serves thumbnails.
"""

from __future__ import annotations

import io
import secrets
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta

from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.console.models import ConsolePhoto
from alerts.users.models import User
from ops.platform import blobstore
from ops.platform.clock import utcnow
from ops.platform.config import Settings

FORMATS = {
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
}
THUMB_EDGE = 320
# Multipart overhead allowed on top of the photo cap (a case form's text fields).
FORM_SLACK = 256 * 1024
# A case form may be read this far past the photo cap, the photo's bytes discarded as they
# stream in, so that an oversize photo sent without JavaScript gets the form back with every
# other value kept (not a bare 413). Bytes beyond it are refused unread.
OVERSIZE_READ_BYTES = 64 * 1024 * 1024


def form_read_max(settings: Settings) -> int:
    """The most of a case form's body the console reads (see OVERSIZE_READ_BYTES)."""
    return max(OVERSIZE_READ_BYTES, 2 * settings.photo_max_bytes + FORM_SLACK)


class PhotoRejected(ValueError):
    """The upload is not an acceptable image; the message is safe to show."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class Stored:
    ref: str
    content_type: str


def _decode(data: bytes, max_pixels: int) -> tuple[Image.Image, str]:
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            # Between MAX_IMAGE_PIXELS and twice it Pillow only warns: refuse those too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data))
            fmt = probe.format or ""
            if fmt not in FORMATS:
                raise PhotoRejected("type", "not a JPEG, PNG or WebP image")
            if probe.width * probe.height > max_pixels:
                raise PhotoRejected("bomb", "image has too many pixels")
            probe.verify()
            image = Image.open(io.BytesIO(data))
            image.load()
    except PhotoRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoRejected("bomb", "image has too many pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise PhotoRejected("type", "not a readable JPEG, PNG or WebP image") from None
    return image, fmt


def sanitise(data: bytes, max_pixels: int) -> tuple[bytes, bytes, str, tuple[int, int]]:
    """Re-encoded image, JPEG thumbnail, content type and size; raises PhotoRejected."""
    image, fmt = _decode(data, max_pixels)
    image = ImageOps.exif_transpose(image)  # keep the visible orientation, then drop EXIF
    keep_alpha = fmt in ("PNG", "WEBP") and image.mode in ("RGBA", "LA", "PA", "P")
    mode = "RGBA" if keep_alpha else "RGB"
    pixels = image.convert(mode)
    # A brand-new image from raw pixels carries no info dict: no EXIF, XMP, ICC or text.
    clean = Image.frombytes(mode, pixels.size, pixels.tobytes())
    out = io.BytesIO()
    if fmt == "JPEG":
        clean.save(out, "JPEG", quality=90, optimize=True)
    elif fmt == "PNG":
        clean.save(out, "PNG", optimize=True)
    else:
        clean.save(out, "WEBP", quality=90)
    thumb = clean.convert("RGB")
    thumb.thumbnail((THUMB_EDGE, THUMB_EDGE))
    tout = io.BytesIO()
    thumb.save(tout, "JPEG", quality=85)
    return out.getvalue(), tout.getvalue(), FORMATS[fmt][0], clean.size


def store(session: Session, data: bytes, user: User, settings: Settings) -> Stored:
    """Sanitise and store an upload for the user's agency; returns its opaque ref."""
    if len(data) > settings.photo_max_bytes:
        raise PhotoRejected("size", f"larger than {settings.photo_max_bytes // (1024 * 1024)} MB")
    if not data:
        raise PhotoRejected("type", "the file is empty")
    body, thumb, content_type, (width, height) = sanitise(data, settings.photo_max_pixels)
    ref = "ph_" + secrets.token_urlsafe(24)
    ext = {v[0]: v[1] for v in FORMATS.values()}[content_type]
    shared = blobstore.store_for(settings)
    shared.put(f"{ref}.thumb.jpg", thumb, "image/jpeg")
    shared.put(f"{ref}.{ext}", body, content_type)  # last: a ref with an original is whole
    session.add(
        ConsolePhoto(
            ref=ref,
            agency_id=user.agency_id,
            uploaded_by_id=user.id,
            content_type=content_type,
            width=width,
            height=height,
        )
    )
    session.flush()
    return Stored(ref=ref, content_type=content_type)


def pending(session: Session, ref: str, user: User) -> ConsolePhoto | None:
    """A photo this user uploaded that no case holds yet (kept across a form error), else
    None: a ref from the form is never trusted beyond that."""
    if not ref or len(ref) > 64:
        return None
    row = session.get(ConsolePhoto, ref)
    if row is None or row.uploaded_by_id != user.id or row.case_id is not None:
        return None
    return row


# A photo kept across a form error that no case took within this long is deleted: a
# child's photo never outlives an abandoned form for more than a day.
UNCLAIMED_HOURS = 24


def sweep_unclaimed(session: Session, settings: Settings, now: datetime | None = None) -> int:
    """Delete uploads no case holds that are older than UNCLAIMED_HOURS (row and files);
    returns how many."""
    cutoff = (now or utcnow()) - timedelta(hours=UNCLAIMED_HOURS)
    rows = session.scalars(
        select(ConsolePhoto).where(ConsolePhoto.case_id.is_(None), ConsolePhoto.created_at < cutoff)
    ).all()
    store = blobstore.store_for(settings)
    for row in rows:
        for name in store.names(row.ref):
            store.delete(name)
        session.delete(row)
    return len(rows)


def thumbnail(settings: Settings, ref: str) -> bytes | None:
    """A stored thumbnail (the ref was validated by the caller)."""
    return blobstore.store_for(settings).get(f"{ref}.thumb.jpg")
