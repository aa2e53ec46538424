from datetime import UTC, datetime

import pytest

from alerts.cases import lifecycle
from alerts.cases.lifecycle import Action, CaseState

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def go(state: CaseState, action: Action, reason: str | None = "because") -> lifecycle.CaseEvent:
    return lifecycle.transition(state, action, case_id="c1", actor_id=7, at=NOW, reason=reason)


@pytest.mark.parametrize(
    ("state", "action", "target", "event"),
    [
        (CaseState.DRAFT, Action.SUBMIT, CaseState.SUBMITTED, lifecycle.CaseSubmitted),
        (CaseState.SUBMITTED, Action.APPROVE, CaseState.ACTIVE, lifecycle.CaseApproved),
        (CaseState.SUBMITTED, Action.REJECT, CaseState.DRAFT, lifecycle.CaseRejected),
        (CaseState.ACTIVE, Action.RESOLVE, CaseState.RESOLVED, lifecycle.CaseResolved),
        (CaseState.ACTIVE, Action.CANCEL, CaseState.CANCELLED, lifecycle.CaseCancelled),
        (CaseState.DRAFT, Action.CANCEL, CaseState.CANCELLED, lifecycle.CaseCancelled),
        (CaseState.ACTIVE, Action.EXPIRE, CaseState.EXPIRED, lifecycle.CaseExpired),
    ],
)
def test_legal_transition_emits_past_tense_event(state, action, target, event):
    result = go(state, action)
    assert isinstance(result, event)
    assert (result.from_state, result.to_state) == (state, target)
    assert result.case_id == "c1" and result.actor_id == 7 and result.at == NOW


@pytest.mark.parametrize(
    ("state", "action"),
    [
        (CaseState.DRAFT, Action.APPROVE),
        (CaseState.ACTIVE, Action.SUBMIT),
        (CaseState.RESOLVED, Action.CANCEL),
        (CaseState.CANCELLED, Action.APPROVE),
        (CaseState.EXPIRED, Action.RESOLVE),
        (CaseState.SUBMITTED, Action.RESOLVE),
    ],
)
def test_illegal_transition_names_current_state(state, action):
    with pytest.raises(lifecycle.IllegalTransition) as err:
        go(state, action)
    assert f"that is {state.value}" in str(err.value)
    assert action.value in str(err.value)


def test_every_closed_state_allows_nothing():
    for state in lifecycle.CLOSED_STATES:
        for action in Action:
            with pytest.raises(lifecycle.IllegalTransition, match="closed"):
                go(state, action)


@pytest.mark.parametrize("action", [Action.REJECT, Action.CANCEL])
@pytest.mark.parametrize("reason", [None, "", "   "])
def test_reject_and_cancel_require_a_reason(action, reason):
    state = CaseState.SUBMITTED
    with pytest.raises(lifecycle.ReasonRequired):
        go(state, action, reason=reason)


def test_self_approval_is_carried_on_the_event():
    event = lifecycle.transition(
        CaseState.SUBMITTED, Action.APPROVE, case_id="c", actor_id=1, at=NOW, self_approved=True
    )
    assert isinstance(event, lifecycle.CaseApproved) and event.self_approved


def test_alert_expires_after_its_lifetime():
    approved = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    assert lifecycle.is_expired(approved, NOW, lifetime_hours=72)
    assert not lifecycle.is_expired(approved, NOW, lifetime_hours=73)
