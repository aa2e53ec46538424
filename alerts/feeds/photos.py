"""Signed, expiring photo URLs: HMAC over the photo ref and expiry with the secret key.

The console stores sanitised photos as `data_dir/photos/<ref>.<ext>` (alerts/console/photos.py);
this module only finds, signs and hashes them. A URL works until its expiry and only while the
case is active: closure stops every photo URL at once, erasure deletes the files.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from urllib.parse import urlencode

from ops.platform.config import Settings

TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


def photo_dir(settings: Settings) -> Path:
    """Where the console keeps photos."""
    return settings.data_dir / "photos"


def files_of(settings: Settings, ref: str) -> list[Path]:
    """Every stored file of a photo ref (original and thumbnail)."""
    folder = photo_dir(settings)
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.name.split(".", 1)[0] == ref]


def original(settings: Settings, ref: str) -> Path | None:
    """The full-size photo file of a ref, if stored."""
    for path in files_of(settings, ref):
        if ".thumb." not in path.name and path.suffix.lstrip(".") in TYPES:
            return path
    return None


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


def sha1(path: Path) -> str:
    """SHA-1 digest of a file, as CAP `digest` wants it."""
    return hashlib.sha1(path.read_bytes()).hexdigest()


def url_for_case(case, settings: Settings, now: float) -> str | None:
    """The signed URL of an active case's first stored photo, for push and webhook texts."""
    if case.state != "active" or case.details is None:
        return None
    for photo in case.details.photos or []:
        if original(settings, str(photo.get("ref", ""))) is not None:
            return signed_url(settings, photo["ref"], now)[0]
    return None
