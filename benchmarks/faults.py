"""Fault injection: no alert silently lost ("No alert silently lost").

Each scenario runs a real APNs fan-out (or partner webhooks) through real processes: a Redis of
its own (`redis-server`, append-only), PostgreSQL, `reunite worker` (the production queue set,
so it also runs the reconciler), `reunite beat` (which schedules the reconciler every
`reconcile_interval_s`) and, for partners, `reunite webhooks`. The APNs peer is
ops/peers/apns.py in this process; it records every accepted push with its device token, so

    targeted   = devices the message was fanned out to
    delivered  = distinct device tokens the sink accepted
    lost       = targeted - delivered            (must be 0)
    duplicated = pushes accepted - delivered

Scenarios (`--scenario NAME`, default: all of them in turn):

redis-kill   The one Redis (broker and app state, `--appendonly yes`, `--appendfsync everysec`
             as in compose.yaml, or `--appendfsync always`) is `kill -9`ed at ~30% of the
             fan-out and started again from its AOF after `--restart-after` seconds (default:
             one run after 5 s, one after 30 s). Proves: queued batches, the delivery ledger
             and the reconciler's list survive a crash; what the last second of AOF lost is
             re-sent (duplicates), never dropped.
pg-outage    A PostgreSQL cluster the script starts itself (initdb, its own port, in a temp dir)
             is stopped with `pg_ctl stop -m immediate` at ~30% and started again after
             `--outage-s` (default 240). Proves: channel tasks retry database errors (6 h retry
             horizon) and the reconciler re-queues what was left, so every device is alerted
             once the database is back.
worker-kill  The worker's process group is SIGKILLed at ~30% and a new worker started. Proves:
             recovery (kill -> every device alerted) is bounded by the reconciler period plus
             the owner grace plus the remaining work, not the 600 s visibility timeout; the
             duplicates are what the killed processes sent but had not recorded yet.
partners     Three partner webhook endpoints (one hanging, one answering 500 for
             `--partner-fail-s` then healthy, one healthy) while an APNs fan-out runs, against
             an all-healthy run in the same invocation. Proves: the healthy partner's delivery
             latency p99 and the APNs fan-out time stay within 20% of the all-healthy run, and
             the failing partners' events are delivered once they recover.

For the fault runs the reconciler knobs are shortened (`--owner-grace-s 15`,
`--reconcile-interval-s 5`; production: 120 s and 30 s); every run prints the knobs it used.

    python benchmarks/faults.py                                  # everything, default sizes
    python benchmarks/faults.py --scenario redis-kill --restart-after 5
    python benchmarks/faults.py --scenario pg-outage --outage-s 240
    python benchmarks/faults.py --scenario worker-kill
    python benchmarks/faults.py --scenario partners
    python benchmarks/faults.py --devices 2000 --outage-s 30     # a quick run of everything

Services: PostgreSQL on 127.0.0.1:5432 (trust auth) for the database `faults_bench`, created
and reset by this script (never the `test` database); pg-outage runs a cluster of its own
(as the `postgres` user when run as root). Every Redis is a redis-server this script starts
on a free port; nothing touches another Redis. Exit status 1 if any scenario lost an alert or
missed a bound.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Not benchmarks/ itself: a module there must never shadow an installed package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))
# Decide the services before any Reunite module reads its settings: nothing shared by accident.
os.environ["REUNITE_MODE"] = "test"
os.environ.pop("DATABASE_URL", None)
os.environ.pop("REDIS_URL", None)

SHARED_PG = "postgresql://postgres@127.0.0.1:5432"
BENCH_DB = "faults_bench"
# Production: the worker consumes these (compose.yaml); webhooks have their own worker.
WORKER_QUEUES = "dispatch,geo,default,apns,fcm,sms"
DEFAULT_DEVICES = {"redis-kill": 30_000, "pg-outage": 20_000, "worker-kill": 20_000}
PARTNER_DEVICES = 20_000
SCENARIOS = ("redis-kill", "pg-outage", "worker-kill", "partners")
HORIZON_S = 6 * 3600.0  # the product default retry horizon, kept for every run


# --------------------------------------------------------------------------- figures


@dataclass
class Figures:
    """What one scenario run measured; `failures` names every broken promise."""

    name: str
    targeted: int
    counts: Counter[str]
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    counted: bool = True  # False: a comparison of runs, with no fan-out of its own

    @property
    def delivered(self) -> int:
        return len(self.counts)

    @property
    def lost(self) -> int:
        return self.targeted - self.delivered

    @property
    def duplicated(self) -> int:
        return sum(self.counts.values()) - self.delivered

    def check_lost(self) -> None:
        """Record a failure when any device was not alerted."""
        if self.lost:
            self.failures.append(f"lost={self.lost}")

    def show(self) -> None:
        """Print the figures block."""
        print(f"\n== {self.name}")
        if self.counted:
            print(
                f"   targeted={self.targeted} delivered={self.delivered} lost={self.lost} "
                f"duplicated={self.duplicated}"
            )
        for key, value in self.timings.items():
            print(f"   {key}: {value:.1f} s")
        for note in self.notes:
            print(f"   {note}")
        print(f"   result: {'FAIL (' + ', '.join(self.failures) + ')' if self.failures else 'ok'}")
        sys.stdout.flush()


def say(msg: str) -> None:
    """A progress line, flushed at once (runs take minutes)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- services


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    from ops.peers._runtime import free_port as _free

    return _free()


