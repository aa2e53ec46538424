"""Fixtures: each channel against its real local peer (ops.peers), with a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from channels.apns import ApnsChannel
from channels.fcm import FcmChannel
from ops.peers import apns as apns_sink
from ops.peers import fcm as fcm_sink
from ops.peers import keys
from ops.peers._runtime import Endpoint, TlsFiles, temp_tls
from tests.peers.config import TOPIC, FakeClock, apns_settings, fcm_settings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def tls_files() -> Iterator[TlsFiles]:
    with temp_tls() as files:
        yield files


@pytest.fixture(scope="session")
def apns_key() -> keys.ApnsKey:
    return keys.make_apns_key()


@pytest.fixture
def apns_peer(
    apns_key: keys.ApnsKey, tls_files: TlsFiles, clock: FakeClock
) -> Iterator[tuple[apns_sink.ApnsSink, Endpoint]]:
    sink = apns_sink.ApnsSink(
        topic=TOPIC,
        team_id=apns_key.team_id,
        key_id=apns_key.key_id,
        public_key=apns_key.public_key,
        clock=clock,
        slow_seconds=1.5,
    )
    with apns_sink.running(sink, tls=tls_files) as endpoint:
        yield sink, endpoint


@pytest.fixture
async def apns_channel(
    apns_peer: tuple[apns_sink.ApnsSink, Endpoint], apns_key: keys.ApnsKey, clock: FakeClock
) -> AsyncIterator[ApnsChannel]:
    channel = ApnsChannel(apns_settings(apns_peer[1], apns_key), clock=clock)
    yield channel
    await channel.aclose()


@pytest.fixture(scope="session")
def service_account() -> keys.ServiceAccount:
    # token_uri is filled in per test, once the sink's port is known.
    return keys.make_service_account(token_uri="http://placeholder/token")


@pytest.fixture
def fcm_peer(
    service_account: keys.ServiceAccount, clock: FakeClock
) -> Iterator[tuple[fcm_sink.FcmSink, Endpoint]]:
    sink = fcm_sink.FcmSink(
        project_id=service_account.info["project_id"],
        client_email=service_account.info["client_email"],
        public_key=service_account.public_key,
        clock=clock,
        slow_seconds=1.5,
    )
    with fcm_sink.running(sink) as endpoint:
        yield sink, endpoint


@pytest.fixture
async def fcm_channel(
    fcm_peer: tuple[fcm_sink.FcmSink, Endpoint],
    service_account: keys.ServiceAccount,
    clock: FakeClock,
) -> AsyncIterator[FcmChannel]:
    channel = FcmChannel(fcm_settings(fcm_peer[1], service_account), clock=clock)
    yield channel
    await channel.aclose()
