"""Thin Celery task for erasure: beat runs it; alerts.privacy.service does the work."""

from __future__ import annotations

from alerts.cases import service as cases
from alerts.console import photos
from alerts.feeds import public
from alerts.privacy import service
from ops.platform.celery_app import celery_app
from ops.platform.config import get_settings
from ops.platform.db import session_scope


@celery_app.task(name="reunite.privacy.erase_due", acks_late=True, max_retries=0)
def erase_due() -> int:
    """Cancel abandoned drafts and delete photos no case took (kept across a form error),
    then erase every closed case past its retention, one transaction per case."""
    settings = get_settings()
    with session_scope() as session:
        cases.abandon_stale_drafts(session, settings)
    with session_scope() as session:
        photos.sweep_unclaimed(session, settings)
    with session_scope() as session:
        ids = service.due(session, settings)
    for case_id in ids:
        with session_scope() as session:
            service.erase(session, case_id, settings)
    if ids:
        with session_scope() as session:
            service.scrub_storage(session)
        public.forget()  # cached public feeds and documents drop the erased cases now
    return len(ids)
