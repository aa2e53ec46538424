"""Signed, expiring photo URLs: HMAC over the photo ref and expiry with the secret key.

The console stores sanitised photos in the shared photo store as `<ref>.<ext>` and
`<ref>.thumb.jpg` (alerts/console/photos.py, ops/platform/blobstore.py); this module finds,
reads, signs and hashes them. A URL works until its expiry and only while the case is active:
closure stops every photo URL at once, erasure deletes the objects.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlencode

from ops.platform import blobstore
from ops.platform.config import Settings

TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


@dataclass(frozen=True)
class Original:
    data: bytes
    content_type: str


def names_of(settings: Settings, ref: str) -> list[str]:
    """Every stored object of a photo ref (original and thumbnail)."""
    if not ref:
        return []
    return blobstore.store_for(settings).names(ref)


def _original_name(settings: Settings, ref: str) -> str | None:
    for name in names_of(settings, ref):
        if ".thumb." not in name and name.rpartition(".")[2] in TYPES:
            return name
    return None


def has_original(settings: Settings, ref: str) -> bool:
    """Whether the full-size photo of a ref is stored."""
    return _original_name(settings, ref) is not None


def original(settings: Settings, ref: str) -> Original | None:
    """The full-size photo of a ref, if stored."""
    name = _original_name(settings, ref)
    data = blobstore.store_for(settings).get(name) if name else None
    if data is None:
        return None
    return Original(data=data, content_type=TYPES[name.rpartition(".")[2]])


def erase(settings: Settings, ref: str) -> int:
    """Delete every stored object of a ref; returns how many there were."""
    store = blobstore.store_for(settings)
    names = names_of(settings, ref)
    for name in names:
        store.delete(name)
    return len(names)


def signature(settings: Settings, ref: str, expires: int) -> str:
    """HMAC-SHA256 of `ref.expires` under the secret key."""
    key = settings.secret_key.get_secret_value().encode()
    return hmac.new(key, f"photo:{ref}.{expires}".encode(), hashlib.sha256).hexdigest()


def signed_url(settings: Settings, ref: str, now: float) -> tuple[str, int]:
    """The public URL of a photo, valid for the configured time; returns (url, expires)."""
    expires = int(now) + settings.photo_url_ttl_seconds
    query = urlencode({"expires": expires, "sig": signature(settings, ref, expires)})
    base = settings.public_base_url.rstrip("/")
    return f"{base}/api/v1/photos/{ref}?{query}", expires


def verify(settings: Settings, ref: str, expires: int, sig: str, now: float) -> bool:
    """True when the signature matches and the URL has not expired."""
    if expires < now:
        return False
    # Bytes: compare_digest refuses str with non-ASCII characters (a TypeError, found by fuzzing).
    return hmac.compare_digest(
        signature(settings, ref, expires).encode(), sig.encode("utf-8", "replace")
    )


def sha1(data: bytes) -> str:
    """SHA-1 digest of a photo, as CAP `digest` wants it."""
    return hashlib.sha1(data).hexdigest()


def url_for_case(case, settings: Settings, now: float) -> str | None:
    """The signed URL of an active case's first stored photo, for push and webhook texts."""
    if case.state != "active" or case.details is None:
        return None
    for photo in case.details.photos or []:
        if has_original(settings, str(photo.get("ref", ""))):
            return signed_url(settings, photo["ref"], now)[0]
    return None
