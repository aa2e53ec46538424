"""`reunite dlq`: list and replay dead letters (mounted by alerts.cli)."""

from __future__ import annotations

from typing import Annotated

import typer

from channels import dlq
from ops.platform.db import session_scope

dlq_app = typer.Typer(help="Dead letters: deliveries that failed past the retry horizon.")


@dlq_app.command("list")
def list_cmd(
    all_: Annotated[bool, typer.Option("--all", help="Include replayed letters")] = False,
    limit: Annotated[int, typer.Option(help="At most this many")] = 100,
) -> None:
    """List dead letters, newest first (ids and reasons only, never addresses)."""
    with session_scope() as session:
        letters = dlq.list_letters(session, include_replayed=all_, limit=limit)
        if not letters:
            typer.echo("no dead letters")
            return
        typer.echo("id\tchannel\tmessage\ttargets\tattempts\treason\tcreated\treplayed")
        for d in letters:
            replayed = d.replayed_at.isoformat(timespec="seconds") if d.replayed_at else "-"
            typer.echo(
                f"{d.id}\t{d.channel}\t{d.message_id}\t{len(d.targets)}\t{d.attempts}\t"
                f"{d.reason}\t{d.created_at.isoformat(timespec='seconds')}\t{replayed}"
            )


@dlq_app.command("replay")
def replay_cmd(
    letter_ids: Annotated[list[int] | None, typer.Argument(help="Dead letter ids")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Replay every pending letter")] = False,
) -> None:
    """Re-enqueue dead letters with a fresh retry horizon."""
    with session_scope() as session:
        ids = list(letter_ids or [])
        if all_:
            ids += [d.id for d in dlq.list_letters(session, limit=10_000)]
        if not ids:
            raise typer.BadParameter("give letter ids or --all")
        for letter_id in dict.fromkeys(ids):
            try:
                n = dlq.replay(session, letter_id)
            except LookupError as exc:
                typer.echo(str(exc), err=True)
                raise typer.Exit(1) from None
            typer.echo(f"replayed {letter_id}: {n} targets re-enqueued")
