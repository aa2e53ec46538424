"""Partner device API: register one device, delete it, and bulk location uploads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Header, HTTPException, Path, Request, Response, status
from starlette.concurrency import run_in_threadpool

from alerts.deps import DevicesWriter, SessionDep, SettingsDep, partner_errors
from geo import cells, late
from geo.devices import ingest
from geo.devices import service as devices
from geo.devices.schemas import (
    BulkResult,
    DeviceRead,
    DeviceUpsert,
    ExternalId,
    LocationBatch,
    LocationRow,
)
from ops import openapi

router = APIRouter(prefix="/api/v1/partner/devices", tags=["partner devices"])
DeviceId = Annotated[ExternalId, Path(description="The partner's opaque device id")]
NO_DEVICE = "This partner registered no device with this id"
# The bulk route reads its body itself (ingest.parse_payload), so FastAPI cannot infer it.
_ROWS = [
    {
        "id": "d-0001",
        "lat": 23.1291,
        "lon": 113.2644,
        "platform": "apns",
        "address": "740f4707bebcf74f9b7c25d48e3358945f6aa01da5ddb387462c7eaf61bb78ad",
    },
    {"id": "d-0002", "lat": 23.0205, "lon": 113.7518},
]
BULK_BODY = {
    "requestBody": {
        "required": True,
        "description": "Up to REUNITE_BULK_MAX_ROWS (50,000) location rows. Each row is checked "
        "on its own: bad rows come back in `rejected` by index, good rows are applied.",
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {
                            "type": "array",
                            "items": openapi.ref(LocationRow),
                            "description": "The rows",
                        },
                        openapi.ref(LocationBatch),
                    ]
                },
                "examples": {
                    "array": {"summary": "A JSON array of rows", "value": _ROWS},
                    "wrapped": {"summary": 'The rows under "devices"', "value": {"devices": _ROWS}},
                },
            },
            "application/x-ndjson": {
                "schema": {
                    "type": "string",
                    "description": "NDJSON (also application/jsonl): one LocationRow object per "
                    "line, blank lines skipped. A line that is not JSON is rejected by its "
                    "index as `line N: not valid JSON` while the other lines are applied.",
                },
                # OpenAPI 3.2's itemSchema for a sequential media type, as an extension in 3.1.
                "x-itemSchema": openapi.ref(LocationRow),
                "examples": {
                    "lines": {
                        "summary": "One row per line",
                        "value": "".join(json.dumps(row) + "\n" for row in _ROWS),
                    }
                },
            },
        },
    }
}


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
        late.check_upload(
            session, index.client, np.array([device.id]), np.array([body.lat]), np.array([body.lon])
        )
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
    openapi_extra=BULK_BODY,
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
    # Decoding, checking and applying a 10,000-row body is CPU work: off the event loop, so
    # this process keeps accepting and answering other requests meanwhile.
    try:
        rows = await run_in_threadpool(
            ingest.parse_payload, bytes(body), content_type, settings.bulk_max_rows
        )
    except ingest.PayloadError as exc:
        raise HTTPException(422, [{"field": "body", "message": str(exc)}]) from None
    return await run_in_threadpool(
        ingest.apply_rows, session, devices.location_index(), key.partner_id, rows
    )
