"""Shared wiring for the fan-out tests: sinks, settings for real workers, devices, a case."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from alerts.users.models import User
from alerts.users.roles import Role
from channels import service
from channels.base import Area
from channels.messages import MessageKind
from geo.devices.models import Device
from ops.platform import crypto
from ops.platform.config import get_settings
from ops.platform.db import session_scope
from tests.factories import case_payload, make_agency, make_user

QUEUES = "apns,fcm,sms,webhook"


def channel_settings(**blocks: Any) -> dict[str, Any]:
    """A ChannelSettings document with quick retries, for the worker's environment."""
    doc: dict[str, Any] = {
        "retry_base_s": 0.3,
        "retry_max_delay_s": 2.0,
        "retry_horizon_s": 20.0,
        "breaker_failures": 50,
        "breaker_open_s": 30.0,
        "budget_wait_s": 0.1,
        "webhook": {"transport": {"timeout_s": 2.0}},
    }
    doc.update(blocks)
    return doc


def apply(monkeypatch, doc: dict[str, Any]) -> str:
    """Put the document in this process's settings too; returns it as the env value."""
    from tests.conftest import clear_caches

    value = json.dumps(doc)
    monkeypatch.setenv("REUNITE_CHANNELS", value)
    clear_caches()
    get_settings()
    return value


def worker_env(database: str, data_dir: Path, channels_json: str, **extra: str) -> dict[str, str]:
    """Environment for a `reunite worker` pointing at the test database and sinks."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database,
        REUNITE_DATA_DIR=str(data_dir),
        REUNITE_CHANNELS=channels_json,
        **extra,
    )
    return env


@contextmanager
def worker(
    env: dict[str, str], log: Path, concurrency: int = 2, queues: str = QUEUES
) -> Iterator[subprocess.Popen]:
    """A real worker in its own process group (so a test can SIGKILL the whole group)."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "alerts.cli",
                "worker",
                "--concurrency",
                str(concurrency),
                "--queues",
                queues,
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            # Fan-out starts the retry horizon: do not let a slow worker start eat into it.
            wait_until(lambda: b"ready" in log.read_bytes(), timeout=60, what="worker start")
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the worker and its pool children at once, as a crashed machine would."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def make_case() -> str:
    """A case with full details (draft is enough for fan-out); returns its id."""
    from alerts.cases import service as cases
    from alerts.cases.schemas import CaseCreate

    make_agency("PSB")
    officer_id = make_user("officer1", Role.OFFICER, "PSB")
    make_user("operator1", Role.OPERATOR, "PSB")
    with session_scope() as s:
        officer = s.get(User, officer_id)
        case = cases.create(s, CaseCreate.model_validate(case_payload()), officer, get_settings())
        return case.id


def make_partner(name: str) -> int:
    """A partner account; returns its id."""
    from alerts.partners import service as partners

    with session_scope() as s:
        return partners.create_partner(s, name, partners.PartnerKind.APP, actor="test").id


def add_devices(partner_id: int, platform: str, addresses: list[str], locale: str = "zh-CN"):
    """Register devices in bulk; returns {address: device id}."""
    with session_scope() as s:
        s.execute(
            insert(Device),
            [
                {
                    "partner_id": partner_id,
                    "external_id": f"{platform}-{addr}",
                    "platform": platform,
                    "address_enc": crypto.encrypt(addr),
                    "locale": locale,
                    "opted_in": True,
                    "active": True,
                }
                for addr in addresses
            ],
        )
    with session_scope() as s:
        from sqlalchemy import select

        rows = s.execute(
            select(Device.id, Device.external_id).where(Device.partner_id == partner_id)
        ).all()
    prefix = f"{platform}-"
    return {r.external_id[len(prefix) :]: r.id for r in rows if r.external_id.startswith(prefix)}


def new_message(case_id: str, kind: MessageKind = MessageKind.ALERT, wave: int = 1) -> str:
    """Create a message as the wave engine does; returns its id."""
    area = {
        "cap_circle": "23.129100,113.264400 100",
        "cap_polygon": "23.9,113.2 23.1,114.1 22.3,113.2 23.1,112.4 23.9,113.2",
        "radius_km": 100.0,
        "center": [23.1291, 113.2644],
    }
    with session_scope() as s:
        return service.create_message(s, case_id, kind, wave, Area.from_json(area)).id


def wait_until(check, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    """Poll until check() is truthy; the assertion names what was awaited."""
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = check()
    assert value, f"{what} not reached within {timeout}s"
    return value


@contextmanager
def apns_peer(monkeypatch, *, slow_seconds: float, **settings: Any):
    """The loopback APNs peer (every "slow-" token held slow_seconds) and channel settings
    pointing at it, applied to this process; yields (sink, settings JSON for workers)."""
    from ops.peers import apns as apns_sink
    from ops.peers import keys
    from ops.peers._runtime import temp_tls
    from tests.peers.config import TOPIC

    key = keys.make_apns_key()
    sink = apns_sink.ApnsSink(
        topic=TOPIC,
        team_id=key.team_id,
        key_id=key.key_id,
        public_key=key.public_key,
        slow_seconds=slow_seconds,
    )
    with temp_tls() as tls, apns_sink.running(sink, tls=tls) as endpoint:
        doc = channel_settings(
            apns={
                "base_url": endpoint.url,
                "topic": TOPIC,
                "team_id": key.team_id,
                "key_id": key.key_id,
                "auth_key": key.private_pem,
                "transport": {"ca_bundle": str(endpoint.ca_bundle), "timeout_s": 5.0},
            },
            **settings,
        )
        yield sink, apply(monkeypatch, doc)
