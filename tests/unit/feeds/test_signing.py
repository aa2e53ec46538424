"""CAP signing: enveloped XML-DSig that signxml and xmlsec1 both verify, keys that rotate with
overlap, and a development key made once."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from alerts.feeds import cap, signing
from ops.platform.config import Settings
from tests.support.cap_signatures import assert_signed, certificates, xmlsec1_verify
from tests.unit.feeds.test_cap import document, schema

capparselib = pytest.importorskip("capparselib")
from capparselib.parsers import CAPParser  # noqa: E402
from lxml import etree  # noqa: E402


def key_file(tmp_path: Path, name: str) -> Path:
    """A key and self-signed certificate in one PEM file."""
    return signing.development_key(tmp_path / name, f"Reunite test {name}")


def cert_only(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.crt"
    path.write_bytes(signing.load([key_file(tmp_path, name)]).published[0])
    return path


def test_signed_alert_verifies_with_signxml_and_xmlsec1_and_stays_schema_valid(tmp_path):
    ring = signing.load([key_file(tmp_path, "current")])
    xml = signing.sign(cap.render(document()), ring)
    assert_signed(xml, ring.bundle())
    root = etree.fromstring(xml)
    schema().assertValid(root)  # the schema takes one ds:Signature after the infos
    assert CAPParser(xml.decode()).as_dict()[0]["cap_id"] == "reunite:case-1:alert:0:1"


def test_xmlsec1_refuses_a_changed_document_and_a_stranger_s_key(tmp_path):
    ring = signing.load([key_file(tmp_path, "current")])
    xml = signing.sign(cap.render(document()), ring)
    changed = xml.replace(b"110", b"119")
    assert xmlsec1_verify(changed, ring.bundle()).returncode != 0
    stranger = signing.load([key_file(tmp_path, "stranger")])
    assert xmlsec1_verify(signing.sign(cap.render(document()), stranger), ring.bundle()).returncode


def test_rotation_publishes_the_next_and_the_last_certificate_and_the_first_signs(tmp_path):
    new, old = key_file(tmp_path, "new"), key_file(tmp_path, "old")
    announced = cert_only(tmp_path, "next")
    ring = signing.load([new, old, announced])
    assert ring.published[0] == signing.load([new]).published[0]
    assert len(certificates(ring.bundle())) == 3
    # A document the old key signed before the rotation still verifies against the bundle.
    from_before = signing.sign(cap.render(document()), signing.load([old]))
    assert_signed(from_before, ring.bundle())
    assert_signed(signing.sign(cap.render(document()), ring), ring.bundle())


def test_the_signing_file_needs_its_key_and_a_matching_certificate(tmp_path):
    with pytest.raises(signing.SigningKeyError, match="private key"):
        signing.load([cert_only(tmp_path, "a")])
    mixed = tmp_path / "mixed.pem"
    key_a = key_file(tmp_path, "a").read_bytes().split(b"-----BEGIN CERTIFICATE")[0]
    mixed.write_bytes(key_a + cert_only(tmp_path, "b").read_bytes())
    with pytest.raises(signing.SigningKeyError, match="not the key's"):
        signing.load([mixed])
    with pytest.raises(signing.SigningKeyError, match="missing.pem"):
        signing.load([tmp_path / "missing.pem"])


def test_development_key_is_made_once_owner_only(tmp_path):
    settings = Settings(data_dir=tmp_path, mode="development")
    first = signing.keyring(settings)
    path = tmp_path / signing.DEV_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert signing.keyring(Settings(data_dir=tmp_path, mode="development")) == first
    assert [p.name for p in tmp_path.iterdir()] == [signing.DEV_KEY_FILE]


def test_production_refuses_to_start_without_signing_keys(tmp_path):
    base = {
        "mode": "production",
        "secret_key": "k" * 40,
        "database_url": "postgresql://u@db/r",
        "redis_url": "redis://r:6379/0",
    }
    with pytest.raises(ValidationError, match="REUNITE_CAP_SIGNING_KEYS"):
        Settings(**base)
    configured = Settings(**base, cap_signing_keys=f" {key_file(tmp_path, 'a')} , ")
    assert configured.cap_signing_key_paths == [key_file(tmp_path, "a")]


def test_start_up_check_names_an_unreadable_key_file(tmp_path):
    settings = Settings(data_dir=tmp_path, cap_signing_keys=str(tmp_path / "nope.pem"))
    with pytest.raises(signing.SigningKeyError, match="nope.pem"):
        signing.check(settings)
    signing.check(Settings(data_dir=tmp_path))  # nothing configured: nothing to check yet
    assert not (tmp_path / signing.DEV_KEY_FILE).exists()


def test_a_cancel_signed_at_its_own_second_keeps_minus_zero_times(tmp_path):
    ring = signing.load([key_file(tmp_path, "current")])
    sent = datetime(2026, 12, 1, 8, 0, 59, 999_000, tzinfo=UTC)
    doc = document(
        msg_type=cap.MsgType.CANCEL,
        sent=sent,
        expires=sent + timedelta(hours=1),
        references=[cap.Reference("a@b.example", "reunite:x:alert:0:1", sent)],
    )
    xml = signing.sign(cap.render(doc), ring)
    assert b"<sent>2026-12-01T08:00:59-00:00</sent>" in xml
    assert_signed(xml, ring.bundle())


def test_text_that_xml_rewrites_still_verifies_with_both_verifiers(tmp_path):
    ring = signing.load([key_file(tmp_path, "current")])
    nasty = "Lin & <Xiaoyu> \"小雨\" 'Zoé'\r\nline two\ttab 👧🏽 e\u0301 ]]> --"
    info = cap.Info("en", "Missing: " + nasty, nasty, "Call 110", "https://r/1", "110")
    xml = signing.sign(cap.render(document(infos=[info], note=nasty)), ring)
    assert_signed(xml, ring.bundle())


def test_the_readme_shows_the_verification_command_the_tests_run():
    from tests.support.cap_signatures import PARTNER_COMMAND

    readme = (Path(__file__).parents[3] / "README.md").read_text()
    assert PARTNER_COMMAND in readme
    assert "/.well-known/reunite/cap-signing.pem" in readme
