"""One photo store for every process: the API and the workers run with separate data
directories, as the production containers do, and share only the database, Redis and the
photo store. A photo uploaded through the console reaches the pushes (a signed link the
worker could only make because it sees the photo) and erasure, run on the worker's side,
deletes it. Once with an S3 server on loopback (moto's standalone server), once with a
directory both processes mount.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis
from PIL import Image

from ops.peers import apns as apns_sink
from ops.peers import keys
from ops.peers._runtime import temp_tls
from tests.e2e.support import cli, create_police, login, ready
from tests.factories import PASSWORD
from tests.workers import free_port, reunite_env, reunite_process, wait_for

pytestmark = pytest.mark.slow
TOPIC = "org.reunite.app"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
REDIS_DB = 12


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (400, 300), (30, 120, 200)).save(buf, "JPEG")
    return buf.getvalue()


@contextlib.contextmanager
def _s3_server():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"s3+http://reunite:reunite-secret@127.0.0.1:{port}/case-photos"
    finally:
        server.stop()


def _stored_names(spec: str) -> list[str]:
    """What the shared store holds, read with a client of its own."""
    if spec.startswith("s3+http://"):
        from minio import Minio

        client = Minio(spec.split("@")[1].split("/")[0], "reunite", "reunite-secret", secure=False)
        return sorted(o.object_name for o in client.list_objects("case-photos"))
    return sorted(p.name for p in Path(spec).iterdir())


def _console_case(http: httpx.Client, photo: bytes) -> str:
    """Officer1 files and submits a case with a photo through the console; returns its id."""
    page = http.get("/console/login")
    http.post(
        "/console/login",
        data={
            "username": "officer1",
            "password": PASSWORD,
            "csrf_token": CSRF.search(page.text)[1],
        },
    )
    token = CSRF.search(http.get("/console/cases/new").text)[1]
    form = {
        "child_name": "Lin Xiaoyu",
        "sex": "female",
        "age_years": "6",
        "height_cm": "115",
        "clothing": "red jacket",
        # The console's default zone is UTC+8; last seen 40 minutes ago.
        "last_seen_at": (datetime.now(UTC) + timedelta(hours=8, minutes=-40)).strftime(
            "%Y-%m-%dT%H:%M"
        ),
        "lat": "23.1291",
        "lon": "113.2644",
        "address": "Beijing Road, Guangzhou",
        "tip_line": "+86 20 110",
        "languages": ["zh-CN", "en"],
        "action": "submit",
        "csrf_token": token,
    }
    res = http.post(
        f"/console/cases?csrf_token={token}",
        data=form,
        files={"photo": ("kid.jpg", photo, "image/jpeg")},
        follow_redirects=False,
    )
    assert res.status_code == 303, res.text
    http.cookies.clear()
    return res.headers["location"].rstrip("/").rsplit("/", 1)[-1]


@pytest.mark.parametrize("store", ["s3", "shared-directory"])
def test_api_and_worker_with_separate_data_dirs_share_photos_for_pushes_and_erasure(
    tmp_path, store
):
    key = keys.make_apns_key()
    sink = apns_sink.ApnsSink(
        topic=TOPIC, team_id=key.team_id, key_id=key.key_id, public_key=key.public_key
    )
    broker = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    broker.flushdb()
    with contextlib.ExitStack() as stack:
        if store == "s3":
            spec = stack.enter_context(_s3_server())
        else:
            spec = str(tmp_path / "volume" / "photos")
        tls = stack.enter_context(temp_tls())
        apns = stack.enter_context(apns_sink.running(sink, tls=tls))
        port = free_port()
        common = reunite_env(
            DATABASE_URL=f"sqlite:///{tmp_path / 'shared.db'}",
            REDIS_URL=f"redis://127.0.0.1:6379/{REDIS_DB}",
            REUNITE_MODE="development",
            REUNITE_PHOTO_STORE=spec,
            REUNITE_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
            REUNITE_RELAY_INTERVAL_SECONDS="1",
            REUNITE_WAVE_TICK_SECONDS="1",
            REUNITE_ERASURE_RETENTION_DAYS="0",
            REUNITE_CHANNELS=json.dumps(
                {
                    "apns": {
                        "base_url": apns.url,
                        "topic": TOPIC,
                        "team_id": key.team_id,
                        "key_id": key.key_id,
                        "auth_key": key.private_pem,
                        "transport": {"ca_bundle": str(apns.ca_bundle)},
                    }
                }
            ),
        )
        api_env = common | {"REUNITE_DATA_DIR": str(tmp_path / "api")}
        worker_env = common | {"REUNITE_DATA_DIR": str(tmp_path / "worker")}
        cli(["db", "upgrade"], api_env, tmp_path)
        for name, args, env in [
            ("api", ["api", "--port", str(port)], api_env),
            ("worker", ["worker"], worker_env),
            ("beat", ["beat"], worker_env),
        ]:
            stack.enter_context(reunite_process(args, env, tmp_path, tmp_path / f"{name}.log"))
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        wait_for(lambda: ready(http), timeout=60)
        create_police(api_env, tmp_path, agency="GZ")
        out = cli(["partners", "create", "MapsApp", "--scope", "devices:write"], api_env, tmp_path)
        partner = {"Authorization": f"Bearer {out.split()[-1]}"}
        rows = [
            {
                "id": f"d{i}",
                "lat": 23.13 + i / 1000,
                "lon": 113.26,
                "platform": "apns",
                "address": f"tok-photo-{i:02d}-0123456789",
            }
            for i in range(5)
        ]
        res = http.post("/api/v1/partner/devices/bulk", json=rows, headers=partner)
        assert res.status_code == 200 and res.json()["applied"] == 5, res.text

        photo = _jpeg()
        case_id = _console_case(http, photo)
        names = _stored_names(spec)
        assert len(names) == 2 and any(n.endswith(".thumb.jpg") for n in names), names
        assert not (tmp_path / "api" / "photos").exists(), "the API kept a private copy"

        sup = login(http, "sup1", api_env, tmp_path)
        assert http.post(f"/api/v1/cases/{case_id}/approve", headers=sup).status_code == 200
        wait_for(lambda: len(sink.accepted) >= 5, 120)
        links = {p.payload["reunite"].get("photo") for p in sink.accepted}
        assert None not in links and len(links) == 1, "every push carries the photo link"
        fetched = http.get(links.pop())
        assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(fetched.content)).size == (400, 300)

        officer = login(http, "officer1")
        assert http.post(f"/api/v1/cases/{case_id}/resolve", headers=officer).status_code == 200
        # Erasure where the photos never were on disk: the worker's side.
        wait_for(lambda: "erased 1" in cli(["privacy", "erase-due"], worker_env, tmp_path), 60)
        assert _stored_names(spec) == [], "erasure left photos in the shared store"
        assert not (tmp_path / "worker" / "photos").exists()
