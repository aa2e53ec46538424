"""Check CAP signatures the way partners do: signxml's verifier and Debian's xmlsec1.

xmlsec1 is an independent implementation (libxmlsec1 over OpenSSL): a document both accept is
not merely one our own library agrees with itself about.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree
from signxml import XMLVerifier

DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
XMLSEC1 = shutil.which("xmlsec1")
# The partner guide's command (README "Verifying signatures"), word for word.
PARTNER_COMMAND = (
    "csplit -s -z -f cap-cert- cap-signing.pem '/-----BEGIN CERTIFICATE-----/' '{*}' && "
    "xmlsec1 --verify $(printf -- '--trusted-pem %s ' cap-cert-*) alert.xml"
)


def production_keys(monkeypatch: pytest.MonkeyPatch, directory: Path) -> Path:
    """Configure a signing key file, as production mode requires."""
    from alerts.feeds import signing

    path = signing.development_key(directory, "Reunite test production")
    monkeypatch.setenv("REUNITE_CAP_SIGNING_KEYS", str(path))
    return path


def certificates(bundle: bytes) -> list[bytes]:
    """Each PEM certificate of a bundle."""
    return [
        c.public_bytes(serialization.Encoding.PEM) for c in x509.load_pem_x509_certificates(bundle)
    ]


def signxml_verifies(xml: bytes, bundle: bytes) -> etree._Element:
    """The signed `<alert>` if one of the bundle's certificates verifies it (else raises)."""
    errors = []
    for cert in certificates(bundle):
        try:
            return XMLVerifier().verify(xml, x509_cert=cert.decode()).signed_xml
        except Exception as exc:  # signxml raises several types; try the next certificate
            errors.append(exc)
    raise AssertionError(f"no published certificate verifies the document: {errors}")


def need_xmlsec1() -> str:
    """The xmlsec1 binary, or skip: CI installs it (.ci/run), a bare machine may not have it."""
    if XMLSEC1 is None:
        pytest.skip("xmlsec1 is not installed (Debian: apt-get install -y xmlsec1)")
    return XMLSEC1


def xmlsec1_verify(xml: bytes, bundle: bytes) -> subprocess.CompletedProcess:
    """Run the partner guide's xmlsec1 command on a document and a certificate bundle."""
    need_xmlsec1()
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "alert.xml").write_bytes(xml)
        Path(tmp, "cap-signing.pem").write_bytes(bundle)
        return subprocess.run(
            ["bash", "-c", PARTNER_COMMAND], cwd=tmp, capture_output=True, text=True, timeout=60
        )


def xmlsec1_verifies(xml: bytes, bundle: bytes) -> None:
    """Assert that xmlsec1 verifies the document against the bundle."""
    result = xmlsec1_verify(xml, bundle)
    output = result.stdout + result.stderr  # xmlsec1 reports on stderr
    assert result.returncode == 0 and output.startswith("OK"), output


def assert_signed(xml: bytes, bundle: bytes) -> None:
    """Both verifiers accept the document, and the signature is the `<alert>`'s last child."""
    root = etree.fromstring(xml)
    assert root[-1].tag == f"{{{DSIG_NS}}}Signature"
    assert len(root.findall(f".//{{{DSIG_NS}}}Signature")) == 1
    signed = signxml_verifies(xml, bundle)
    assert etree.QName(signed).localname == "alert"
    xmlsec1_verifies(xml, bundle)
