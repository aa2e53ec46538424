"""In production mode no webhook reaches a private or loopback address, at registration or at
send time (a host may start resolving to one later)."""

from __future__ import annotations

import time

import pytest

from alerts.partners import service as partners
from channels import fanout
from channels import service as channels
from ops.peers import webhook as webhook_sink
from ops.platform import crypto
from ops.platform.config import get_settings
from ops.platform.db import session_scope
from tests.factories import token
from tests.integration.partners.support import (
    approved_case,
    bearer,
    create_partner,
    start_first_wave,
)
from tests.support.cap_signatures import production_keys

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


@pytest.fixture
def production(monkeypatch, tmp_path):
    monkeypatch.setenv("REUNITE_MODE", "production")
    production_keys(monkeypatch, tmp_path / "keys")
    monkeypatch.setenv("REUNITE_SECRET_KEY", "k" * 40)
    get_settings.cache_clear()
    crypto.clear_keys()  # keyed by the secret key
    yield
    monkeypatch.delenv("REUNITE_SECRET_KEY")
    monkeypatch.setenv("REUNITE_MODE", "test")
    get_settings.cache_clear()
    crypto.clear_keys()


def test_loopback_endpoint_is_refused_at_registration_in_production(world, api, production):
    key = bearer(create_partner(api, token(api, "admin1"), "MapsApp")["key"]["key"])
    for url in ("https://127.0.0.1/hook", "https://localhost:8443/hook", "http://example.com/h"):
        res = api.post("/api/v1/partner/webhooks", json={"url": url}, headers=key)
        assert res.status_code == 422, url
        assert res.json()["detail"][0]["field"] == "url"


def test_endpoint_resolving_to_loopback_at_send_time_is_never_called(world, production):
    sink = webhook_sink.WebhookReceiver(secret="whsec_" + "A" * 32)
    with webhook_sink.running(sink) as hook:
        with session_scope() as s:
            partner = partners.create_partner(s, "Rebinder", partners.PartnerKind.APP, "test")
            # Stored directly, as if the host had resolved to a public address at registration.
            url = f"{hook.url}/hooks/x"
            endpoint_id = channels.add_endpoint(s, partner.id, url, sink.secret).id
        message_id = start_first_wave(approved_case(world))
        tally, retry = fanout.run_webhook(
            message_id, endpoint_id, 0, time.time(), get_settings().channels, channels.delivery_for
        )
    assert (tally.failed, retry, sink.attempts) == (1, None, 0)
