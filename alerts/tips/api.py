"""Partners send tips about a live alert: `POST /api/v1/partner/tips` (scope tips:write)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from starlette.concurrency import run_in_threadpool

from alerts.deps import SessionDep, SettingsDep, TipsWriter, partner_errors
from alerts.tips import service as tips
from alerts.tips.schemas import TipCreate, TipReceived

router = APIRouter(prefix="/api/v1/partner", tags=["partner tips"])


def refusal(exc: tips.TipRefused) -> HTTPException:
    """The API's answer to a refused tip: the field and why (never the value sent)."""
    if exc.status == 422:
        return HTTPException(
            422, [{"field": exc.field, "message": str(exc), "type": "value_error"}]
        )
    return HTTPException(exc.status, f"{exc.field}: {exc}")


@router.post(
    "/tips",
    response_model=TipReceived,
    status_code=status.HTTP_201_CREATED,
    responses=partner_errors(
        "tips:write",
        {404: "`message_id`: no alert message with this id"},
        {409: "The alert is no longer active (found, cancelled, expired): tips are refused"},
        {413: "The request or its photo is too large (REUNITE_PHOTO_MAX_BYTES decoded)"},
        {
            422: "A field is invalid, named in `detail[].field` (e.g. `text`, `seen_at`, "
            "`location.accuracy_m`, `photo`: not a JPEG, PNG or WebP image)"
        },
    ),
)
async def send_tip(
    body: TipCreate, session: SessionDep, settings: SettingsDep, key: TipsWriter
) -> TipReceived:
    """Pass a tip from your user to the police officer on the case. The case is found from the
    alert's message id; it must still be active. The photo is sanitised like case photos and
    the callback number stored encrypted; the answer never echoes the tip."""

    def store() -> TipReceived:
        try:
            case = tips.case_of_message(session, body.message_id)
            row = tips.receive(
                session,
                case,
                tips.TipInput(
                    text=body.text,
                    seen_at=body.seen_at,
                    lat=body.location.lat if body.location else None,
                    lon=body.location.lon if body.location else None,
                    accuracy_m=body.location.accuracy_m if body.location else None,
                    photo=body.photo_bytes(),
                    callback=body.callback,
                ),
                settings,
                source="partner",
                partner_id=key.partner_id,
                message_id=body.message_id.removeprefix("reunite:"),
            )
        except tips.TipRefused as exc:
            raise refusal(exc) from None
        return TipReceived(
            id=row.id,
            case_id=row.case_id,
            state=row.state,
            received_at=row.received_at,
            photo=row.photo_ref is not None,
        )

    return await run_in_threadpool(store)