class RedisServer:
    """A redis-server of this script's own on a free port, persisted in an append-only file."""

    def __init__(self, workdir: Path, appendfsync: str) -> None:
        self.port = free_port()
        self.dir = workdir / f"redis-{self.port}"
        self.dir.mkdir(parents=True)
        self.appendfsync = appendfsync
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart from the AOF in its directory) and wait until it answers."""
        cmd = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            self.appendfsync,
            "--save",
            "",
            "--logfile",
            str(self.dir / "redis.log"),
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_until(self.answers, 20, "redis-server to answer")

    def answers(self) -> bool:
        """True when the server answers PING."""
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def kill9(self) -> None:
        """SIGKILL: no shutdown save; what the AOF had on disk is all that survives."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        """Stop it if this script's process is still running."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class PgCluster:
    """A PostgreSQL cluster of this script's own (initdb in a temp dir, its own port)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="faults-pg-"))
        self.data = self.dir / "data"
        self.root = os.geteuid() == 0
        if self.root:  # initdb and postgres refuse to run as root
            shutil.chown(self.dir, "postgres", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/reunite"

    def _run(self, *cmd: str) -> None:
        full = ["runuser", "-u", "postgres", "--", *cmd] if self.root else list(cmd)
        subprocess.run(full, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def init(self) -> None:
        """initdb, start, and create the `reunite` database."""
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "reunite")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=300"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "pg.log"),
            "-o",
            opts,
            "-w",
            "start",
        )

    def stop_immediate(self) -> None:
        """`pg_ctl stop -m immediate`: every backend killed, crash recovery at the next start."""
        self._run("pg_ctl", "-D", str(self.data), "stop", "-m", "immediate")

    def destroy(self) -> None:
        """Stop the cluster if it runs and remove its directory."""
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "stop", "-m", "fast")
        shutil.rmtree(self.dir, ignore_errors=True)


def shared_database() -> str:
    """The `faults_bench` database on the machine's server, created if absent, emptied."""
    from sqlalchemy import create_engine, text

    admin = create_engine(
        f"{SHARED_PG.replace('postgresql://', 'postgresql+psycopg://')}/postgres",
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": BENCH_DB}):
            conn.execute(text(f"CREATE DATABASE {BENCH_DB}"))
    admin.dispose()
    url = f"{SHARED_PG}/{BENCH_DB}"
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


# --------------------------------------------------------------------------- processes


class Proc:
    """A Reunite process (`python -m alerts.cli ...`) in its own process group."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, ready: bytes) -> None:
        self.log = log
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "alerts.cli", *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=ROOT,
            )
        wait_until(
            lambda: ready in log.read_bytes() or self.popen.poll() is not None,
            90,
            f"{args[0]} start",
        )
        if self.popen.poll() is not None:
            raise RuntimeError(f"{args[0]} exited at start; see {log}")

    def kill_group(self) -> None:
        """SIGKILL the process and its pool children at once, as a crashed machine would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()

    def stop(self) -> None:
        """SIGTERM the group (warm shutdown), SIGKILL after 20 s."""
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(20)
        except subprocess.TimeoutExpired:
            self.kill_group()


def worker(env: dict[str, str], log: Path, concurrency: int) -> Proc:
    """`reunite worker` on the production queue set (channels and the reconciler's queue)."""
    args = ["worker", "--concurrency", str(concurrency), "--queues", WORKER_QUEUES]
    return Proc(args, env, log, b"ready")


def webhooks_worker(env: dict[str, str], log: Path) -> Proc:
    """`reunite webhooks`: partner webhooks on a 16-thread pool of their own."""
    return Proc(["webhooks", "--concurrency", "16"], env, log, b"ready")


def beat(env: dict[str, str], log: Path) -> Proc:
    """`reunite beat`: schedules the reconcilers every reconcile_interval_s."""
    return Proc(["beat"], env, log, b"Starting")


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll until check() is truthy; TimeoutError names what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f} s")
        time.sleep(interval)


def log_lines(paths: list[Path], *needles: str, limit: int = 8) -> list[str]:
    """Distinct log lines containing any needle (evidence for a report)."""
    seen: dict[str, int] = {}
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if any(n in line for n in needles):
                key = line[:160]
                seen[key] = seen.get(key, 0) + 1
    return [f"{n}x {line}" for line, n in list(seen.items())[:limit]]


def count_lines(paths: list[Path], needle: str) -> int:
    """How many log lines contain needle."""
    return sum(path.read_text(errors="replace").count(needle) for path in paths if path.exists())


# --------------------------------------------------------------------------- the app's side


def clear_caches() -> None:
    """Forget cached settings, engines and clients after the environment changed."""
    from ops.platform import config, db, redis_client

    with contextlib.suppress(Exception):
        db.get_engine().dispose()
    redis_client.get_redis.cache_clear()
    db.get_sessionmaker.cache_clear()
    db.get_engine.cache_clear()
    config.get_settings.cache_clear()


