"""Builders for agencies, users, tokens and valid case payloads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from alerts.users import service as users
from alerts.users.roles import Rank, Role
from ops.platform.db import session_scope

PASSWORD = "correct horse battery staple"
CHILD_NAME = "Lin Xiaoyu"  # a marker the privacy tests search for


def make_agency(name: str, parent: str | None = None, self_approval: Rank | None = None) -> int:
    """Create an agency and return its id."""
    with session_scope() as session:
        return users.create_agency(
            session, name=name, parent=parent, self_approval_min_rank=self_approval
        ).id


def make_user(username: str, role: Role, agency: str, rank: Rank = Rank.CONSTABLE) -> int:
    """Create a user in an existing agency and return its id."""
    with session_scope() as session:
        agency_row = users.agency_by_name(session, agency)
        assert agency_row is not None
        return users.create_user(
            session, username=username, password=PASSWORD, role=role, rank=rank, agency=agency_row
        ).id


def totp_code(username: str) -> str | None:
    """A TOTP code the token endpoint accepts for a supervisor, operator or admin (enrolling
    them, confirmed, on first use), or None for an officer without a second factor. Each code
    is for a time step not used before, as the server accepts a step once."""
    import time

    import pyotp

    from alerts.console import security
    from alerts.console.models import TotpSecret
    from alerts.users.models import User
    from ops.platform import crypto

    with session_scope() as session:
        user = session.query(User).filter_by(username=username).one()
        row = session.get(TotpSecret, user.id)
        if row is None and Role(user.role) not in users.SECOND_FACTOR_ROLES:
            return None
        if row is None:
            row = TotpSecret(
                user_id=user.id,
                secret_enc=crypto.encrypt(pyotp.random_base32()),
                confirmed_at=datetime.now(UTC),
                last_step=0,
            )
            session.add(row)
            session.flush()
        # The current step (still accepted for one step after it ends), or the next one if
        # this account used the current step already; never one further ahead than that.
        now_step = int(time.time() // security.TOTP_STEP)
        step = max(row.last_step + 1, now_step)
        while step > int(time.time() // security.TOTP_STEP) + 1:
            time.sleep(1)
        return pyotp.TOTP(crypto.decrypt(row.secret_enc)).at(step * security.TOTP_STEP)


def token(client, username: str) -> dict[str, str]:
    """Authorization header for a user, obtained through the token endpoint (with a TOTP code
    where the account needs one); cached per client, since a code's step is used once."""
    cache = client.__dict__.setdefault("_reunite_tokens", {})
    if username not in cache:
        data = {"username": username, "password": PASSWORD}
        code = totp_code(username)
        if code is not None:
            data["totp"] = code
        res = client.post("/api/v1/auth/token", data=data)
        assert res.status_code == 200, res.text
        cache[username] = {"Authorization": f"Bearer {res.json()['access_token']}"}
    return dict(cache[username])


def jpeg_with_gps() -> bytes:
    """A 640x480 JPEG carrying a camera make and a GPS position in its EXIF."""
    import io

    from PIL import Image

    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[0x8825] = {1: "N", 2: (23.0, 7.0, 45.0), 3: "E", 4: (113.0, 15.0, 52.0)}
    buf = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 40, 40)).save(buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


def uploaded_photo(
    user_id: int, data: bytes = b"\xff\xd8\xff\xe0 pixels", ref: str = "photo_0001abcd"
) -> dict[str, str]:
    """A photo as if the user had uploaded it (row and stored file); the case payload's
    `photos` entry for it. Its bytes are whatever the test needs to recognise."""
    from alerts.console.models import ConsolePhoto
    from alerts.users.models import User
    from ops.platform import blobstore
    from ops.platform.config import get_settings
    from ops.platform.db import session_scope

    with session_scope() as session:
        user = session.get(User, user_id)
        session.add(
            ConsolePhoto(
                ref=ref,
                agency_id=user.agency_id,
                uploaded_by_id=user.id,
                content_type="image/jpeg",
                width=1,
                height=1,
            )
        )
    blobstore.store_for(get_settings()).put(f"{ref}.jpg", data, "image/jpeg")
    return {"ref": ref, "content_type": "image/jpeg"}


def case_payload(**overrides: Any) -> dict[str, Any]:
    """A complete, valid case as the API takes it."""
    payload: dict[str, Any] = {
        "child": {
            "name": CHILD_NAME,
            "sex": "female",
            "age_years": 6,
            "height_cm": 115,
            "weight_kg": 20,
            "appearance": "short black hair",
            "clothing": "red jacket, blue jeans",
            "distinguishing_marks": "small scar on left cheek",
            "languages_spoken": ["Cantonese", "Mandarin"],
        },
        "photos": [],  # a photo must be uploaded first: see uploaded_photo()
        "last_seen": {
            "at": (datetime.now(UTC) - timedelta(minutes=30)).isoformat(),
            "lat": 23.1291,
            "lon": 113.2644,
            "address": "Beijing Road pedestrian street, Guangzhou",
            "circumstances": "separated from her mother near the metro exit",
        },
        "vehicle": {"description": "white van", "plate": "粤A12345", "colour": "white"},
        "tip_line": "+86 20 110",
        "alert_languages": ["zh-CN", "en"],
    }
    for key, value in overrides.items():
        payload[key] = value
    return payload


def make_partner(name: str = "MapsApp", scopes: tuple[str, ...] = ("devices:write",)) -> str:
    """Create a partner with an API key; returns the key."""
    from alerts.partners import service as partners

    with session_scope() as session:
        partner = partners.create_partner(session, name, partners.PartnerKind.APP, actor="test")
        return partners.issue_key(
            session, partner, [partners.Scope(s) for s in scopes], actor="test"
        )


def partner_headers(key: str) -> dict[str, str]:
    """Authorization header for a partner API key."""
    return {"Authorization": f"Bearer {key}"}
