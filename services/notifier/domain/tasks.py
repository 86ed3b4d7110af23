"""Pure decisions of notifier: who is told what."""
from __future__ import annotations

from typing import Callable

from contracts.notifier import NotificationSent
from contracts.screening import VerificationCaseOpened
from contracts.vocabulary import StaffRole
from services.notifier.domain.staff import StaffMember


def tasks_for_case_opened(
    case: VerificationCaseOpened, staff: list[StaffMember], new_id: Callable[[], str]
) -> list[NotificationSent]:
    """A verification task goes to every village cadre (村两委) of the household's village."""
    return [
        NotificationSent(
            notification_id=new_id(), staff_id=member.staff_id, kind="verify_household",
            subject=f"Verify household {case.household_id} by {case.due_date.isoformat()} (case {case.case_id})",
            reference=f"case:{case.case_id}",
        )
        for member in staff
        if member.role == StaffRole.VILLAGE_CADRE and member.region_code == case.region_code
    ]
