"""`reunite demo`: a self-contained Reunite on embedded defaults, with nothing on the network.

Seeds synthetic devices clustered around Guangdong's cities (bulk SQL insert, then the location
index's bulk ingest, in-process), starts local partner sinks (an APNs HTTP/2 server, an FCM
server, an SMSC and a webhook receiver, from ops/peers) so deliveries really happen,
creates demo police users and a partner with a webhook endpoint, then runs API, worker and beat
like `reunite serve` and prints the console URL and the credentials. Re-running reuses the data
directory: devices are not inserted twice, their locations are refreshed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import typer
from sqlalchemy import func, insert, select

from ops.platform import crypto
from ops.platform.config import Mode, get_settings
from ops.platform.db import session_scope

DEMO_PARTNER = "Demo Maps"
AGENCY = "Guangzhou PSB (demo)"
USERS = [  # username, role, rank
    ("officer1", "officer", "constable"),
    ("sup1", "supervisor", "inspector"),
    ("operator1", "operator", "constable"),
    ("admin1", "admin", "constable"),
]
BOX = (20.2, 25.5, 109.7, 117.3)  # Guangdong: lat min/max, lon min/max
CITIES = [  # lat, lon, share of clustered devices, spread (km)
    (23.13, 113.26, 0.25, 20),  # Guangzhou
    (22.54, 114.06, 0.22, 15),  # Shenzhen
    (23.02, 113.75, 0.12, 15),  # Dongguan
    (23.02, 113.12, 0.11, 12),  # Foshan
    (23.35, 116.68, 0.08, 12),  # Shantou
    (21.27, 110.36, 0.07, 12),  # Zhanjiang
    (22.27, 113.57, 0.08, 8),  # Zhuhai
    (23.11, 114.42, 0.07, 10),  # Huizhou
]
PLATFORMS = (("apns", 0.45), ("fcm", 0.54), ("sms", 0.01))
CHUNK = 20_000


@dataclass(frozen=True)
class Credentials:
    """What the demo prints: passwords, TOTP secrets, the partner key and webhook secret."""

    passwords: dict[str, str]
    totp: dict[str, str]
    partner_key: str
    webhook_secret: str


def synth(n: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates (70% in city clusters, 30% uniform) and platforms, the same for each seed."""
    from geo import areas

    rng = np.random.default_rng(seed)
    n_city = int(n * 0.7)
    shares = np.array([c[2] for c in CITIES])
    which = rng.choice(len(CITIES), n_city, p=shares / shares.sum())
    lat0 = np.array([c[0] for c in CITIES])[which]
    lon0 = np.array([c[1] for c in CITIES])[which]
    spread = np.array([c[3] for c in CITIES])[which] * 1000.0
    lon_c, lat_c, _ = areas.GEOD.fwd(
        lon0, lat0, rng.uniform(0, 360, n_city), np.abs(rng.normal(0, 1, n_city)) * spread
    )
    lat = np.concatenate([lat_c, rng.uniform(BOX[0], BOX[1], n - n_city)])
    lon = np.concatenate([lon_c, rng.uniform(BOX[2], BOX[3], n - n_city)])
    names = np.array([p for p, _ in PLATFORMS])
    platform = rng.choice(names, n, p=[share for _, share in PLATFORMS])
    return lat, lon, platform


def _address(platform: str, i: int) -> str:
    if platform == "sms":
        return f"86139{i:08d}"
    return f"demo{platform}{i:010d}"


def seed_devices(partner_id: int, n: int) -> int:
    """Insert the demo devices in bulk (once) and put every one in the location index."""
    from geo import cells
    from geo.devices import service as devices
    from geo.devices.models import Device

    lat, lon, platform = synth(n)
    with session_scope() as session:
        have = session.scalar(
            select(func.count()).select_from(Device).where(Device.partner_id == partner_id)
        )
    label = "registering devices" if have < n else "devices registered; refreshing locations"
    with typer.progressbar(length=2 * n, label=label, file=None) as bar:
        if have < n:
            bar.update(have)
            for start in range(have, n, CHUNK):
                stop = min(n, start + CHUNK)
                rows = [
                    {
                        "partner_id": partner_id,
                        "external_id": f"d{i}",
                        "platform": str(platform[i]),
                        "address_enc": crypto.encrypt(_address(str(platform[i]), i)),
                        "locale": "zh-CN" if i % 10 else "en",
                        "opted_in": True,
                        "active": True,
                    }
                    for i in range(start, stop)
                ]
                with session_scope() as session:
                    session.execute(insert(Device), rows)
                bar.update(stop - start)
        else:
            bar.update(n)
        with session_scope() as session:
            rows = session.execute(
                select(Device.external_id, Device.id).where(Device.partner_id == partner_id)
            ).all()
        id_of = dict(rows)
        ids = np.array([id_of[f"d{i}"] for i in range(n)], dtype=np.int64)
        index = devices.location_index()
        now = int(time.time())
        for start in range(0, n, CHUNK * 5):
            stop = min(n, start + CHUNK * 5)
            snapped = cells.snap_many(lat[start:stop], lon[start:stop])
            index.ingest(ids[start:stop], snapped, np.full(stop - start, now, dtype=np.uint32))
            bar.update(stop - start)
    return n


