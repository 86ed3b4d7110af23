"""Pure decisions of notifier: who is told what."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from contracts.notifier import NotificationSent
from contracts.screening import VerificationCaseOpened
from contracts.vocabulary import StaffRole

REGION_LEVELS = (2, 4, 6, 9, 12)  # province, city, county, township, village


@dataclass(frozen=True)
class StaffMember:
    staff_id: str
    role: StaffRole
    region_code: str


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
