"""`reunite status`: what an operator checks first (mounted by alerts.cli)."""

from __future__ import annotations

import redis
import typer
from sqlalchemy.exc import SQLAlchemyError

from alerts.bootstrap import QUEUES
from alerts.cases import service as cases
from channels import reconcile
from channels import status as channel_status
from ops import status
from ops.platform import blobstore, redis_client
from ops.platform.config import get_settings
from ops.platform.db import session_scope


def print_status() -> int:
    """Print queues, workers, breakers and dead letters; 1 when Redis or the database is down."""
    code = 0
    try:
        client = redis_client.connect(get_settings().resolved_redis_url, socket_connect_timeout=2)
        broker = redis_client.get_broker_redis()
        depths = status.queue_depths(broker, QUEUES)
        held = status.unacked(broker)
        beats = status.heartbeats(client)
    except redis.RedisError as exc:
        typer.echo(f"redis: down ({type(exc).__name__})", err=True)
        return 1
    typer.echo(f"photo store: {blobstore.describe(get_settings())}")
    typer.echo("queues (waiting):")
    for queue, n in depths.items():
        typer.echo(f"  {queue:<10} {n:>8}")
    typer.echo(f"  {'unacked':<10} {held:>8}  (taken by workers or waiting for a countdown)")
    typer.echo(f"workers seen in the last {status.HEARTBEAT_TTL_S:g}s: {len(beats)}")
    for hb in beats:
        typer.echo(f"  {hb.worker:<40} pid {hb.pid:<7} {hb.age_s:5.1f}s ago  {','.join(hb.queues)}")
    try:
        with session_scope() as session:
            rows = channel_status.breakers(client, session)
            letters = channel_status.dead_letters_pending(session)
            reasons = channel_status.dead_letter_reasons(session)
            by_state = cases.cases_by_state(session)
    except SQLAlchemyError as exc:
        typer.echo(f"database: down ({type(exc).__name__})", err=True)
        return 1
    typer.echo("breakers:" + ("" if rows else " none tripped or tracked"))
    for row in rows:
        where = f"partner {row.partner_id} endpoint {row.endpoint_id}" if row.endpoint_id else ""
        typer.echo(f"  {row.channel:<10} {row.state:<10} {where}")
    stuck = reconcile.stuck(client)
    typer.echo(
        f"deliveries past their deadline (stuck): {len(stuck)}"
        + ("  (the reconciler queues them again)" if stuck else "  (none: all in progress or done)")
    )
    for entry in stuck:
        again = reconcile.requeued(client, entry.message_id).get(entry.channel, 0)
        typer.echo(
            f"  {entry.message_id:<40} {entry.channel:<13} {entry.open_targets:>8} open"
            f"  {entry.overdue_s:7.0f}s overdue  re-queued {again}"
        )
    total = sum(letters.values())
    typer.echo(f"dead letters pending replay: {total} targets")
    for channel, n in sorted(letters.items()):
        typer.echo(f"  {channel:<10} {n:>8}   (reunite dlq list / replay)")
        for (of, reason), count in sorted(reasons.items()):
            if of == channel:
                typer.echo(f"    {reason:<28} {count:>8}")
    typer.echo("cases: " + ", ".join(f"{k} {v}" for k, v in by_state.items()))
    if not beats:
        typer.echo("no worker is running: start `reunite worker`", err=True)
        code = 1
    return code
