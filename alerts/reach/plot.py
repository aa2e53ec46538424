"""The reach plot: devices sent and delivered over time, drawn server-side as a PNG.

matplotlib's object API on the Agg canvas (no pyplot): no global figure state, so concurrent
requests in the thread pool cannot draw into each other's figure.
"""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from alerts.reach import schemas

# English in both console languages: matplotlib's bundled font has no CJK glyphs.
LABELS = {
    "sent": "sent (provider accepted)",
    "delivered": "delivered (carrier receipt)",
    "time": "time (UTC)",
    "devices": "devices",
    "empty": "nothing sent yet",
}


def png(report: schemas.ReachReport, labels: dict[str, str]) -> bytes:
    """The report's timeline as a PNG; `labels` holds title, sent, delivered, time, devices."""
    fig = Figure(figsize=(8, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    points = report.timeline
    if points:
        at = [p.at for p in points]
        ax.step(at, [p.sent for p in points], where="post", label=labels["sent"])
        if any(p.delivered for p in points):
            ax.step(at, [p.delivered for p in points], where="post", label=labels["delivered"])
        locator = AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        ax.legend(loc="lower right")
    else:
        ax.text(0.5, 0.5, labels["empty"], ha="center", va="center", transform=ax.transAxes)
    ax.set_title(labels["title"])
    ax.set_xlabel(labels["time"])
    ax.set_ylabel(labels["devices"])
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()
