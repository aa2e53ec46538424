"""The `reunite` command: run the services, migrate, manage users, verify the audit chain."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from alerts.users.roles import Rank, Role
from channels.cli import dlq_app
from ops.platform import supervisor
from ops.platform.config import get_settings
from ops.platform.embedded import EmbeddedRedis

app = typer.Typer(help="Reunite: verified missing-child alerts.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
users_app = typer.Typer(help="Police, operator and admin users.", no_args_is_help=True)
agencies_app = typer.Typer(help="Police agencies.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(agencies_app, name="agencies")
rules_app = typer.Typer(help="Radius rules.", no_args_is_help=True)
partners_app = typer.Typer(help="Partner accounts and API keys.", no_args_is_help=True)
app.add_typer(partners_app, name="partners")
app.add_typer(dlq_app, name="dlq", help="Dead letters: list and replay.")
app.add_typer(audit_app, name="audit")
app.add_typer(rules_app, name="rules")
privacy_app = typer.Typer(help="Erasure of children's personal data.", no_args_is_help=True)
app.add_typer(privacy_app, name="privacy")


def ensure_embedded_redis() -> bool:
    """Start the embedded Redis when no REDIS_URL is set; True if this process started it."""
    settings = get_settings()
    if not settings.embedded_redis:
        return False
    return EmbeddedRedis(settings.data_dir).start()


@app.callback()
def _private_files() -> None:
    # Files Reunite creates (the embedded database and Redis' append-only file, photos, audit
    # checkpoints, metrics) are its own user's only: 0600 files, 0700 directories.
    os.umask(0o077)


def _prepare_process(*, clear_metrics: bool = False) -> None:
    """Logging, and the metrics directory this machine's processes share (set before any fork)."""
    settings = get_settings()
    path = settings.resolved_metrics_dir
    path.mkdir(parents=True, exist_ok=True)
    if clear_metrics:  # the process tree starts afresh: counters of earlier runs go
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
    # prometheus-client reads this when first imported: every child inherits it.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    from ops import logging as ops_logging

    ops_logging.configure_from_settings()


