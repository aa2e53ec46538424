"""The one photo store every process shares: a directory, or an S3-compatible bucket.

The API writes a case's photos, workers read them into pushes and CAP resources, and erasure
deletes them; in the production layout those are different machines, so a per-process data
directory would leave workers blind and erasure deleting nothing. `REUNITE_PHOTO_STORE` picks:

- unset: `<data_dir>/photos` (the embedded default: one machine, one directory);
- a path: that directory (a volume mounted into every container);
- `s3+https://KEY:SECRET@host[:port]/bucket` (or `s3+http://` on a private network): an S3
  bucket (AWS S3, MinIO, Ceph RGW) through the MinIO client, chosen over boto3 because it is
  the small, maintained S3 client made for exactly this: put, get, list, delete.

Objects are named by the caller (`<ref>.<ext>`); only a name's prefix up to its first dot is a
ref, and listing by that prefix is how every stored variant of a photo is found.
"""

from __future__ import annotations

import io
import os
from functools import lru_cache
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from ops.platform.config import Settings


class StoreError(RuntimeError):
    """The photo store is misconfigured or unreachable; the message names no personal data."""


class BlobStore(Protocol):
    def put(self, name: str, data: bytes, content_type: str) -> None: ...

    def get(self, name: str) -> bytes | None: ...

    def names(self, ref: str) -> list[str]:
        """Every stored name that belongs to the ref (`<ref>.<anything>`)."""
        ...

    def delete(self, name: str) -> None: ...


class DirectoryStore:
    """Files in one private directory (0700, files 0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _dir(self) -> Path:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.path

    def put(self, name: str, data: bytes, content_type: str) -> None:
        target = self._dir() / name
        partial = target.with_name(f".{name}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        partial.replace(target)  # readers never see half a photo

    def get(self, name: str) -> bytes | None:
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            return None

    def names(self, ref: str) -> list[str]:
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.glob(f"{ref}.*") if p.is_file())

    def delete(self, name: str) -> None:
        (self.path / name).unlink(missing_ok=True)


class S3Store:
    """Objects in an S3-compatible bucket, created on first use."""

    def __init__(self, url: str) -> None:
        from minio import Minio

        parts = urlsplit(url)
        bucket = parts.path.strip("/")
        if not parts.hostname or not bucket or "/" in bucket:
            raise StoreError("REUNITE_PHOTO_STORE: an s3 URL needs a host and one bucket name")
        self.bucket = bucket
        self.client = Minio(
            parts.netloc.rpartition("@")[2],
            access_key=unquote(parts.username or ""),
            secret_key=unquote(parts.password or ""),
            secure=parts.scheme == "s3+https",
        )
        self._ready = False

    def _bucket(self) -> str:
        if not self._ready:
            if not self.client.bucket_exists(self.bucket):
                self.client.make_bucket(self.bucket)
            self._ready = True
        return self.bucket

    def put(self, name: str, data: bytes, content_type: str) -> None:
        self.client.put_object(
            self._bucket(), name, io.BytesIO(data), len(data), content_type=content_type
        )

    def get(self, name: str) -> bytes | None:
        from minio.error import S3Error

        try:
            response = self.client.get_object(self._bucket(), name)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                return None
            raise
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def names(self, ref: str) -> list[str]:
        found = self.client.list_objects(self._bucket(), prefix=f"{ref}.")
        return sorted(o.object_name for o in found if o.object_name)

    def delete(self, name: str) -> None:
        self.client.remove_object(self._bucket(), name)


def describe(settings: Settings) -> str:
    """Where photos are kept, without credentials (for logs and `reunite status`)."""
    spec = settings.photo_store.get_secret_value() if settings.photo_store else ""
    if spec.startswith(("s3+http://", "s3+https://")):
        parts = urlsplit(spec)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
    return str(Path(spec) if spec else settings.data_dir / "photos")


def store_for(settings: Settings) -> BlobStore:
    """The configured photo store (one client per configuration and process)."""
    spec = settings.photo_store.get_secret_value() if settings.photo_store else ""
    return _store(spec, str(settings.data_dir))


@lru_cache(maxsize=8)
def _store(spec: str, data_dir: str) -> BlobStore:
    if spec.startswith(("s3+http://", "s3+https://")):
        return S3Store(spec)
    if "://" in spec:
        raise StoreError("REUNITE_PHOTO_STORE: a directory, or an s3+https:// or s3+http:// URL")
    return DirectoryStore(Path(spec) if spec else Path(data_dir) / "photos")
