"""Roles, ranks, API token scopes and the two-person approval rule. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    OFFICER = "officer"
    SUPERVISOR = "supervisor"
    OPERATOR = "operator"
    ADMIN = "admin"


class Rank(StrEnum):
    """Police ranks in ascending seniority; self-approval may be granted from a rank up."""

    CONSTABLE = "constable"
    SERGEANT = "sergeant"
    INSPECTOR = "inspector"
    SUPERINTENDENT = "superintendent"
    COMMISSIONER = "commissioner"

    @property
    def level(self) -> int:
        return list(Rank).index(self)


class TokenScope(StrEnum):
    """What an API token may do: everything its user may, or only read."""

    FULL = "full"
    READ = "read"


class TokenOrigin(StrEnum):
    """How an API token was obtained (both ways prove the second factor where one is due)."""

    PASSWORD_TOTP = "password+totp"
    CONSOLE = "console"


class TokenState(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


# RFC 9110 safe methods that carry a bearer token; OPTIONS and TRACE are left out on purpose.
READ_METHODS = frozenset({"GET", "HEAD"})


def scope_allows(scope: TokenScope, method: str) -> bool:
    """Whether a token of this scope may make a request with this HTTP method."""
    return scope is TokenScope.FULL or method.upper() in READ_METHODS


CASE_AUTHORS = frozenset({Role.OFFICER, Role.SUPERVISOR})
APPROVERS = frozenset({Role.SUPERVISOR})


class ApprovalRefused(Exception):
    """The two-person rule or the agency hierarchy forbids this approval."""


@dataclass(frozen=True)
class Approver:
    user_id: int
    role: Role
    rank: Rank
    agency_id: int


def check_approval(
    approver: Approver,
    *,
    submitted_by: int | None,
    case_agency_lineage: Sequence[int],
    self_approval_min_rank: Rank | None,
) -> bool:
    """Allow or refuse an approval; returns True when it is an (audited) self-approval.

    case_agency_lineage is the case's agency followed by its ancestors: a supervisor of the same
    or of a parent agency may approve.
    """
    if approver.role not in APPROVERS:
        raise ApprovalRefused(f"role {approver.role.value} cannot approve cases")
    if approver.agency_id not in case_agency_lineage:
        raise ApprovalRefused("approver must belong to the case's agency or a parent agency")
    if approver.user_id != submitted_by:
        return False
    if self_approval_min_rank is None:
        raise ApprovalRefused(
            "two-person rule: a different supervisor must approve a case you submitted"
        )
    if approver.rank.level < self_approval_min_rank.level:
        raise ApprovalRefused(
            f"two-person rule: self-approval needs rank {self_approval_min_rank.value} or above"
        )
    return True