def first_start_migrate() -> None:
    """Create the embedded database's schema on first start (a configured one is migrated
    explicitly with `reunite db upgrade`)."""
    settings = get_settings()
    if settings.database_url is None:
        from alerts import migrate

        migrate.upgrade()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all database migrations."""
    from alerts import migrate

    migrate.upgrade()
    typer.echo("database is at the newest revision")


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
    routes: Annotated[
        str,
        typer.Option(
            help="all; ingest: the partner device routes only (registrations, bulk uploads); "
            "main: every other route. Run ingest and main processes behind a path-routing "
            "proxy so uploads never hold up officers (see docs/OPERATIONS.md)."
        ),
    ] = "all",
) -> None:
    """Run the HTTP API."""
    # uvicorn factories in alerts.app, one per alerts.app.Routes value.
    factories = {"all": "create_app", "ingest": "create_ingest_app", "main": "create_main_app"}
    if routes not in factories:
        raise typer.BadParameter(f"{routes!r}: choose all, ingest or main", param_hint="--routes")
    import uvicorn

    from ops import slowclients

    settings = get_settings()
    _prepare_process()
    ensure_embedded_redis()
    first_start_migrate()
    uvicorn.run(
        f"alerts.app:{factories[routes]}",
        factory=True,
        host=host or settings.api_host,
        port=port if port is not None else settings.api_port,
        log_level=settings.log_level.lower(),
        log_config=None,  # ops.logging already configured the root logger
        # X-Forwarded-For only from the configured proxies; by default from nobody (uvicorn
        # would trust 127.0.0.1, letting any local client pick the address lockout sees).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
        # On SIGTERM, open streams (SSE) get this long before the server closes them.
        timeout_graceful_shutdown=5,
        # Deadlines for dribbled headers and stalled bodies (uvicorn has only keep-alive).
        http=slowclients.guard(settings.http_header_timeout_s, settings.http_body_idle_timeout_s),
    )


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Worker processes")] = None,
    queues: Annotated[str | None, typer.Option(help="Comma-separated queues")] = None,
) -> None:
    """Run a Celery worker; start as many as you like on any machine sharing the broker."""
    _run_worker(queues, concurrency, "prefork")


@app.command()
def webhooks(
    concurrency: Annotated[int | None, typer.Option(help="Threads (requests in flight)")] = None,
) -> None:
    """Run the partner-webhook worker: a thread pool, so a slow or hanging partner holds one
    cheap thread for its own timeout, never a worker process other channels need."""
    concurrency = concurrency or get_settings().webhook_worker_concurrency
    _run_worker(None, concurrency, "threads")


def _run_worker(queues: str | None, concurrency: int | None, pool: str) -> None:
    # Logging and PROMETHEUS_MULTIPROC_DIR before anything imports prometheus_client.
    _prepare_process()
    ensure_embedded_redis()
    from alerts import bootstrap

    celery_app = bootstrap.wire()
    settings = get_settings()
    if pool == "threads":  # `reunite webhooks`
        queues = bootstrap.WEBHOOK_QUEUE
    queues = queues or ",".join(bootstrap.QUEUES)
    if settings.worker_metrics_port:
        from ops import metrics

        metrics.serve_process_metrics(settings.worker_metrics_port, settings.resolved_metrics_dir)
    celery_app.worker_main(
        [
            "worker",
            f"--loglevel={settings.log_level}",
            f"--concurrency={concurrency or settings.worker_concurrency}",
            f"--queues={queues}",
            f"--pool={pool}",
            "--without-gossip",
            "--without-mingle",
            *(["--task-events"] if settings.worker_events else []),
        ]
    )


@app.command()
def beat() -> None:
    """Run the scheduler (outbox relay, expiry, waves). Run exactly one per deployment."""
    _prepare_process()
    ensure_embedded_redis()
    from alerts import bootstrap

    celery_app = bootstrap.wire()
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    celery_app.start(
        [
            "beat",
            f"--loglevel={settings.log_level}",
            f"--schedule={settings.data_dir.resolve() / 'celerybeat-schedule'}",
        ]
    )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
) -> None:
    """Run API, worker and beat together: everything a laptop needs."""
    settings = get_settings()
    _prepare_process(clear_metrics=True)
    started_redis = ensure_embedded_redis()
    first_start_migrate()
    env = dict(os.environ)
    # Children reach the same Redis and database without each deciding again.
    env["REDIS_URL"] = settings.resolved_redis_url
    env["DATABASE_URL"] = settings.database_url or settings.sqlalchemy_url
    exe = [sys.executable, "-m", "alerts.cli"]
    api_args = ["api"]
    if host:
        api_args += ["--host", host]
    if port is not None:
        api_args += ["--port", str(port)]
    from alerts.bootstrap import QUEUES, WEBHOOK_QUEUE  # after the metrics directory is set

    bulk = ",".join(q for q in QUEUES if q != WEBHOOK_QUEUE)
    commands = {
        "api": api_args,
        "worker": ["worker", "--queues", bulk],
        # Partner webhooks on their own thread-pool worker: a hanging partner cannot hold
        # the processes that push to phones.
        "webhooks": ["webhooks"],
        "beat": ["beat"],
    }
    typer.echo(
        f"Reunite is running: http://{host or settings.api_host}:"
        f"{port if port is not None else settings.api_port}/docs"
    )
    try:
        failed = supervisor.Supervisor(
            {name: [*exe, *args] for name, args in commands.items()}, env
        ).run()
    finally:
        if started_redis:
            EmbeddedRedis(settings.data_dir).stop()
    if failed is not None:
        typer.echo(
            f"stopped: {failed} exited {supervisor.MAX_RESTARTS + 1} times within "
            f"{supervisor.RESTART_WINDOW_S:.0f} s; see its log above",
            err=True,
        )
        raise typer.Exit(1)


@agencies_app.command("create")
def agencies_create(
    name: str,
    parent: Annotated[str | None, typer.Option(help="Parent agency name")] = None,
    self_approval_min_rank: Annotated[
        Rank | None, typer.Option(help="Let this rank and above approve their own cases")
    ] = None,
) -> None:
    """Create a police agency."""
    from alerts.users import service as users
    from ops.platform.db import session_scope

    with session_scope() as session:
        agency = users.create_agency(
            session, name=name, parent=parent, self_approval_min_rank=self_approval_min_rank
        )
        typer.echo(f"agency {agency.id} {agency.name}")


@agencies_app.command("live-exercises")
def agencies_live_exercises(
    name: str,
    enable: Annotated[bool, typer.Option("--on/--off", help="Drills reach the public")],
) -> None:
    """Let this agency's drills reach the public registry (still marked), or stop it; audited."""
    _set_agency_flag(name, "live_exercises", enable)
    state = "reach the public (marked)" if enable else "reach test devices and opted-in partners"
    typer.echo(f"agency {name}: drills {state}")


