"""Clock and settings helpers that point channels at the local sinks."""

from __future__ import annotations

import time

from pydantic import SecretStr

from channels.apns import ApnsSettings
from channels.fcm import FcmSettings
from ops.peers import keys
from ops.peers._runtime import Endpoint
from ops.platform.channel_settings import HttpTransportSettings

TOPIC = "cn.reunite.app"


class FakeClock:
    """A settable clock; starts at the real time so peers that check timestamps agree."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


def apns_settings(endpoint: Endpoint, key: keys.ApnsKey, **overrides) -> ApnsSettings:
    """Settings pointing at a local APNs sink."""
    fields = {
        "base_url": endpoint.url,
        "topic": TOPIC,
        "team_id": key.team_id,
        "key_id": key.key_id,
        "auth_key": SecretStr(key.private_pem),
        "transport": HttpTransportSettings(ca_bundle=endpoint.ca_bundle, timeout_s=0.5),
    }
    return ApnsSettings(**{**fields, **overrides})


def fcm_settings(endpoint: Endpoint, account: keys.ServiceAccount, **overrides) -> FcmSettings:
    """Settings pointing at a local FCM sink."""
    return FcmSettings.from_service_account(
        account.info,
        token_uri=f"{endpoint.url}/token",
        base_url=endpoint.url,
        transport=HttpTransportSettings(timeout_s=0.5),
        **overrides,
    )
