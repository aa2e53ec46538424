"""Tip schemas: what a partner sends, and what it gets back (never the tip itself)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from alerts.cases.schemas import LAT, LON, PastTime, Phone, Text2000
from alerts.tips.triage import TipState

MESSAGE_ID = (
    "The alert the tipster answered, as the partner received it: the message id "
    "`<case-id>:<kind>:<wave>:<n>` (webhooks, the live stream, the JSON feed's `_reunite`) or "
    "the CAP identifier `reunite:<message id>`. It names the case"
)
MESSAGE = "3f2c6d1e-8a4b-4c1e-9a57-2b8f0c6d4e11:alert:0:1"
# A 1x1 white PNG: small enough for an example, and a real image the sanitiser accepts.
PHOTO_EXAMPLE = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR42mP4//8/AAX+Av4zEpUUAAAAAElFTkSuQmCC"
)


class TipLocation(BaseModel):
    """Where the tipster saw the child, and how sure the position is."""

    model_config = ConfigDict(extra="forbid")

    lat: float = Field(ge=-90, le=90, allow_inf_nan=False, description=LAT, examples=[23.1301])
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False, description=LON, examples=[113.2702])
    accuracy_m: float = Field(
        gt=0,
        le=100_000,
        allow_inf_nan=False,
        description="The radius in metres within which the true position lies (the phone's "
        "reported accuracy), 0-100,000",
        examples=[25],
    )


class TipCreate(BaseModel):
    """A tip from a partner's user about an active alert."""

    model_config = ConfigDict(extra="forbid")

    message_id: Annotated[str, StringConstraints(strip_whitespace=True, max_length=128)] = Field(
        description=MESSAGE_ID, examples=[MESSAGE]
    )
    text: Annotated[Text2000, StringConstraints(min_length=1)] = Field(
        description="What the tipster saw, in their words (1-2000 characters; no control or "
        "bidi characters). Shown to the case's police only; never logged",
        examples=["A girl in a red jacket crying at the north exit of the metro station"],
    )
    seen_at: PastTime = Field(
        description="When they saw it: ISO 8601 with a UTC offset, not in the future",
        examples=["2025-06-01T11:05:00+08:00"],
    )
    location: TipLocation | None = Field(
        default=None, description="Where they saw it; null or omitted if not known"
    )
    photo: str | None = Field(
        default=None,
        max_length=15_000_000,
        description="A photo they took, base64 (JPEG, PNG or WebP, at most "
        "REUNITE_PHOTO_MAX_BYTES, 10 MB, decoded): re-encoded without EXIF or GPS, like case "
        "photos. Null or omitted: none",
        examples=[PHOTO_EXAMPLE],
    )
    callback: Phone | None = Field(
        default=None,
        description="A number the police may call the tipster back on (digits, spaces, "
        "hyphens, an optional leading +); stored encrypted, shown to the case's police only",
        examples=["+86 138 0013 8000"],
    )

    @field_validator("photo")
    @classmethod
    def _base64(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("is not valid base64") from None
        return value

    def photo_bytes(self) -> bytes | None:
        """The decoded photo, if any."""
        return base64.b64decode(self.photo) if self.photo else None


class TipReceived(BaseModel):
    """A tip on its way to the case officer. The tip's content is not echoed."""

    id: int = Field(description="The tip's id (quote it if the police ask)", examples=[41])
    case_id: str = Field(
        description="The case the tip was routed to",
        examples=["3f2c6d1e-8a4b-4c1e-9a57-2b8f0c6d4e11"],
    )
    state: TipState = Field(description="Its triage state: new on arrival", examples=["new"])
    received_at: datetime = Field(
        description="When it was received (UTC)", examples=["2025-06-01T03:06:00Z"]
    )
    photo: bool = Field(description="Whether a photo was accepted with it", examples=[False])