def configure(database_url: str, redis_url: str, doc: dict[str, Any], data_dir: Path) -> dict:
    """Point this process (and the environment its children inherit) at a scenario's services:
    settings, the Celery producer, the migrated schema. Returns the children's environment."""
    from alerts import bootstrap, migrate
    from ops.platform.celery_app import celery_app
    from ops.platform.config import get_settings

    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        REUNITE_CHANNELS=json.dumps(doc),
        REUNITE_DATA_DIR=str(data_dir),
        REUNITE_LOG_LEVEL="INFO",
    )
    clear_caches()
    settings = get_settings()
    # The Celery app read the broker URL at import: point its producer at this Redis.
    celery_app.conf.broker_url = settings.broker_url
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    migrate.upgrade()
    bootstrap.wire()
    return dict(os.environ)


def channels_doc(args: argparse.Namespace, apns: dict[str, Any], **over: Any) -> dict[str, Any]:
    """The REUNITE_CHANNELS document: product defaults but the shortened reconciler knobs."""
    doc: dict[str, Any] = {
        "apns": apns,
        "apns_batch": args.batch,
        "owner_grace_s": args.owner_grace_s,
        "reconcile_interval_s": args.reconcile_interval_s,
        "retry_horizon_s": HORIZON_S,
        "retry_max_delay_s": 30.0,
    }
    if args.streams:
        doc["apns_concurrency"] = args.streams
    doc.update(over)
    return doc


def knobs(doc: dict[str, Any]) -> str:
    """The non-default knobs of a run, for its figures."""
    shown = {k: v for k, v in doc.items() if k not in ("apns",)}
    return "knobs: " + ", ".join(f"{k}={v}" for k, v in shown.items())


def uncap_sink_connections() -> None:
    """hypercorn ends an HTTP/2 connection with GOAWAY after 1,000 requests by default; APNs
    does not. Each such GOAWAY makes the client re-send the streams it had in flight (their
    answers cannot be read after GOAWAY), which would show up here as duplicates that no fault
    caused. The sinks in this process get no such cap (ops/peers is left as it is)."""
    from hypercorn.config import Config

    Config.keep_alive_max_requests = 2**31


@contextlib.contextmanager
def apns_peer() -> Iterator[tuple[Any, dict[str, Any]]]:
    """The loopback APNs peer (HTTP/2, TLS, provider JWT verified) and its settings block."""
    from ops.peers import apns as apns_sink
    from ops.peers import keys
    from ops.peers._runtime import temp_tls
    from tests.peers.config import TOPIC

    key = keys.make_apns_key()
    sink = apns_sink.ApnsSink(
        topic=TOPIC,
        team_id=key.team_id,
        key_id=key.key_id,
        public_key=key.public_key,
        slow_seconds=0.0,
    )
    with temp_tls() as tls, apns_sink.running(sink, tls=tls) as endpoint:
        yield (
            sink,
            {
                "base_url": endpoint.url,
                "topic": TOPIC,
                "team_id": key.team_id,
                "key_id": key.key_id,
                "auth_key": key.private_pem,
                "transport": {"ca_bundle": str(endpoint.ca_bundle), "timeout_s": 5.0},
            },
        )


