"""Celery signal wiring: our logging instead of Celery's, case ids on task logs, heartbeats.

Imported by ops.platform.celery_app, so every worker and beat gets it. Celery's own events and
remote control stay as they are, so Flower works (`celery -A alerts.bootstrap flower`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from celery import signals

from ops import logging as ops_logging
from ops import status
from ops.platform.config import get_settings

_heartbeat: Any = None
_case_tokens: dict[str, Any] = {}


@signals.setup_logging.connect
def _setup_logging(**_kwargs: Any) -> None:
    """Celery calls this instead of configuring logging itself."""
    ops_logging.configure_from_settings()


# How a message id names its case; set by the composition root (alerts.bootstrap).
case_of_message: Callable[[str], str | None] | None = None


def case_of(task: Any, args: tuple, kwargs: dict) -> str | None:
    """The case a task works on: its case_id argument, or the case part of its message_id."""
    try:
        bound = inspect.signature(task.run).bind_partial(*(args or ()), **(kwargs or {}))
    except TypeError:
        return None
    values = bound.arguments
    if values.get("case_id"):
        return str(values["case_id"])
    message_id = values.get("message_id")
    if isinstance(message_id, str) and case_of_message is not None:
        return case_of_message(message_id)
    return None


@signals.task_prerun.connect
def _bind_case(
    task_id: str = "", task: Any = None, args: tuple = (), kwargs: dict | None = None, **_: Any
) -> None:
    """Tag the task's log records with its case id."""
    if task is not None:
        _case_tokens[task_id] = ops_logging.case_id.set(case_of(task, args, kwargs or {}))


@signals.task_postrun.connect
def _unbind_case(task_id: str = "", **_: Any) -> None:
    """Forget the case id when the task ends."""
    token = _case_tokens.pop(task_id, None)
    if token is not None:
        ops_logging.case_id.reset(token)


@signals.worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    """Beat from the worker's main process so /readyz and `reunite status` see it."""
    global _heartbeat

    amqp_queues = getattr(getattr(getattr(sender, "app", None), "amqp", None), "queues", None)
    queues = sorted(getattr(amqp_queues, "consume_from", None) or {})
    hostname = getattr(sender, "hostname", "") if sender is not None else ""
    _heartbeat = status.HeartbeatThread(get_settings().resolved_redis_url, hostname, queues)
    _heartbeat.start()


@signals.worker_shutdown.connect
def _stop_heartbeat(**_: Any) -> None:
    """Remove the heartbeat at a clean shutdown (a killed worker's key just expires)."""
    if _heartbeat is not None:
        _heartbeat.stop()
