"""Partner device API: register one device, delete it, and bulk location uploads."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Header, HTTPException, Path, Request, Response, status

from alerts.deps import DevicesWriter, SessionDep, SettingsDep, partner_errors
from geo import cells
from geo.devices import ingest
from geo.devices import service as devices
from geo.devices.schemas import BulkResult, DeviceRead, DeviceUpsert, ExternalId

router = APIRouter(prefix="/api/v1/partner/devices", tags=["partner devices"])
DeviceId = Annotated[ExternalId, Path(description="The partner's opaque device id")]
NO_DEVICE = "This partner registered no device with this id"


def _read(device, located: bool) -> DeviceRead:
    return DeviceRead(
        external_id=device.external_id,
        platform=device.platform,
        locale=device.locale,
        opted_in=device.opted_in,
        test_device=device.test_device,
        active=device.active,
        located=located,
        last_contact_at=device.last_contact_at,
    )


@router.put(
    "/{external_id}",
    response_model=DeviceRead,
    responses=partner_errors("devices:write", 413),
)
def upsert_device(
    external_id: DeviceId, body: DeviceUpsert, session: SessionDep, key: DevicesWriter
) -> DeviceRead:
    """Register or refresh one device, optionally with its current location."""
    if (body.lat is None) != (body.lon is None):
        raise HTTPException(422, [{"field": "lat", "message": "lat and lon go together"}])
    device = devices.upsert(
        session,
        key.partner_id,
        external_id,
        platform=body.platform,
        address=body.address,
        locale=body.locale,
        opted_in=body.opted_in,
        test_device=body.test_device,
    )
    index = devices.location_index()
    located = False
    if not body.opted_in:
        index.remove([device.id])
    elif body.lat is not None and body.lon is not None:
        at = body.at or datetime.now(UTC)
        index.ingest(
            np.array([device.id]), np.array([cells.snap(body.lat, body.lon)], dtype=np.uint64), at
        )
        located = True
    return _read(device, located)


@router.get(
    "/{external_id}",
    response_model=DeviceRead,
    responses=partner_errors("devices:write", {404: NO_DEVICE}),
)
def read_device(external_id: DeviceId, session: SessionDep, key: DevicesWriter) -> DeviceRead:
    """One registered device (its address is never returned)."""
    device = devices.get_device(session, key.partner_id, external_id)
    if device is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "device not found")
    return _read(device, devices.is_located(devices.location_index(), device.id))


@router.delete(
    "/{external_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=partner_errors("devices:write", {404: NO_DEVICE}),
)
def delete_device(external_id: DeviceId, session: SessionDep, key: DevicesWriter) -> Response:
    """Forget a device: its registration and its location."""
    device = devices.get_device(session, key.partner_id, external_id)
    if device is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "device not found")
    devices.location_index().remove([device.id])
    session.delete(device)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/bulk",
    response_model=BulkResult,
    responses=partner_errors(
        "devices:write",
        {413: "The body is larger than REUNITE_BULK_MAX_BYTES (32 MiB by default)"},
    ),
)
async def bulk_locations(
    request: Request,
    session: SessionDep,
    key: DevicesWriter,
    settings: SettingsDep,
    content_type: Annotated[str, Header()] = "application/json",
) -> BulkResult:
    """Upload up to 50,000 location rows (JSON array or NDJSON); bad rows are listed by index."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > settings.bulk_max_bytes:
        raise HTTPException(413, f"body is larger than {settings.bulk_max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > settings.bulk_max_bytes:
            raise HTTPException(413, f"body is larger than {settings.bulk_max_bytes} bytes")
    try:
        rows = ingest.parse_payload(bytes(body), content_type, settings.bulk_max_rows)
    except ingest.PayloadError as exc:
        raise HTTPException(422, [{"field": "body", "message": str(exc)}]) from None
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(
        ingest.apply_rows, session, devices.location_index(), key.partner_id, rows
    )