class PushCounter:
    """Pushes per device token at the sink (its `accepted` list only ever grows)."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.seen = 0
        self.counts: Counter[str] = Counter()

    def update(self) -> int:
        """Take in new pushes; returns the distinct tokens delivered so far."""
        accepted = self.sink.accepted
        end = len(accepted)
        for push in accepted[self.seen : end]:
            self.counts[push.token] += 1
        self.seen = end
        return len(self.counts)

    def total(self) -> int:
        """Pushes accepted so far (duplicates included)."""
        return len(self.sink.accepted)

    def reset(self) -> None:
        """Forget everything (between runs, with nothing in flight)."""
        with self.sink._lock:
            self.sink.accepted.clear()
        self.seen = 0
        self.counts = Counter()


def seed_devices(partner_id: int, n: int, prefix: str) -> tuple[list[str], list[int]]:
    """n APNs devices with distinct tokens f"{prefix}{i}" (bulk insert); (tokens, ids)."""
    from sqlalchemy import insert, select

    from geo.devices.models import Device
    from ops.platform import crypto
    from ops.platform.db import session_scope

    tokens = [f"{prefix}{i:06d}" for i in range(n)]
    for start in range(0, n, 5000):
        with session_scope() as s:
            s.execute(
                insert(Device),
                [
                    {
                        "partner_id": partner_id,
                        "external_id": token,
                        "platform": "apns",
                        "address_enc": crypto.encrypt(token),
                        "locale": "zh-CN",
                        "opted_in": True,
                        "active": True,
                    }
                    for token in tokens[start : start + 5000]
                ],
            )
    with session_scope() as s:
        rows = s.execute(
            select(Device.id, Device.external_id).where(
                Device.partner_id == partner_id, Device.external_id.startswith(prefix)
            )
        ).all()
    by_token = {r.external_id: r.id for r in rows}
    return tokens, [by_token[t] for t in tokens]


@dataclass
class World:
    """One scenario's running system: services, sink, a case, devices and one alert."""

    name: str
    dir: Path
    env: dict[str, str]
    doc: dict[str, Any]
    sink: Any
    counter: PushCounter
    case_id: str
    partner_id: int
    tokens: list[str]
    ids: list[int]
    beat: Proc
    procs: list[Proc] = field(default_factory=list)

    def worker(self, label: str, concurrency: int) -> Proc:
        """Start a `reunite worker`; stopped when the world ends."""
        proc = worker(self.env, self.dir / f"{label}.log", concurrency)
        self.procs.append(proc)
        return proc

    def logs(self) -> list[Path]:
        """Every log of this world's processes."""
        return sorted(self.dir.glob("*.log"))

    def new_message(self, wave: int = 1) -> str:
        """A new alert message of the case."""
        from tests.integration.channels import fanout_env as fx

        return fx.new_message(self.case_id, wave=wave)

    def fan_out(self, message_id: str, ids: list[int] | None = None) -> float:
        """fan_out_devices for the message; returns the monotonic start time."""
        from channels import service

        started = time.monotonic()
        queued = service.fan_out_devices(message_id, ids if ids is not None else self.ids)
        say(f"{self.name}: fanned out {queued} in {time.monotonic() - started:.1f} s")
        return started

    def wait_delivered(self, n: int, timeout: float, started: float) -> float:
        """Wait until n distinct tokens were accepted, printing progress; the monotonic time
        it happened (raises TimeoutError with the count reached)."""
        deadline = time.monotonic() + timeout
        last_print = 0.0
        while True:
            got = self.counter.update()
            now = time.monotonic()
            if got >= n:
                return now
            if now - last_print >= 10:
                say(f"{self.name}: t+{now - started:.0f} s delivered {got}/{n}")
                last_print = now
            if now > deadline:
                raise TimeoutError(f"only {got}/{n} delivered after {timeout:.0f} s")
            time.sleep(0.02)

    def settle(self, seconds: float = 3.0) -> None:
        """Let late duplicates land before counting."""
        time.sleep(seconds)
        self.counter.update()

    def evidence(self, message_id: str, fig: Figures) -> None:
        """Ledger, reconciler and dead-letter figures; for lost devices, their ledger state
        and the log lines that explain them."""
        from sqlalchemy import func, select

        from channels import ledger, reconcile
        from channels.models import DeadLetter
        from ops.platform.db import session_scope
        from ops.platform.redis_client import get_redis

        client = get_redis()
        try:
            counts = ledger.live_counts(client, message_id)[("apns", self.partner_id)]
            requeued = reconcile.requeued(client, message_id)
            fig.notes.append(
                f"ledger: targeted={counts['targeted']} sent={counts['sent']} "
                f"retrying={counts['retrying']} dead_lettered={counts['dead_lettered']}; "
                f"reconciler re-queued {requeued.get('apns', 0)} targets"
            )
            with session_scope() as s:
                dead = s.scalar(
                    select(func.count())
                    .select_from(DeadLetter)
                    .where(DeadLetter.message_id == message_id)
                )
            fig.notes.append(f"dead letters for the message: {dead}")
        except Exception as exc:  # evidence is best effort; the sink's figures stand
            fig.notes.append(f"ledger not readable: {type(exc).__name__}: {exc}")
        if fig.lost:
            missing = [t for t in self.tokens if t not in fig.counts]
            index = {t: i for i, t in zip(self.ids, self.tokens, strict=True)}
            led = ledger.Ledger(client, message_id, "apns")
            states = Counter(int(s) for s in led.states([index[t] for t in missing]))
            fig.notes.append(
                f"lost tokens (first 10): {missing[:10]}; ledger states of the lost "
                f"(0 untouched, 1 sent, 2 retrying, 3 ended): {dict(states)}"
            )
            for line in log_lines(self.logs(), "ERROR", "Traceback", "past its retry horizon"):
                fig.notes.append(f"log: {line}")


@contextlib.contextmanager
def apns_world(
    args: argparse.Namespace,
    name: str,
    database_url: str,
    redis_url: str,
    devices: int,
    **over: Any,
) -> Iterator[World]:
    """Sink, settings, schema, a case with n devices, and beat; the caller runs workers."""
    from tests.integration.channels import fanout_env as fx

    workdir = Path(tempfile.mkdtemp(prefix=f"faults-{name}-"))
    with contextlib.ExitStack() as stack:
        sink, block = stack.enter_context(apns_peer())
        doc = channels_doc(args, block, **over)
        env = configure(database_url, redis_url, doc, workdir / "data")
        case_id = fx.make_case()
        partner = fx.make_partner("MapsApp")
        seeded = time.monotonic()
        tokens, ids = seed_devices(partner, devices, "tok-")
        say(f"{name}: {devices} devices seeded in {time.monotonic() - seeded:.1f} s ({workdir})")
        scheduler = beat(env, workdir / "beat.log")
        world = World(
            name,
            workdir,
            env,
            doc,
            sink,
            PushCounter(sink),
            case_id,
            partner,
            tokens,
            ids,
            scheduler,
            [scheduler],
        )
        try:
            yield world
        finally:
            for proc in reversed(world.procs):
                proc.stop()
            from ops.platform.db import get_engine

            get_engine().dispose()
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                say(f"{name}: logs kept in {workdir}")