def _set_agency_flag(name: str, flag: str, enable: bool) -> None:
    """Set one of an agency's yes/no settings, audited as agency.<flag>_set; exit 2 if the
    agency does not exist."""
    from sqlalchemy import select

    from alerts.users.models import Agency
    from ops.platform.audit import service as audit
    from ops.platform.db import session_scope

    with session_scope() as session:
        agency = session.scalar(select(Agency).where(Agency.name == name))
        if agency is None:
            typer.echo(f"error: no agency named {name!r}", err=True)
            raise typer.Exit(2)
        setattr(agency, flag, enable)
        audit.record(
            session,
            actor="cli",
            action=f"agency.{flag}_set",
            subject=f"agency:{agency.id}",
            detail={flag: enable},
        )


@agencies_app.command("require-totp")
def agencies_require_totp(
    name: str,
    enable: Annotated[bool, typer.Option("--on/--off", help="Officers need TOTP too")],
) -> None:
    """Require a second factor (TOTP) of this agency's officers too, or stop; audited.
    Supervisors, operators and admins always need one."""
    _set_agency_flag(name, "require_totp", enable)
    typer.echo(f"agency {name}: officers {'need' if enable else 'may use'} TOTP")


@users_app.command("create")
def users_create(
    username: str,
    role: Annotated[Role, typer.Option(help="officer, supervisor, operator or admin")],
    agency: Annotated[str, typer.Option(help="Agency name (created if missing)")],
    rank: Annotated[Rank, typer.Option(help="Police rank")] = Rank.CONSTABLE,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
) -> None:
    """Create a user; the password is asked for (hidden) or read from standard input, never
    taken from the command line (where `ps` and shell history would show it); argon2id."""
    from alerts.users import service as users
    from ops.platform.db import session_scope

    password = _read_password(password_stdin)

    with session_scope() as session:
        agency_row = users.agency_by_name(session, agency) or users.create_agency(
            session, name=agency
        )
        try:
            user = users.create_user(
                session,
                username=username,
                password=password,
                role=role,
                rank=rank,
                agency=agency_row,
            )
        except users.UserError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"user {user.id} {user.username} ({role.value}, {agency_row.name})")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@users_app.command("token")
def users_token(username: str) -> None:
    """Print a bearer token for scripts (as POST /api/v1/auth/token): asks for the password,
    and for a TOTP code where the account needs one."""
    from datetime import timedelta

    from alerts.console import security
    from alerts.users import service as users
    from ops.platform.db import session_scope

    # Prompts go to stderr, so `export TOKEN="$(reunite users token admin1)"` captures the token.
    password = typer.prompt("Password", hide_input=True, err=True)
    with session_scope() as session:
        user = users.authenticate(session, username, password)
        if user is None:
            typer.echo("error: wrong username or password", err=True)
            raise typer.Exit(2)
        row = security.totp_row(session, user, lock=True)
        enrolled = row is not None and row.confirmed_at is not None
        if users.needs_second_factor(session, user) or enrolled:
            if not enrolled:
                typer.echo("error: enrol a second factor (TOTP) in the console first", err=True)
                raise typer.Exit(2)
            if not security.check_code(row, typer.prompt("TOTP code", err=True)):
                typer.echo("error: wrong TOTP code", err=True)
                raise typer.Exit(2)
        token, _ = users.issue_token(
            session, user, timedelta(hours=get_settings().token_ttl_hours), name="cli"
        )
    typer.echo(token)


