"""The delivery ledger API: what went out for a case, on which channel, with which outcome."""

from __future__ import annotations

from fastapi import APIRouter

from alerts.cases import models as case_models
from alerts.cases import service as cases
from alerts.deps import CurrentUser, SessionDep
from alerts.users.roles import Role
from channels import service
from channels.schemas import CaseDeliveries

router = APIRouter(prefix="/api/v1/cases", tags=["deliveries"])
STAFF = frozenset({Role.OPERATOR, Role.ADMIN})


@router.get("/{case_id}/deliveries", response_model=CaseDeliveries)
def case_deliveries(case_id: str, session: SessionDep, user: CurrentUser) -> CaseDeliveries:
    """Delivery counts per message, channel and partner, and recent webhook attempts."""
    if Role(user.role) not in STAFF:
        cases.get(session, case_id, user)  # police: only cases of their agency (404 otherwise)
    elif session.get(case_models.Case, case_id) is None:
        raise cases.CaseNotFound(f"case {case_id} not found")
    return service.case_deliveries(session, case_id)
