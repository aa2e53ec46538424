import pytest

from alerts.users.roles import (
    ApprovalRefused,
    Approver,
    Rank,
    Role,
    TokenScope,
    check_approval,
    scope_allows,
)


def approver(user_id=2, role=Role.SUPERVISOR, rank=Rank.INSPECTOR, agency_id=10) -> Approver:
    return Approver(user_id=user_id, role=role, rank=rank, agency_id=agency_id)


def test_different_supervisor_of_same_agency_may_approve():
    assert (
        check_approval(
            approver(), submitted_by=1, case_agency_lineage=[10, 1], self_approval_min_rank=None
        )
        is False
    )


def test_supervisor_of_parent_agency_may_approve():
    assert not check_approval(
        approver(agency_id=1),
        submitted_by=3,
        case_agency_lineage=[10, 1],
        self_approval_min_rank=None,
    )


def test_supervisor_of_sibling_agency_is_refused():
    with pytest.raises(ApprovalRefused, match="parent agency"):
        check_approval(
            approver(agency_id=11),
            submitted_by=3,
            case_agency_lineage=[10, 1],
            self_approval_min_rank=None,
        )


@pytest.mark.parametrize("role", [Role.OFFICER, Role.OPERATOR, Role.ADMIN])
def test_only_supervisors_approve(role):
    with pytest.raises(ApprovalRefused, match="cannot approve"):
        check_approval(
            approver(role=role),
            submitted_by=1,
            case_agency_lineage=[10],
            self_approval_min_rank=None,
        )


def test_own_case_is_refused_without_agency_setting():
    with pytest.raises(ApprovalRefused, match="two-person rule"):
        check_approval(
            approver(user_id=1),
            submitted_by=1,
            case_agency_lineage=[10],
            self_approval_min_rank=None,
        )


def test_own_case_is_refused_below_the_configured_rank():
    with pytest.raises(ApprovalRefused, match="superintendent"):
        check_approval(
            approver(user_id=1, rank=Rank.INSPECTOR),
            submitted_by=1,
            case_agency_lineage=[10],
            self_approval_min_rank=Rank.SUPERINTENDENT,
        )


def test_own_case_at_the_configured_rank_is_a_self_approval():
    assert (
        check_approval(
            approver(user_id=1, rank=Rank.SUPERINTENDENT),
            submitted_by=1,
            case_agency_lineage=[10],
            self_approval_min_rank=Rank.SUPERINTENDENT,
        )
        is True
    )


@pytest.mark.parametrize("method", ["GET", "HEAD", "get"])
def test_a_read_token_may_make_safe_requests(method):
    assert scope_allows(TokenScope.READ, method)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"])
def test_a_read_token_may_not_make_any_other_request(method):
    assert not scope_allows(TokenScope.READ, method)


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_a_full_token_may_make_any_request(method):
    assert scope_allows(TokenScope.FULL, method)