@users_app.command("set-password")
def users_set_password(
    username: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
) -> None:
    """Reset a user's password (asked for, or from standard input; never argv); their API
    tokens are revoked and their console sessions end. Audited."""
    from sqlalchemy import select

    from alerts.console import security
    from alerts.users import service as users
    from alerts.users.models import User
    from ops.platform.db import session_scope

    password = _read_password(password_stdin)
    with session_scope() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            typer.echo(f"error: no user named {username!r}", err=True)
            raise typer.Exit(2)
        try:
            revoked = users.change_password(session, user, "", password, actor="cli")
        except users.UserError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        # Whoever holds the old password may be signed in: a reset cuts them off too.
        ended = security.end_other_sessions(session, user.id, keep=None)
    typer.echo(
        f"password of {username} reset; {revoked} API token(s) revoked, "
        f"{ended} console session(s) ended"
    )


@users_app.command("enrolment-code")
def users_enrolment_code(
    username: str,
    ttl_hours: Annotated[float, typer.Option(min=0.1, max=168, help="Valid for")] = 24,
) -> None:
    """Issue a one-time code for the user's first TOTP enrolment (audited); hand it over in
    person or by a second channel. It replaces any earlier code."""
    from datetime import timedelta

    from sqlalchemy import select

    from alerts.users import service as users
    from alerts.users.models import User
    from ops.platform.db import session_scope

    with session_scope() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            typer.echo(f"error: no user named {username!r}", err=True)
            raise typer.Exit(2)
        code = users.issue_enrolment_code(
            session, user, actor="cli", ttl=timedelta(hours=ttl_hours)
        )
    typer.echo(f"enrolment code for {username} (valid {ttl_hours:g} h, once): {code}")


@rules_app.command("preview")
def rules_preview(
    lat: Annotated[float, typer.Option(min=-90, max=90, help="Last-seen latitude")],
    lon: Annotated[float, typer.Option(min=-180, max=180, help="Last-seen longitude")],
    lost_minutes_ago: Annotated[int, typer.Option(min=0, help="Minutes since the loss")] = 0,
) -> None:
    """Show the waves a case here would get and the devices each would reach."""
    from datetime import UTC, datetime, timedelta

    from geo.devices import service as devices
    from geo.rulesets import service as rulesets
    from ops.platform.db import session_scope

    now = datetime.now(UTC)
    with session_scope() as session:
        result = rulesets.preview(
            session,
            devices.location_index(),
            lat=lat,
            lon=lon,
            last_seen_at=now - timedelta(minutes=lost_minutes_ago),
            approved_at=now,
        )
    typer.echo(f"rule set version {result.rule_version}")
    for wave in result.waves:
        radius = f"{wave.radius_km:g} km" if wave.radius_km is not None else "manual area"
        # Waves are numbered from 1 for people, as in the console (stored from 0).
        typer.echo(
            f"wave {wave.index + 1}: {wave.starts_at:%Y-%m-%d %H:%M} UTC  {radius:>10}  "
            f"+{wave.devices_new:,} devices"
        )
    typer.echo(f"total devices targeted: {result.devices_total:,}")