def _credentials_file() -> Path:
    return get_settings().data_dir.resolve() / "demo-credentials.json"


def ensure_accounts(webhook_url: str, webhook_secret: str) -> Credentials:
    """Demo agency, users (TOTP enrolled), and the partner with its webhook endpoint."""
    import pyotp

    from alerts.console.models import TotpSecret
    from alerts.partners import service as partners
    from alerts.partners.models import Partner
    from alerts.users import service as users
    from alerts.users.models import User
    from alerts.users.roles import Rank, Role
    from channels import service as channels
    from channels.models import PartnerEndpoint

    path = _credentials_file()
    saved: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    passwords: dict[str, str] = saved.get("passwords", {})
    totp: dict[str, str] = saved.get("totp", {})
    partner_key = saved.get("partner_key", "")
    with session_scope() as session:
        agency = users.agency_by_name(session, AGENCY) or users.create_agency(session, name=AGENCY)
        for name, role, rank in USERS:
            user = session.scalar(select(User).where(User.username == name))
            if user is None:
                passwords[name] = f"demo-{secrets.token_urlsafe(9)}"
                user = users.create_user(
                    session,
                    username=name,
                    password=passwords[name],
                    role=Role(role),
                    rank=Rank(rank),
                    agency=agency,
                )
            if session.get(TotpSecret, user.id) is None:
                totp[name] = pyotp.random_base32()
                session.add(
                    TotpSecret(
                        user_id=user.id,
                        secret_enc=crypto.encrypt(totp[name]),
                        confirmed_at=datetime.now(UTC),
                        last_step=0,
                    )
                )
        partner = session.scalar(select(Partner).where(Partner.name == DEMO_PARTNER))
        if partner is None:
            partner = partners.create_partner(
                session, DEMO_PARTNER, partners.PartnerKind.APP, actor="demo"
            )
            partner_key = partners.issue_key(
                session,
                partner,
                [partners.Scope.DEVICES_WRITE, partners.Scope.FEEDS_READ],
                actor="demo",
            )
        endpoint = session.scalar(
            select(PartnerEndpoint).where(PartnerEndpoint.partner_id == partner.id)
        )
        url = f"{webhook_url}/hooks/demo-maps"
        if endpoint is None:
            channels.add_endpoint(
                session, partner.id, url, webhook_secret, rate_per_s=50, max_concurrency=4
            )
        else:  # the receiver listens on a fresh port each run
            endpoint.url = url
            endpoint.secret_enc = crypto.encrypt(webhook_secret)
            endpoint.active = True
        partner_id = partner.id
    doc = {
        "passwords": passwords,
        "totp": totp,
        "webhook_secret": webhook_secret,
        "partner_key": partner_key,
        "partner_id": partner_id,
    }
    path.write_text(json.dumps(doc, indent=1))
    path.chmod(0o600)
    return Credentials(passwords, totp, partner_key, webhook_secret)


def _webhook_secret() -> str:
    from ops.peers import keys

    return keys.make_webhook_secret()


def partner_id() -> int:
    """The demo partner's id (after ensure_accounts)."""
    return int(json.loads(_credentials_file().read_text())["partner_id"])


