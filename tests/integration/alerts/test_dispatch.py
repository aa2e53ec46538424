"""The outbox relay and the dispatch task, with a real Celery worker on real Redis."""

from __future__ import annotations

import functools
from datetime import timedelta

from celery import Celery
from sqlalchemy import select

from alerts.cases import service as cases
from alerts.dispatch.models import DispatchRun
from alerts.users.models import User
from alerts.users.roles import Rank, Role
from ops.platform.clock import utcnow
from ops.platform.config import get_settings
from ops.platform.db import session_scope
from ops.platform.outbox import relay
from ops.platform.outbox import service as outbox
from ops.platform.outbox.models import OutboxMessage
from tests.factories import case_payload, make_agency, make_user
from tests.workers import free_port, reunite_env, reunite_process, wait_for


def approved_case() -> str:
    from alerts.cases.schemas import CaseCreate

    make_agency("PSB")
    officer_id = make_user("officer1", Role.OFFICER, "PSB")
    sup_id = make_user("sup1", Role.SUPERVISOR, "PSB", Rank.INSPECTOR)
    with session_scope() as s:
        officer, sup = s.get(User, officer_id), s.get(User, sup_id)
        case = cases.create(s, CaseCreate.model_validate(case_payload()), officer, get_settings())
        cases.submit(s, case.id, officer)
        cases.approve(s, case.id, sup)
        return case.id


def outbox_rows() -> list[OutboxMessage]:
    with session_scope() as s:
        return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_broker_outage_leaves_outbox_row_pending_then_relays(database):
    approved_case()
    dead = Celery(broker=f"redis://127.0.0.1:{free_port()}/0")
    dead.conf.broker_connection_timeout = 1
    result = outbox.relay_pending(functools.partial(dead.send_task, retry=False))
    assert result.published == 0 and result.error and "broker unavailable" in result.error
    [row] = outbox_rows()
    assert row.published_at is None and row.attempts == 1 and row.last_error

    assert relay.relay_now().published == 1
    [row] = outbox_rows()
    assert row.published_at is not None and row.last_error is None


def test_dispatch_task_runs_once_in_a_real_worker(database, tmp_path, redis_client):
    redis_client.flushdb()  # tasks left by other tests belong to other databases
    case_id = approved_case()
    env = reunite_env(DATABASE_URL=database, REUNITE_DATA_DIR=str(tmp_path))
    with reunite_process(["worker", "--concurrency", "1"], env, tmp_path, tmp_path / "w.log"):
        assert relay.relay_now().published == 1
        # Republishing the same row (as after a relay crash) must not run the dispatch twice.
        [row] = outbox_rows()
        relay.send_now(row.task, args=[row.id, *row.args], task_id=f"outbox-{row.id}")

        def runs() -> list[DispatchRun]:
            with session_scope() as s:
                return list(
                    s.scalars(select(DispatchRun).where(DispatchRun.finished_at.isnot(None)))
                )

        [run] = wait_for(runs, timeout=60)
        assert (run.case_id, run.kind) == (case_id, "approved")
        wait_for(lambda: (tmp_path / "w.log").read_text().count("succeeded") >= 2, timeout=30)
    assert len(runs()) == 1


def test_an_outbox_row_is_never_abandoned_however_often_it_was_published(database, redis_client):
    approved_case()
    with session_scope() as s:
        [row] = s.scalars(select(OutboxMessage)).all()
        # Published 25 times, long ago, and its work never completed.
        row.attempts, row.published_at = 25, utcnow() - timedelta(hours=1)
    sent = []
    result = outbox.relay_pending(lambda task, args, task_id: sent.append(task_id))
    assert (result.published, sent) == (1, [f"outbox-{row.id}"])
    [row] = outbox_rows()
    assert row.attempts == 26 and row.completed_at is None
