"""Pure decisions of notifier: the staff directory and who is told what."""
from services.notifier.domain.staff import REGION_LEVELS, RegisterStaff, StaffMember, staff_registered
from services.notifier.domain.tasks import tasks_for_case_opened

__all__ = ["REGION_LEVELS", "RegisterStaff", "StaffMember", "staff_registered", "tasks_for_case_opened"]
