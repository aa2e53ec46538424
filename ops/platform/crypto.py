"""Encryption at rest for push tokens, phone numbers and secrets (AES-256-GCM).

The key is derived from REUNITE_SECRET_KEY with HKDF, so one secret configures the deployment.
A stored value is a version byte (1), a random 96-bit nonce, then the ciphertext and its tag.
Values written before version 1 are Fernet tokens (AES-128-CBC + HMAC-SHA256), and are still
read. Version 1 is one call into OpenSSL per value. Fernet builds a cipher, an HMAC and a padder
in Python for each one, which made decryption 16% of a fan-out worker's CPU: every push
decrypts its device's token.
"""

from __future__ import annotations

import base64
import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ops.platform.config import get_settings

__all__ = ["InvalidToken", "decrypt", "encrypt", "fernet_for"]

PURPOSE = b"reunite device addresses v1"
_V1 = b"\x01"  # Fernet tokens start with "gAAAAA" (base64 of version byte 0x80): no clash


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        secret.encode()
    )


def fernet_for(secret: str, purpose: bytes = PURPOSE) -> Fernet:
    """A Fernet keyed by HKDF(secret, purpose)."""
    return Fernet(base64.urlsafe_b64encode(_derive(secret, purpose)))


@lru_cache
def _fernet() -> Fernet:
    return fernet_for(get_settings().secret_key.get_secret_value())


@lru_cache
def _aead() -> AESGCM:
    return AESGCM(_derive(get_settings().secret_key.get_secret_value(), PURPOSE + b" aes-gcm"))


def encrypt(plaintext: str) -> bytes:
    """Encrypt a device address or secret for storage."""
    nonce = os.urandom(12)
    return _V1 + nonce + _aead().encrypt(nonce, plaintext.encode(), _V1)


def decrypt(token: bytes) -> str:
    """Decrypt a stored value; InvalidToken if it was altered or sealed under another key."""
    if token[:1] != _V1:
        return _fernet().decrypt(token).decode()
    try:
        return _aead().decrypt(token[1:13], token[13:], _V1).decode()
    except InvalidTag as exc:
        raise InvalidToken from exc


def clear_keys() -> None:
    """Forget the derived keys (after the secret key setting changed)."""
    _fernet.cache_clear()
    _aead.cache_clear()
