"""The reach report as CSV: one table, a `row` column saying what each line counts."""

from __future__ import annotations

import csv
import io

from alerts.reach import schemas

HEADER = (
    "row",
    "message_id",
    "kind",
    "wave",
    "channel",
    "partner_id",
    "cell",
    "targeted",
    "sent",
    "delivered",
    "failed",
    "seconds_to_50",
    "seconds_to_90",
    "seconds_to_99",
    "impressions",
    "opened",
)


def _blank(value: object) -> object:
    return "" if value is None else value


def csv_text(report: schemas.ReachReport) -> str:
    """Rows: `wave` (a message's device totals and times), `channel` (per channel and
    partner), `partner_report` (a partner's own counts) and `cell` (shown map cells)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(HEADER)
    for m in report.waves:
        head = (m.message_id, m.kind, m.wave)
        w.writerow(
            [
                "wave",
                *head,
                "",
                "",
                "",
                m.devices_targeted,
                m.devices_sent,
                m.devices_delivered,
                "",
                _blank(m.seconds_to_50),
                _blank(m.seconds_to_90),
                _blank(m.seconds_to_99),
                "",
                "",
            ]
        )
        for c in m.counts:
            w.writerow(
                [
                    "channel",
                    *head,
                    c.channel,
                    _blank(c.partner_id),
                    "",
                    c.targeted,
                    c.sent,
                    c.delivered,
                    c.failed,
                    "",
                    "",
                    "",
                    "",
                    "",
                ]
            )
        for p in m.partner_reports:
            row = ["partner_report", *head, "", p.partner_id, *[""] * 8, p.impressions]
            w.writerow([*row, _blank(p.opened)])
    for cell in report.cells:
        row = ["cell", "", "", "", "", "", cell.cell, cell.targeted, _blank(cell.sent)]
        w.writerow([*row, *[""] * 7])
    return out.getvalue()
