"""Partner webhook URLs cannot reach internal addresses, even by DNS rebinding.

Before, production checked the host's addresses once and httpx resolved the name again to
connect: a name switched to 127.0.0.1 in between made the worker call a loopback port, and the
reason partners could read (`transport_ConnectError`) turned that into a port scanner. Spellings
such as [::127.0.0.1] or [64:ff9b::a9fe:a9fe] passed `is_global`.
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from channels import egress
from channels.base import OutcomeKind, PartnerEndpoint
from channels.webhook import UnsafeUrl, WebhookChannel, check_url
from ops.peers import webhook as webhook_sink
from tests.peers.samples import sample_delivery

SECRET = "whsec_" + "B" * 32


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "169.254.169.254",
        "192.168.0.1",
        "100.64.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::127.0.0.1",
        "::ffff:127.0.0.1",
        "::ffff:0:7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::a9fe:a9fe",
        "2002:a9fe:a9fe::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "224.0.0.1",
        "ff02::1",
    ],
)
def test_internal_and_ipv4_carrying_addresses_are_refused(address):
    assert not egress.allowed(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_global_unicast_addresses_are_allowed(address):
    assert egress.allowed(address)


def test_registration_refuses_each_spelling_of_an_internal_address():
    for host in (
        "[::127.0.0.1]",
        "[64:ff9b::a9fe:a9fe]",
        "[2002:a9fe:a9fe::1]",
        "[::ffff:0:7f00:1]",
    ):
        with pytest.raises(UnsafeUrl):
            check_url(f"https://{host}/hook", allow_private=False)


class Rebinding:
    """A resolver that answers a public address first and loopback afterwards."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls += 1
        return self.answers[min(self.calls, len(self.answers)) - 1]


@pytest.fixture
def receiver():
    sink = webhook_sink.WebhookReceiver(secret=SECRET)
    with webhook_sink.running(sink) as endpoint:
        yield sink, int(endpoint.url.rsplit(":", 1)[1])


def _endpoint(url: str) -> PartnerEndpoint:
    return PartnerEndpoint(partner_id="7", url=url, secret=SecretStr(SECRET), timeout_s=1.0)


@pytest.mark.anyio
async def test_a_name_rebound_to_loopback_after_the_check_never_reaches_it(receiver):
    sink, port = receiver
    # A public answer (what a check would see), then loopback (what a second lookup would get).
    resolver = Rebinding(["93.184.216.34"], ["127.0.0.1"])
    channel = WebhookChannel(allow_private=False, resolver=resolver)
    url = f"http://rebind.test:{port}/hooks/a"
    try:
        first = await channel.send(_endpoint(url), sample_delivery())
        second = await channel.send(_endpoint(url), sample_delivery())
    finally:
        await channel.aclose()
    assert sink.events == [] and sink.attempts == 0, "the loopback receiver was reached"
    assert resolver.calls == 2, "each connection resolves once and uses that answer"
    # The first connection went to the checked public address (unreachable here); the second
    # answer is refused before connecting. Partners read no transport detail either way.
    assert first.kind is OutcomeKind.RETRY and first.reason in {"endpoint_unreachable", "timeout"}
    assert (second.kind, second.reason) == (OutcomeKind.FAILED, "endpoint_unreachable")


@pytest.mark.anyio
async def test_the_connection_goes_to_the_resolved_address_with_the_urls_host(receiver):
    sink, port = receiver
    resolver = Rebinding(["127.0.0.1"])
    channel = WebhookChannel(allow_private=True, resolver=resolver)  # development mode
    try:
        outcome = await channel.send(
            _endpoint(f"http://partner.example:{port}/hooks/a"), sample_delivery()
        )
    finally:
        await channel.aclose()
    assert outcome.is_ok, outcome
    assert resolver.calls == 1
    [event] = sink.events
    assert event.headers["host"] == f"partner.example:{port}"
