"""Throwaway credentials for the sinks: an APNs .p8-style EC key and an FCM service account."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey


def _pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@dataclass(frozen=True)
class ApnsKey:
    team_id: str
    key_id: str
    private_pem: str  # what a .p8 file holds
    public_key: EllipticCurvePublicKey


def make_apns_key(team_id: str = "TEAM123456", key_id: str = "KEY1234567") -> ApnsKey:
    """A fresh P-256 signing key, like the .p8 Apple hands out."""
    key = ec.generate_private_key(ec.SECP256R1())
    return ApnsKey(team_id, key_id, _pem(key), key.public_key())


@dataclass(frozen=True)
class ServiceAccount:
    info: dict[str, Any]  # the service-account JSON document
    public_key: RSAPublicKey


def make_service_account(
    token_uri: str, project_id: str = "reunite-test", client_email: str | None = None
) -> ServiceAccount:
    """A fresh RSA service account whose grants the FCM sink's token endpoint accepts."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    email = client_email or f"push@{project_id}.iam.gserviceaccount.com"
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": os.urandom(8).hex(),
        "private_key": _pem(key),
        "client_email": email,
        "token_uri": token_uri,
    }
    return ServiceAccount(info, key.public_key())


def make_webhook_secret() -> str:
    """A Standard Webhooks secret ('whsec_' + base64 of 24 random bytes)."""
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()
