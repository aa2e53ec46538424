"""A message says what was approved when it went out, on every retry, whatever changes later.

Before, the push, SMS and webhook texts were rendered from the case each time a worker first
needed them: a retry or re-queued batch sent after a correction carried the corrected text
under the original message id (and `sent` time), so one message said two different things.
"""

from __future__ import annotations

from channels import service
from channels.models import Message
from ops.platform.config import get_settings
from ops.platform.db import session_scope
from tests.factories import CHILD_NAME, case_payload
from tests.integration.channels import fanout_env as fx


def fresh_delivery(message_id: str):
    """Build the delivery as a new worker process would (no per-process cache)."""
    return service._build_delivery(message_id)


def test_a_message_keeps_its_text_after_the_case_changes_and_erasure_removes_it(
    database, redis_client, monkeypatch
):
    from alerts.cases import service as cases
    from alerts.cases.models import Case
    from alerts.cases.schemas import CaseUpdate

    fx.apply(monkeypatch, fx.channel_settings())
    case_id = fx.make_case()
    message_id = fx.new_message(case_id)
    first = fresh_delivery(message_id)
    assert "red jacket" in first.messages["zh-CN"].body + first.messages["en"].body

    with session_scope() as s:
        case = s.get(Case, case_id)
        child = case_payload()["child"] | {"clothing": "green raincoat"}
        update = CaseUpdate.model_validate({"child": child})
        cases.apply_update(s, case, update, get_settings(), actor="user:1")

    again = fresh_delivery(message_id)
    assert again.messages == first.messages, "the published message changed"
    assert again.sent_at == first.sent_at
    later = fresh_delivery(fx.new_message(case_id, wave=2))
    assert "green raincoat" in later.messages["en"].body, "a new message says what is true now"

    from alerts.privacy import service as privacy

    with session_scope() as s:
        s.get(Case, case_id).state = "resolved"
    with session_scope() as s:
        privacy.erase(s, case_id, get_settings())
    with session_scope() as s:
        assert s.get(Message, message_id).rendered is None
    after = fresh_delivery(message_id)
    texts = [m.title + m.body + m.sms_text for m in after.messages.values()] if after else []
    assert not any(CHILD_NAME in t or "red jacket" in t for t in texts), "personal data kept"