def figures_of(world: World, name: str, message_id: str) -> Figures:
    """The sink's figures for a run, with ledger evidence."""
    world.counter.update()
    fig = Figures(name, len(world.tokens), Counter(world.counter.counts))
    fig.check_lost()
    world.evidence(message_id, fig)
    fig.notes.append(knobs(world.doc))
    return fig


# --------------------------------------------------------------------------- scenarios


def redis_kill(args: argparse.Namespace) -> list[Figures]:
    """kill -9 of the AOF Redis at ~30%, restarted after each --restart-after delay."""
    return [redis_kill_once(args, delay) for delay in args.restart_after]


def redis_kill_once(args: argparse.Namespace, delay: float) -> Figures:
    """One redis-kill run."""
    n = args.devices or DEFAULT_DEVICES["redis-kill"]
    name = f"redis-kill (restart after {delay:g} s, appendfsync {args.appendfsync})"
    workdir = Path(tempfile.mkdtemp(prefix="faults-redis-"))
    redis = RedisServer(workdir, args.appendfsync)
    redis.start()
    try:
        with apns_world(args, "redis-kill", shared_database(), redis.url, n) as world:
            world.worker("worker", args.concurrency)
            message_id = world.new_message()
            started = world.fan_out(message_id)
            at = math.ceil(n * args.kill_at)
            world.wait_delivered(at, 600, started)
            redis.kill9()
            killed = time.monotonic()
            at_kill = world.counter.update()
            say(f"redis-kill: redis-server SIGKILLed at {at_kill}/{n} delivered")
            time.sleep(delay)
            after_outage = world.counter.update()
            redis.start()
            restarted = time.monotonic()
            say(f"redis-kill: restarted from the AOF ({after_outage} delivered while it was down)")
            try:
                done = world.wait_delivered(n, args.timeout, started)
            except TimeoutError as exc:
                say(f"redis-kill: {exc}")
                done = float("nan")
            world.settle()
            fig = figures_of(world, name, message_id)
            fig.timings = {
                "kill at (from fan-out start)": killed - started,
                "Redis down for": restarted - killed,
                "restart -> every device alerted": done - restarted,
                "fan-out start -> every device alerted": done - started,
            }
            fig.notes.insert(
                0, f"delivered at the kill: {at_kill}; pushes in total: {world.counter.total()}"
            )
            return fig
    finally:
        redis.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def pg_outage(args: argparse.Namespace) -> list[Figures]:
    """PostgreSQL stopped (immediate) at ~30% for --outage-s, then started again."""
    n = args.devices or DEFAULT_DEVICES["pg-outage"]
    name = f"pg-outage ({args.outage_s:g} s, pg_ctl stop -m immediate)"
    workdir = Path(tempfile.mkdtemp(prefix="faults-pgredis-"))
    redis = RedisServer(workdir, args.appendfsync)
    redis.start()
    cluster = PgCluster()
    try:
        cluster.init()
        say(f"pg-outage: own PostgreSQL cluster on port {cluster.port} ({cluster.dir})")
        with apns_world(args, "pg-outage", cluster.url, redis.url, n) as world:
            world.worker("worker", args.concurrency)
            message_id = world.new_message()
            started = world.fan_out(message_id)
            world.wait_delivered(math.ceil(n * args.kill_at), 600, started)
            cluster.stop_immediate()
            stopped = time.monotonic()
            at_stop = world.counter.update()
            say(f"pg-outage: database stopped at {at_stop}/{n} delivered")
            while time.monotonic() - stopped < args.outage_s:
                time.sleep(min(10.0, args.outage_s - (time.monotonic() - stopped)))
                say(
                    f"pg-outage: down {time.monotonic() - stopped:.0f} s, "
                    f"delivered {world.counter.update()}/{n}"
                )
            during = world.counter.update()
            cluster.start()
            back = time.monotonic()
            say("pg-outage: database started again")
            try:
                done = world.wait_delivered(n, args.timeout, started)
            except TimeoutError as exc:
                say(f"pg-outage: {exc}")
                done = float("nan")
            world.settle()
            fig = figures_of(world, name, message_id)
            fig.timings = {
                "stop at (from fan-out start)": stopped - started,
                "database down for": back - stopped,
                "database back -> every device alerted": done - back,
                "fan-out start -> every device alerted": done - started,
            }
            fig.notes.insert(0, f"delivered at the stop: {at_stop}; when it came back: {during}")
            logs = world.logs()
            fig.notes.append(
                f"logs: {count_lines(logs, 'OperationalError')} lines naming OperationalError, "
                f"{count_lines(logs, ' retry')} Celery task retries, "
                f"{count_lines(logs, 'reconciler re-queued')} reconciler re-queues"
            )
            return [fig]
    finally:
        cluster.destroy()
        redis.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def worker_kill(args: argparse.Namespace) -> list[Figures]:
    """The worker's process group SIGKILLed at ~30%; a new worker finishes the fan-out."""
    from channels.fanout import FLUSH_EVERY

    n = args.devices or DEFAULT_DEVICES["worker-kill"]
    name = "worker-kill (SIGKILL of the worker's process group, visibility timeout 600 s)"
    workdir = Path(tempfile.mkdtemp(prefix="faults-wk-"))
    redis = RedisServer(workdir, args.appendfsync)
    redis.start()
    try:
        with apns_world(
            args, "worker-kill", shared_database(), redis.url, n, visibility_timeout_s=600
        ) as world:
            first = world.worker("worker1", args.concurrency)
            message_id = world.new_message()
            started = world.fan_out(message_id)
            at = math.ceil(n * args.kill_at)
            world.wait_delivered(at, 600, started)
            first.kill_group()
            killed = time.monotonic()
            at_kill = world.counter.update()
            rate = at_kill / (killed - started)
            say(f"worker-kill: worker group SIGKILLed at {at_kill}/{n} delivered")
            world.worker("worker2", args.concurrency)
            up = time.monotonic()
            try:
                done = world.wait_delivered(n, args.timeout, started)
            except TimeoutError as exc:
                say(f"worker-kill: {exc}")
                done = float("nan")
            world.settle()
            fig = figures_of(world, name, message_id)
            recovery = done - killed
            remaining = (n - at_kill) / rate
            bound = args.reconcile_interval_s + args.owner_grace_s + remaining + args.margin_s
            fig.timings = {
                "kill at (from fan-out start)": killed - started,
                "new worker ready after the kill": up - killed,
                "recovery (kill -> every device alerted)": recovery,
                "fan-out start -> every device alerted": done - started,
            }
            streams = args.streams or 200
            flush_bound = FLUSH_EVERY * args.concurrency
            dup_bound = args.concurrency * (FLUSH_EVERY + streams)
            fig.notes += [
                f"delivered at the kill: {at_kill} ({rate:.0f} pushes/s before it)",
                f"recovery bound: reconcile_interval {args.reconcile_interval_s:g} + owner_grace "
                f"{args.owner_grace_s:g} + remaining work at the pre-kill rate {remaining:.1f} + "
                f"margin {args.margin_s:g} = {bound:.1f} s (visibility timeout: 600 s)",
                f"duplicates vs one flush chunk per killed process: FLUSH_EVERY {FLUSH_EVERY} x "
                f"{args.concurrency} = {flush_bound} -> "
                f"{'held' if fig.duplicated <= flush_bound else 'EXCEEDED'}",
                f"duplicates vs flush chunk + in-flight HTTP/2 streams per killed process: "
                f"{args.concurrency} x ({FLUSH_EVERY} + {streams}) = {dup_bound} -> "
                f"{'held' if fig.duplicated <= dup_bound else 'EXCEEDED'}",
            ]
            if not recovery < bound:
                fig.failures.append(f"recovery {recovery:.1f} s >= bound {bound:.1f} s")
            if fig.duplicated > dup_bound:
                fig.failures.append(f"duplicated {fig.duplicated} > {dup_bound}")
            return [fig]
    finally:
        redis.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