class Sinks:
    """The local partner peers, running in this process's threads for the demo's lifetime."""

    def __init__(self, data_dir: Path, webhook_secret: str) -> None:
        from ops.peers import apns, fcm, keys, smsc, webhook
        from ops.peers._runtime import make_self_signed

        self.stack = contextlib.ExitStack()
        self.apns = apns.ApnsSink(topic="cn.reunite.demo", team_id="", key_id="", public_key=None)
        self.fcm = fcm.FcmSink(project_id="reunite-demo", client_email="", public_key=None)
        self.smsc = smsc.SmscSink()
        self.webhook = webhook.WebhookReceiver(secret=webhook_secret)
        tls = make_self_signed(data_dir / "sinks")
        apns_ep = self.stack.enter_context(apns.running(self.apns, tls=tls))
        fcm_ep = self.stack.enter_context(fcm.running(self.fcm))
        smsc_ep = self.stack.enter_context(smsc.running(self.smsc))
        self.webhook_url = self.stack.enter_context(webhook.running(self.webhook)).url
        key = keys.make_apns_key()
        account = keys.make_service_account(token_uri=f"{fcm_ep.url}/token")
        host, port = smsc_ep.url.removeprefix("smpp://").split(":")
        self.channels = {
            "apns": {
                "base_url": apns_ep.url,
                "topic": "cn.reunite.demo",
                "team_id": key.team_id,
                "key_id": key.key_id,
                "auth_key": key.private_pem,
                "transport": {"ca_bundle": str(apns_ep.ca_bundle)},
            },
            "fcm": {
                "project_id": "reunite-demo",
                "client_email": account.info["client_email"],
                "private_key": account.info["private_key"],
                "token_uri": f"{fcm_ep.url}/token",
                "base_url": fcm_ep.url,
            },
            "smpp": {"host": host, "port": int(port), "system_id": "reunite", "password": "demo"},
            "sms_rate_per_s": 200,
        }

    def counts(self) -> dict[str, int]:
        """Deliveries each peer accepted so far."""
        return {
            "apns": len(self.apns.accepted),
            "fcm": len(self.fcm.accepted),
            "sms": len(self.smsc.messages),
            "webhook": len(self.webhook.events),
        }

    def close(self) -> None:
        """Stop every sink."""
        self.stack.close()


def _report(sinks: Sinks, stop: threading.Event) -> None:
    last: dict[str, int] = {}
    while not stop.wait(2.0):
        now = sinks.counts()
        if now != last:
            typer.echo("sinks: " + ", ".join(f"{k} {v:,}" for k, v in now.items()))
            last = now


def _banner(base: str, creds: Credentials, devices: int, stop: threading.Event) -> None:
    with httpx.Client(timeout=2) as http:
        while not stop.is_set():
            try:
                if http.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            stop.wait(0.5)
    if stop.is_set():
        return
    lines = [
        "",
        "Reunite demo is ready.",
        f"  console   {base}/console/   (API docs: {base}/docs, metrics: {base}/metrics)",
        f"  devices   {devices:,} synthetic devices around Guangdong's cities",
        "  users     (the console asks for a TOTP code: add the secret to an authenticator,",
        "             or run: python -c \"import pyotp; print(pyotp.TOTP('SECRET').now())\")",
    ]
    for name, role, _ in USERS:
        password = creds.passwords.get(name, "(set on an earlier run: demo-credentials.json)")
        secret = creds.totp.get(name, "(enrolled on an earlier run)")
        lines.append(f"    {name:<10} {role:<10} password {password:<22} TOTP {secret}")
    if creds.partner_key:
        lines.append(f"  partner   {DEMO_PARTNER}: API key {creds.partner_key}")
    lines += [
        f"  saved in  {_credentials_file()}",
        "  try       officer1 creates a case near Guangzhou and submits it; sup1 approves it;",
        "            watch the waves and deliveries move in the console (sink counts below).",
        "",
    ]
    typer.echo("\n".join(lines))


def run(devices: int, port: int | None) -> int:
    """Seed, start sinks and every service, and block until interrupted."""
    from alerts import cli

    settings = get_settings()
    if settings.mode is Mode.PRODUCTION:
        typer.echo("error: reunite demo is for development mode only", err=True)
        return 2
    if settings.database_url or settings.redis_url:
        typer.echo("note: the demo uses DATABASE_URL/REDIS_URL as configured", err=True)
    started_redis = cli.ensure_embedded_redis()
    cli.first_start_migrate()
    saved = _credentials_file()
    secret = json.loads(saved.read_text())["webhook_secret"] if saved.exists() else None
    sinks = Sinks(settings.data_dir.resolve(), secret or _webhook_secret())
    stop = threading.Event()
    try:
        creds = ensure_accounts(sinks.webhook_url, sinks.webhook.secret)
        seed_devices(partner_id(), devices)
        os.environ["REUNITE_CHANNELS"] = json.dumps(sinks.channels)
        # Per-task INFO lines would bury the banner and the sink counts.
        os.environ.setdefault("REUNITE_LOG_LEVEL", "WARNING")
        base = f"http://{settings.api_host}:{port if port is not None else settings.api_port}"
        threading.Thread(target=_banner, args=(base, creds, devices, stop), daemon=True).start()
        threading.Thread(target=_report, args=(sinks, stop), daemon=True).start()
        try:
            cli.serve(host=None, port=port)
        except typer.Exit as exc:
            return int(exc.exit_code or 0)
        return 0
    finally:
        stop.set()
        sinks.close()
        if started_redis:
            from ops.platform.embedded import EmbeddedRedis

            EmbeddedRedis(settings.data_dir).stop()
