"""The photo store's configuration and its directory backend (S3 runs in
tests/e2e/test_shared_photos.py against an S3 server on loopback)."""

from __future__ import annotations

import stat

import pytest
from pydantic import SecretStr

from ops.platform import blobstore
from ops.platform.config import Settings


def test_the_default_is_the_data_directory_and_a_path_is_a_shared_directory(tmp_path):
    default = blobstore.store_for(Settings(data_dir=tmp_path))
    assert isinstance(default, blobstore.DirectoryStore)
    assert default.path == tmp_path / "photos"
    shared = blobstore.store_for(Settings(photo_store=SecretStr(str(tmp_path / "vol"))))
    assert isinstance(shared, blobstore.DirectoryStore) and shared.path == tmp_path / "vol"


@pytest.mark.parametrize(
    "spec",
    ["ftp://host/bucket", "s3://key:secret@host/bucket", "s3+https://host", "s3+http://h/a/b"],
)
def test_a_bad_store_spec_names_the_setting_and_never_the_secret(spec):
    with pytest.raises(blobstore.StoreError) as err:
        blobstore.store_for(Settings(photo_store=SecretStr(spec)))
    assert "REUNITE_PHOTO_STORE" in str(err.value) and "secret" not in str(err.value)


def test_describe_drops_credentials():
    spec = "s3+https://AKIAKEY:very-secret@s3.example.org:443/photos"
    assert blobstore.describe(Settings(photo_store=SecretStr(spec))) == (
        "s3+https://s3.example.org:443/photos"
    )


def test_directory_store_writes_private_files_and_lists_one_ref_only(tmp_path):
    store = blobstore.DirectoryStore(tmp_path / "photos")
    store.put("ph_a.jpg", b"original", "image/jpeg")
    store.put("ph_a.thumb.jpg", b"thumb", "image/jpeg")
    store.put("ph_ab.jpg", b"another ref", "image/jpeg")
    assert store.names("ph_a") == ["ph_a.jpg", "ph_a.thumb.jpg"]
    assert store.get("ph_a.jpg") == b"original" and store.get("ph_zz.jpg") is None
    assert stat.S_IMODE((tmp_path / "photos" / "ph_a.jpg").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "photos").stat().st_mode) == 0o700
    assert not [p for p in (tmp_path / "photos").iterdir() if p.name.endswith(".partial")]
    store.delete("ph_a.jpg")
    store.delete("ph_a.jpg")  # already gone: no error
    assert store.names("ph_a") == ["ph_a.thumb.jpg"]