class Stamped:
    """Wraps a webhook receiver: when each message's event first arrived (monotonic)."""

    def __init__(self, receiver: Any) -> None:
        self.receiver = receiver
        self.first_at: dict[str, float] = {}
        self._taken = 0
        self._lock = threading.Lock()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        await self.receiver(scope, receive, send)
        if scope["type"] != "http":
            return
        now = time.monotonic()
        with self._lock:
            events = self.receiver.events
            for event in events[self._taken :]:
                self.first_at.setdefault(event.event["data"]["message_id"], now)
            self._taken = len(events)


@dataclass
class PartnerRun:
    """One partners run: APNs fan-out time and per-partner delivery of its events."""

    fanout_s: float
    apns: Figures
    sent_at: dict[str, float]  # message id -> when fan_out_partners was called

    def latencies(self, stamped: Stamped) -> list[float]:
        """Delivery latency (s) of each of this run's events that arrived."""
        return sorted(
            stamped.first_at[m] - t for m, t in self.sent_at.items() if m in stamped.first_at
        )


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted values."""
    if not values:
        return float("nan")
    return values[max(0, math.ceil(p / 100 * len(values)) - 1)]


def partners(args: argparse.Namespace) -> list[Figures]:
    """Hanging, failing and healthy partners during an APNs fan-out vs an all-healthy run."""
    from channels import service
    from ops.peers import keys
    from ops.peers import webhook as webhook_sink
    from ops.peers._runtime import serve_asgi
    from ops.platform.db import session_scope
    from tests.integration.channels import fanout_env as fx

    n = args.devices or PARTNER_DEVICES
    workdir = Path(tempfile.mkdtemp(prefix="faults-partners-"))
    redis = RedisServer(workdir, args.appendfsync)
    redis.start()
    secret = keys.make_webhook_secret()
    receivers = {
        name: webhook_sink.WebhookReceiver(secret=secret) for name in ("hang", "flaky", "healthy")
    }
    stamped = {name: Stamped(r) for name, r in receivers.items()}
    out: list[Figures] = []
    try:
        with contextlib.ExitStack() as stack:
            urls = {
                name: stack.enter_context(serve_asgi(app, name=f"hook-{name}")) + f"/hooks/{name}"
                for name, app in stamped.items()
            }
            world = stack.enter_context(
                apns_world(args, "partners", shared_database(), redis.url, n)
            )
            for name, url in urls.items():
                partner = fx.make_partner(f"Partner-{name}")
                with session_scope() as s:
                    service.add_endpoint(s, partner, url, secret)
            world.worker("worker", args.concurrency)
            hooks = webhooks_worker(world.env, world.dir / "webhooks.log")
            world.procs.append(hooks)
            # Warm both workers (connections, rendering) so neither run pays for it.
            warm = world.new_message(wave=900)
            world.fan_out(warm, world.ids[:200])
            world.wait_delivered(200, 120, time.monotonic())
            service.fan_out_partners(warm)
            wait_until(lambda: all(warm in s.first_at for s in stamped.values()), 60, "warm-up")
            world.settle(1.0)
            world.counter.reset()

            base = partner_run(args, world, "all healthy", wave0=1000)
            baseline_fig = base.apns
            out.append(baseline_fig)

            # The fault: one partner hangs (beyond the timeout), one answers 500 for a while.
            receivers["hang"].hang_s = 3600.0
            receivers["flaky"].status = 500
            healed = threading.Timer(
                args.partner_fail_s, lambda: setattr(receivers["flaky"], "status", None)
            )
            world.counter.reset()
            healed.start()
            faulty_started = time.monotonic()
            faulty = partner_run(args, world, "hanging + failing partners", wave0=2000)
            out.append(faulty.apns)
            # The failing partner recovers after --partner-fail-s: all its events must arrive.
            flaky_all = wait_for_events(stamped["flaky"], faulty.sent_at, args.partner_fail_s + 300)
            flaky_done = time.monotonic() - faulty_started
            # The hanging partner is still hanging: its events must be retrying, not lost.
            hang_states = webhook_states(world, receivers, faulty.sent_at)
            receivers["hang"].hang_s = 0.0
            healed_hang = time.monotonic()
            hang_all = wait_for_events(stamped["hang"], faulty.sent_at, 300)
            hang_done = time.monotonic() - healed_hang
            healed.cancel()

            fig = Figures(
                "partners: isolation (faulty run / all-healthy run)", 0, Counter(), counted=False
            )
            lat_base = base.latencies(stamped["healthy"])
            lat_faulty = faulty.latencies(stamped["healthy"])
            p99_ratio = percentile(lat_faulty, 99) / percentile(lat_base, 99)
            fan_ratio = faulty.fanout_s / base.fanout_s
            k = len(base.sent_at)
            fig.notes += [
                f"healthy partner latency: all-healthy p50 {percentile(lat_base, 50) * 1000:.0f} ms"
                f" p99 {percentile(lat_base, 99) * 1000:.0f} ms; faulty run p50 "
                f"{percentile(lat_faulty, 50) * 1000:.0f} ms p99 "
                f"{percentile(lat_faulty, 99) * 1000:.0f} ms "
                f"({k} events each; p99 of {k} is the slowest)",
                f"ratio healthy-partner p99: {p99_ratio:.2f} (must be <= 1.20)",
                f"APNs fan-out ({n} devices): all-healthy {base.fanout_s:.1f} s, faulty run "
                f"{faulty.fanout_s:.1f} s, ratio {fan_ratio:.2f} (must be <= 1.20)",
            ]
            for name, run in (
                ("healthy (all-healthy run)", base),
                ("healthy (faulty run)", faulty),
            ):
                got = len([m for m in run.sent_at if m in stamped["healthy"].first_at])
                fig.notes.append(
                    f"partner {name}: targeted={k} delivered={got} lost={k - got} "
                    f"duplicated={receivers['healthy'].duplicates}"
                )
                if got < k:
                    fig.failures.append(f"healthy partner lost {k - got}")
            fig.notes += [
                f"partner answering 500 for {args.partner_fail_s:g} s: targeted={k} "
                f"delivered={flaky_all} lost={k - flaky_all} "
                f"duplicated={receivers['flaky'].duplicates}; all delivered {flaky_done:.0f} s "
                f"after the faulty run started; attempts {receivers['flaky'].attempts}",
                f"hanging partner while hanging: ledger states of its {k} events {hang_states}; "
                f"after it stopped hanging: delivered={hang_all} lost={k - hang_all} "
                f"duplicated={receivers['hang'].duplicates} within {hang_done:.0f} s; "
                f"attempts {receivers['hang'].attempts}",
            ]
            if flaky_all < k:
                fig.failures.append(f"failing partner lost {k - flaky_all}")
            if hang_all < k:
                fig.failures.append(f"hanging partner lost {k - hang_all}")
            if not p99_ratio <= 1.2:
                fig.failures.append(f"healthy p99 ratio {p99_ratio:.2f} > 1.20")
            if not fan_ratio <= 1.2:
                fig.failures.append(f"APNs fan-out ratio {fan_ratio:.2f} > 1.20")
            fig.notes.append(
                knobs(world.doc) + "; partner endpoints: product defaults "
                "(10/s, 2 in flight, timeout 3 s, breaker 5 failures / 2 timeouts)"
            )
            out.append(fig)
    finally:
        redis.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return out


def partner_run(args: argparse.Namespace, world: World, label: str, wave0: int) -> PartnerRun:
    """An APNs fan-out with --partner-events partner events sent during it."""
    from channels import service

    n = len(world.ids)
    message_id = world.new_message(wave=wave0)
    done_at: list[float] = []

    def watch() -> None:
        with contextlib.suppress(TimeoutError):
            done_at.append(world.wait_delivered(n, args.timeout, started))

    started = world.fan_out(message_id)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    sent_at: dict[str, float] = {}
    for i in range(args.partner_events):
        event_message = world.new_message(wave=wave0 + 1 + i)
        sent_at[event_message] = time.monotonic()
        service.fan_out_partners(event_message)
        time.sleep(args.partner_interval_s)
    watcher.join()
    world.settle()
    fig = figures_of(world, f"partners: APNs fan-out, {label}", message_id)
    fanout_s = (done_at[0] if done_at else float("nan")) - started
    fig.timings = {"fan-out start -> every device alerted": fanout_s}
    return PartnerRun(fanout_s, fig, sent_at)


def wait_for_events(stamped: Stamped, sent_at: dict[str, float], timeout: float) -> int:
    """Wait until every message's event reached the receiver; how many did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(m in stamped.first_at for m in sent_at):
            break
        time.sleep(0.5)
    return len([m for m in sent_at if m in stamped.first_at])


