"""Outcome statistics as the API shows them: one row per month and agency, and a total."""

from __future__ import annotations

from pydantic import BaseModel, Field

from alerts.cases.outcome import Outcome

MONTH = "A month in UTC, YYYY-MM"


class StatsRow(BaseModel):
    """The closed alerts of one month and agency (or of the whole selection, for the total)."""

    month: str | None = Field(
        description=MONTH + ", of the closure; null in the total", examples=["2026-11"]
    )
    agency_id: int | None = Field(description="The case's agency; null in the total", examples=[3])
    agency: str | None = Field(
        description="The agency's name; null in the total", examples=["Guangzhou"]
    )
    cases: int = Field(
        description="Alerts closed (resolved, cancelled or expired) that had gone out",
        examples=[12],
    )
    recovered: int = Field(
        description="Of those, resolved with the child found alive: every found outcome but "
        "found_deceased (a case resolved before outcomes were recorded counts)",
        examples=[9],
    )
    recovery_rate: float | None = Field(
        description="recovered / cases (0-1, 4 decimals); null without cases", examples=[0.75]
    )
    median_recovery_minutes: float | None = Field(
        description="The median time from the first last-seen time to resolving, over the "
        "recovered cases (minutes, 1 decimal); null without any",
        examples=[185.0],
    )
    found_after_tip: int = Field(
        description="Recovered cases where a tip contributed", examples=[4]
    )
    tip_share: float | None = Field(
        description="found_after_tip / recovered (0-1, 4 decimals); null without recoveries",
        examples=[0.4444],
    )
    outcomes: dict[Outcome, int] = Field(
        description="The cases by outcome (every outcome listed, zeros included; cases closed "
        "before outcomes were recorded count as unknown)",
        examples=[
            {
                "found_safe": 6,
                "returned_home": 2,
                "found_with_relative": 1,
                "rescued_from_abduction": 0,
                "found_deceased": 0,
                "cancelled_unfounded": 2,
                "other": 0,
                "unknown": 1,
            }
        ],
    )


class StatsRead(BaseModel):
    """Outcome statistics over closed alerts, by month of closure and agency."""

    from_month: str | None = Field(
        description=MONTH + ": the first month counted; null: from the first", examples=["2026-01"]
    )
    to_month: str | None = Field(
        description=MONTH + ": the last month counted; null: up to now", examples=["2026-12"]
    )
    agency_id: int | None = Field(
        description="The one agency counted; null: every agency", examples=[None]
    )
    rows: list[StatsRow] = Field(description="One row per month and agency, oldest month first")
    total: StatsRow = Field(description="The same figures over every row")
