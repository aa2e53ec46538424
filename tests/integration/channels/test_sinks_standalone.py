"""The sinks started standalone (as `reunite demo` will) accept the real channels."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from channels.apns import ApnsChannel, ApnsSettings
from channels.base import PartnerEndpoint, Recipient
from channels.sms_smpp import SmppChannel, SmppSettings
from channels.webhook import WebhookChannel
from ops.peers import keys
from ops.platform.channel_settings import HttpTransportSettings
from tests.peers.samples import sample_delivery

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def standalone(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.peers", "--dir", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line, "sinks did not start"
        yield json.loads(line)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


async def test_standalone_sinks_accept_apns_webhook_and_smpp(standalone):
    key = keys.make_apns_key()
    delivery = sample_delivery()
    apns = ApnsChannel(
        ApnsSettings(
            base_url=standalone["apns"],
            topic="cn.reunite.app",
            team_id=key.team_id,
            key_id=key.key_id,
            auth_key=SecretStr(key.private_pem),
            transport=HttpTransportSettings(ca_bundle=Path(standalone["ca_bundle"])),
        )
    )
    hooks = WebhookChannel()
    host, port = standalone["smsc"].removeprefix("smpp://").split(":")
    smpp = SmppChannel(
        SmppSettings(host=host, port=int(port), system_id="demo", password=SecretStr("x"))
    )
    partner = PartnerEndpoint(
        "demo", f"{standalone['webhook']}/hooks/demo", SecretStr(standalone["webhook_secret"])
    )
    try:
        assert (await apns.send(Recipient("tok-1"), delivery)).is_ok
        assert (await hooks.send(partner, delivery)).is_ok
        assert (await smpp.send(Recipient("8613800138000"), delivery)).is_ok
    finally:
        await apns.aclose()
        await hooks.aclose()
        await smpp.aclose()