def webhook_states(world: World, receivers: dict[str, Any], sent_at: dict[str, float]) -> dict:
    """Ledger states (Counter by name) of the hanging partner's events."""
    from sqlalchemy import select

    from channels import ledger
    from channels.models import PartnerEndpoint
    from ops.platform.db import session_scope
    from ops.platform.redis_client import get_redis

    with session_scope() as s:
        endpoint = s.scalar(select(PartnerEndpoint.id).where(PartnerEndpoint.url.endswith("/hang")))
    names = {0: "untouched", 1: "sent", 2: "retrying", 3: "ended"}
    states: Counter[str] = Counter()
    for message_id in sent_at:
        [state] = ledger.Ledger(get_redis(), message_id, "webhook").states([endpoint])
        states[names[int(state)]] += 1
    return dict(states)


# --------------------------------------------------------------------------- main

RUNNERS: dict[str, Callable[[argparse.Namespace], list[Figures]]] = {
    "redis-kill": redis_kill,
    "pg-outage": pg_outage,
    "worker-kill": worker_kill,
    "partners": partners,
}


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    p.add_argument("--devices", type=int, help="devices per fan-out (default: per scenario)")
    p.add_argument(
        "--restart-after",
        type=float,
        nargs="+",
        default=[5.0, 30.0],
        help="redis-kill: seconds Redis stays down (one run per value)",
    )
    p.add_argument("--appendfsync", choices=["everysec", "always"], default="everysec")
    p.add_argument("--outage-s", type=float, default=240.0, help="pg-outage: seconds down")
    p.add_argument("--kill-at", type=float, default=0.3, help="fault at this fraction delivered")
    p.add_argument("--concurrency", type=int, default=2, help="worker processes (prefork)")
    p.add_argument("--batch", type=int, default=500, help="apns_batch")
    p.add_argument("--streams", type=int, default=0, help="apns_concurrency (0: default 200)")
    p.add_argument("--owner-grace-s", type=float, default=15.0)
    p.add_argument("--reconcile-interval-s", type=float, default=5.0)
    p.add_argument("--margin-s", type=float, default=15.0, help="worker-kill: bound slack")
    p.add_argument("--partner-events", type=int, default=60)
    p.add_argument("--partner-interval-s", type=float, default=0.25)
    p.add_argument("--partner-fail-s", type=float, default=120.0)
    p.add_argument("--timeout", type=float, default=900.0, help="max wait for every device")
    p.add_argument("--keep", action="store_true", help="keep logs and data directories")
    return p.parse_args()


def main() -> int:
    """Run the chosen scenarios and print their figures; 1 if any failed."""
    args = parse_args()
    # A SIGTERM (timeout, Ctrl-C from a supervisor) still stops every process this script started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # The sinks' connections are cancelled at shutdown; asyncio would print each as an error.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    uncap_sink_connections()
    chosen = SCENARIOS if args.scenario == "all" else (args.scenario,)
    results: list[Figures] = []
    for name in chosen:
        say(f"scenario {name}")
        try:
            figs = RUNNERS[name](args)
        except Exception as exc:
            fig = Figures(name, 0, Counter())
            fig.failures.append(f"did not complete: {type(exc).__name__}: {exc}")
            figs = [fig]
        for fig in figs:
            fig.show()
        results += figs
    print("\nsummary:")
    for fig in results:
        status = "FAIL " + "; ".join(fig.failures) if fig.failures else "ok"
        if not fig.counted:
            print(f"  {fig.name}: {status}")
            continue
        print(
            f"  {fig.name}: targeted={fig.targeted} delivered={fig.delivered} lost={fig.lost} "
            f"duplicated={fig.duplicated} -> {status}"
        )
    return 1 if any(f.failures for f in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
