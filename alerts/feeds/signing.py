"""CAP signatures: an enveloped XML-DSig on `<alert>`, made once when a document is published.

Google Public Alerts takes plain-HTTP feeds only with signed alerts, and EAS equipment refuses
unsigned CAP. The signature is RSA-SHA256 (ECDSA-SHA256 for an EC key) over the exclusive
canonical form, so it survives being embedded in another document (an Atom entry, an EDXL-DE
envelope). It carries the signing certificate; partners trust the certificates published at
/.well-known/reunite/cap-signing.pem.

Keys come from REUNITE_CAP_SIGNING_KEYS (the first signs; the others are only published, for
rotation with overlap). Without it, outside production, a self-signed key is made once in the
data directory.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import CanonicalizationMethod, DigestAlgorithm, SignatureMethod, XMLSigner, methods

from ops.platform.config import Settings

# signxml logs the canonical form it signs at DEBUG: the whole alert, the child's name and
# description included. Logs must never name the child.
logging.getLogger("signxml").setLevel(logging.WARNING)

DEV_KEY_FILE = "cap-signing.pem"
DEV_KEY_DAYS = 3650
C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0


class SigningKeyError(RuntimeError):
    """A configured signing key file is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class Keyring:
    """The key that signs now, and every certificate partners should trust."""

    key_pem: bytes
    cert_pem: bytes  # the signing certificate (and its chain, if the file had one)
    published: tuple[bytes, ...]  # one PEM certificate each, the signing one first

    def bundle(self) -> bytes:
        """The published certificates as one PEM file."""
        return b"".join(self.published)

    @functools.cached_property
    def key(self) -> PrivateKeyTypes:
        """The signing key, parsed once: loading an RSA key checks it, which took longer than
        signing, three times per wave start (a copy per choice of languages)."""
        return serialization.load_pem_private_key(self.key_pem, password=None)


def _certificates(data: bytes, path: Path) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise SigningKeyError(f"{path}: no PEM certificate") from None


def _private_key(data: bytes, path: Path):
    if b"PRIVATE KEY-----" not in data:
        return None
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path}: unreadable private key ({exc})") from None


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load(paths: list[Path]) -> Keyring:
    """The keyring from PEM files: the first holds the signing key and its certificate."""
    if not paths:
        raise SigningKeyError("no CAP signing key configured")
    published: list[bytes] = []
    key_pem = cert_pem = b""
    for n, path in enumerate(paths):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SigningKeyError(f"{path}: {exc.strerror}") from None
        certs = _certificates(data, path)
        if n == 0:
            key = _private_key(data, path)
            if key is None:
                raise SigningKeyError(f"{path}: the first signing file needs its private key")
            if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
                raise SigningKeyError(f"{path}: only RSA and EC keys sign CAP")
            if certs[0].public_key() != key.public_key():
                raise SigningKeyError(f"{path}: the first certificate is not the key's")
            key_pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            cert_pem = b"".join(_pem(c) for c in certs)
        leaf = _pem(certs[0])
        if leaf not in published:
            published.append(leaf)
    return Keyring(key_pem=key_pem, cert_pem=cert_pem, published=tuple(published))


def _self_signed(common_name: str) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=DEV_KEY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, False, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem + _pem(cert)


def development_key(data_dir: Path, common_name: str) -> Path:
    """The self-signed key file in the data directory, made once (0600) by whichever process
    gets there first: an API and its workers sharing the directory sign with one key."""
    path = data_dir / DEV_KEY_FILE
    if path.exists():
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".cap-signing-")  # 0600 already
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(_self_signed(common_name))
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)  # atomic, and never over a key another process just made
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
    return path


@lru_cache(maxsize=8)
def _keyring_of(paths: tuple[Path, ...], mtimes: tuple[float, ...]) -> Keyring:
    return load(list(paths))


def keyring(settings: Settings) -> Keyring:
    """The configured keyring, or the development key outside production (read once per
    process and again when a file changes, so a rotation needs no code path of its own)."""
    paths = settings.cap_signing_key_paths
    if not paths:
        paths = [development_key(settings.data_dir, f"Reunite development ({settings.cap_sender})")]
    try:
        mtimes = tuple(p.stat().st_mtime for p in paths)
    except OSError as exc:
        raise SigningKeyError(f"{exc.filename}: {exc.strerror}") from None
    return _keyring_of(tuple(paths), mtimes)


def check(settings: Settings) -> None:
    """Fail at start-up, not at the first alert, when configured key files are unusable."""
    if settings.cap_signing_key_paths:
        keyring(settings)


def _signature_method(key: PrivateKeyTypes) -> SignatureMethod:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return SignatureMethod.ECDSA_SHA256
    return SignatureMethod.RSA_SHA256


def sign(xml: bytes, ring: Keyring) -> bytes:
    """The document with an enveloped signature as the last child of its root element."""
    signer = XMLSigner(
        method=methods.enveloped,
        signature_algorithm=_signature_method(ring.key),
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=C14N,
    )
    # Read back with signxml's own parser, which refuses any DTD or entity (the document is
    # ours, but the hostile-input rule holds for every parse in the service).
    root = signer.get_root(xml)
    signed = signer.sign(root, key=ring.key, cert=ring.cert_pem.decode())
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
