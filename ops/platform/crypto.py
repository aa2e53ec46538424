"""Encryption at rest for push tokens and phone numbers (Fernet: AES-128-CBC + HMAC-SHA256).

The key is derived from REUNITE_SECRET_KEY with HKDF, so one secret configures the deployment.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ops.platform.config import get_settings

__all__ = ["InvalidToken", "decrypt", "encrypt", "fernet_for"]


def fernet_for(secret: str, purpose: bytes = b"reunite device addresses v1") -> Fernet:
    """A Fernet keyed by HKDF(secret, purpose)."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        secret.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


@lru_cache
def _fernet() -> Fernet:
    return fernet_for(get_settings().secret_key.get_secret_value())


def encrypt(plaintext: str) -> bytes:
    """Encrypt a device address for storage."""
    return _fernet().encrypt(plaintext.encode())


def decrypt(token: bytes) -> str:
    """Decrypt a stored device address."""
    return _fernet().decrypt(token).decode()
