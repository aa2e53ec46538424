"""Partner uploads: validate rows one by one, register what needs registering, and write the
locations to the index in one batch. Bad rows are reported by index; good rows are applied."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from geo import cells
from geo.devices import service as devices
from geo.devices.schemas import BulkResult, LocationRow, RowError
from geo.index import LocationIndex

_row = TypeAdapter(LocationRow)
FUTURE_SKEW = timedelta(minutes=5)


class PayloadError(ValueError):
    """The upload as a whole cannot be read (not JSON, not a list, too many rows)."""


def parse_payload(body: bytes, content_type: str, max_rows: int) -> list[Any]:
    """Raw rows from a JSON array, a {"devices": [...]} object, or NDJSON."""
    if "ndjson" in content_type or "jsonl" in content_type:
        rows = []
        for number, line in enumerate(body.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError:
                raise PayloadError(f"line {number}: not valid JSON") from None
            if len(rows) > max_rows:
                raise PayloadError(f"more than {max_rows} rows; split the upload")
        return rows
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise PayloadError(f"body is not valid JSON ({exc.msg} at char {exc.pos})") from None
    if isinstance(data, dict) and isinstance(data.get("devices"), list):
        data = data["devices"]
    if not isinstance(data, list):
        raise PayloadError('body must be a JSON array of rows or {"devices": [...]}')
    if len(data) > max_rows:
        raise PayloadError(f"{len(data)} rows is more than {max_rows}; split the upload")
    return data


def _error(index: int, exc: ValidationError) -> RowError:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "row"
    return RowError(index=index, field=field, message=err["msg"])


def apply_rows(
    session: Session,
    index: LocationIndex,
    partner_id: int,
    raw_rows: list[Any],
    now: datetime | None = None,
) -> BulkResult:
    """Validate, register and index a batch of location rows."""
    now = now or datetime.now(UTC)
    oldest = now - index.staleness
    rejected: list[RowError] = []
    good: list[tuple[int, LocationRow]] = []
    for i, raw in enumerate(raw_rows):
        try:
            row = _row.validate_python(raw)
        except ValidationError as exc:
            rejected.append(_error(i, exc))
            continue
        if row.at is not None and row.at > now + FUTURE_SKEW:
            rejected.append(RowError(index=i, field="at", message="must not be in the future"))
            continue
        if row.at is not None and row.at < oldest:
            rejected.append(
                RowError(index=i, field="at", message="is older than the staleness window")
            )
            continue
        if (row.platform is None) != (row.address is None):
            rejected.append(
                RowError(index=i, field="address", message="platform and address go together")
            )
            continue
        good.append((i, row))

    registered = 0
    for _, row in good:
        if row.platform is not None and row.address is not None:
            devices.upsert(
                session,
                partner_id,
                row.id,
                platform=row.platform,
                address=row.address,
                locale=row.locale or "zh-CN",
                opted_in=True if row.opted_in is None else row.opted_in,
            )
            registered += 1
    known = devices.ids_for(session, partner_id, [row.id for _, row in good])
    applied: list[tuple[int, LocationRow]] = []
    for i, row in good:
        if row.id in known:
            applied.append((i, row))
        else:
            rejected.append(
                RowError(
                    index=i,
                    field="id",
                    message="unknown device; include platform and address to register it",
                )
            )
    if applied:
        ids = np.fromiter((known[row.id] for _, row in applied), dtype=np.int64, count=len(applied))
        lats = np.fromiter((row.lat for _, row in applied), dtype=np.float64, count=len(applied))
        lons = np.fromiter((row.lon for _, row in applied), dtype=np.float64, count=len(applied))
        stamps = np.fromiter(
            (int((row.at or now).timestamp()) for _, row in applied),
            dtype=np.uint32,
            count=len(applied),
        )
        opted_out = [known[row.id] for _, row in applied if row.opted_in is False]
        index.ingest(ids, cells.snap_many(lats, lons), stamps)
        if opted_out:
            index.remove(opted_out)
        devices.touch(session, ids.tolist())
    rejected.sort(key=lambda e: e.index)
    return BulkResult(
        received=len(raw_rows), applied=len(applied), registered=registered, rejected=rejected
    )