@partners_app.command("create")
def partners_create(
    name: str,
    kind: Annotated[str, typer.Option(help="app, carrier or media")] = "app",
    scope: Annotated[
        list[str] | None,
        typer.Option(help="devices:write, feeds:read, webhooks:manage, tips:write, reach:write"),
    ] = None,
    webhook_url: Annotated[str | None, typer.Option(help="Endpoint for signed events")] = None,
    webhook_secret: Annotated[
        str | None, typer.Option(help="Standard Webhooks secret (whsec_...)")
    ] = None,
    drills: Annotated[
        bool, typer.Option("--drills", help="Also receive drills and system tests (marked)")
    ] = False,
) -> None:
    """Create a partner and print its API key (shown once, stored hashed)."""
    from alerts.partners import service as partners
    from channels import service as channels
    from ops.platform.db import session_scope

    scopes = [partners.Scope(s) for s in (scope or ["devices:write", "feeds:read"])]
    with session_scope() as session:
        try:
            partner = partners.create_partner(
                session, name, partners.PartnerKind(kind), actor="cli"
            )
        except (partners.PartnerError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        partner.drills = drills
        key = partners.issue_key(session, partner, scopes, actor="cli")
        if webhook_url:
            if not webhook_secret:
                typer.echo("error: --webhook-secret is required with --webhook-url", err=True)
                raise typer.Exit(2)
            channels.add_endpoint(session, partner.id, webhook_url, webhook_secret)
    typer.echo(f"partner {partner.id} {name}; API key (store it now, it is not shown again): {key}")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the audit chain's MACs and its signed checkpoints; exit 1 naming each edited,
    deleted, renumbered, forged or truncated entry."""
    from ops.platform.audit import service as audit
    from ops.platform.db import session_scope

    with session_scope() as session:
        result = audit.verify(session)
    if result.ok:
        typer.echo(
            f"audit chain intact: {result.entries} entries, {result.checkpoints} checkpoints"
        )
        return
    for problem in result.problems:
        typer.echo(f"TAMPERED: {problem}", err=True)
    raise typer.Exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Write a signed checkpoint of the chain head now (beat does it every minute)."""
    from ops.platform.audit import service as audit
    from ops.platform.db import session_scope

    with session_scope() as session:
        point = audit.checkpoint(session)
    if point is None:
        typer.echo("nothing new to checkpoint")
    else:
        typer.echo(f"checkpoint: entry {point.seq} at {point.at}")


@privacy_app.command("erase-due")
def privacy_erase_due() -> None:
    """Erase every closed case past its retention now, as beat does every 10 minutes (photos
    included, from the shared photo store)."""
    ensure_embedded_redis()
    from alerts.privacy import tasks

    typer.echo(f"erased {tasks.erase_due()} case(s)")


@app.command()
def status() -> None:
    """Print queue depths, worker heartbeats, breaker states and dead letters."""
    from alerts import status as status_report

    raise typer.Exit(status_report.print_status())


@app.command()
def demo(
    devices: Annotated[int, typer.Option(min=0, help="Synthetic devices to seed")] = 200_000,
    port: Annotated[int | None, typer.Option(help="API port")] = None,
) -> None:
    """A self-contained demo: synthetic devices, local partner sinks, demo users, all services."""
    from alerts import demo as demo_run

    _prepare_process(clear_metrics=True)
    raise typer.Exit(demo_run.run(devices=devices, port=port))


def _missing_schema(exc: Exception) -> bool:
    """Whether a database error means the schema was never created (SQLite: "no such table";
    PostgreSQL: undefined table)."""
    text = str(getattr(exc, "orig", exc)).lower()
    return (
        "no such table" in text
        or "unable to open database file" in text  # no data directory yet
        or ("relation" in text and "does not exist" in text)
    )


def main() -> None:
    """The `reunite` command: a database without Reunite's tables gets one line saying how to
    create them, not a traceback."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    try:
        app(standalone_mode=True)
    except (OperationalError, ProgrammingError) as exc:
        if not _missing_schema(exc):
            raise
        where = "the embedded database" if get_settings().database_url is None else "DATABASE_URL"
        typer.echo(
            f"error: {where} has no Reunite tables yet; run `reunite db upgrade` first "
            "(`reunite serve` does it for the embedded database)",
            err=True,
        )
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
