"""Tip triage rules and the hashcash proof, pure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alerts.tips import pow as proof
from alerts.tips import triage
from alerts.tips.triage import TipState

NOW = datetime(2026, 12, 6, tzinfo=UTC)
SECRET = "s" * 40


def move(current: TipState, target: TipState, reason: str | None = None, promoted=False):
    return triage.triage(1, current, target, actor_id=7, at=NOW, reason=reason, promoted=promoted)


def test_a_new_tip_can_be_seen_made_credible_or_dismissed_with_a_reason():
    assert move(TipState.NEW, TipState.SEEN).to_state is TipState.SEEN
    assert move(TipState.SEEN, TipState.CREDIBLE).to_state is TipState.CREDIBLE
    event = move(TipState.CREDIBLE, TipState.DISMISSED, "  a prank, caller admitted  ")
    assert event.reason == "a prank, caller admitted" and event.from_state is TipState.CREDIBLE
    assert move(TipState.DISMISSED, TipState.SEEN).to_state is TipState.SEEN


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_dismissing_without_a_reason_is_refused_naming_the_reason(reason):
    with pytest.raises(triage.TriageRefused) as refused:
        move(TipState.NEW, TipState.DISMISSED, reason)
    assert refused.value.field == "reason"


def test_illegal_moves_and_promoted_tips_are_refused_naming_the_state():
    with pytest.raises(triage.TriageRefused) as refused:
        move(TipState.DISMISSED, TipState.CREDIBLE)
    assert refused.value.field == "state"
    with pytest.raises(triage.TriageRefused):
        move(TipState.SEEN, TipState.NEW)
    with pytest.raises(triage.TriageRefused, match="promoted"):
        move(TipState.CREDIBLE, TipState.SEEN, promoted=True)


def test_only_a_credible_located_unpromoted_tip_is_promotable():
    assert triage.promotable(TipState.CREDIBLE, True, False) is None
    assert "credible" in triage.promotable(TipState.SEEN, True, False)
    assert "location" in triage.promotable(TipState.CREDIBLE, False, False)
    assert "already" in triage.promotable(TipState.CREDIBLE, True, True)


def test_a_solved_challenge_verifies_once_for_its_case_until_it_expires():
    issued = proof.issue(SECRET, "case-1", 10, now=1000.0, ttl_s=600)
    nonce = str(proof.solve(issued.text, 10))
    assert proof.verify(SECRET, issued.text, nonce, "case-1", 10, now=1100.0)
    with pytest.raises(proof.ProofRefused, match="another alert"):
        proof.verify(SECRET, issued.text, nonce, "case-2", 10, now=1100.0)
    with pytest.raises(proof.ProofRefused, match="expired"):
        proof.verify(SECRET, issued.text, nonce, "case-1", 10, now=1601.0)
    with pytest.raises(proof.ProofRefused, match="not ours"):
        proof.verify("other" * 10, issued.text, nonce, "case-1", 10, now=1100.0)
    with pytest.raises(proof.ProofRefused, match="too easy"):
        proof.verify(SECRET, issued.text, nonce, "case-1", 12, now=1100.0)


def test_a_wrong_or_missing_nonce_is_refused():
    issued = proof.issue(SECRET, "case-1", 16, now=1000.0, ttl_s=600)
    nonce = proof.solve(issued.text, 16)
    wrong = next(
        n
        for n in range(nonce + 1, nonce + 10_000)
        if proof.leading_zero_bits(
            __import__("hashlib").sha256(f"{issued.text}:{n}".encode()).digest()
        )
        < 16
    )
    with pytest.raises(proof.ProofRefused, match="wrong"):
        proof.verify(SECRET, issued.text, str(wrong), "case-1", 16, now=1001.0)
    with pytest.raises(proof.ProofRefused, match="missing"):
        proof.verify(SECRET, issued.text, "", "case-1", 16, now=1001.0)


def test_leading_zero_bits_counts_bits_not_bytes():
    assert proof.leading_zero_bits(bytes([0, 0, 0x10, 0xFF])) == 19
    assert proof.leading_zero_bits(bytes([0x80])) == 0
    assert proof.leading_zero_bits(bytes(4)) == 32
