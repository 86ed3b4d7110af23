"""notifier's pure decisions: who is told what, and what a registration tells the other services."""
from datetime import date

from contracts.screening import VerificationCaseOpened
from contracts.vocabulary import RiskType, StaffRole
from services.notifier.domain import RegisterStaff, StaffMember, staff_registered, tasks_for_case_opened


def test_a_verification_task_goes_to_the_cadres_of_that_village_only():
    opened = VerificationCaseOpened(case_id="case-1", household_id="H1", region_code="410721001001", clue_id="c1",
                                    risk_types=[RiskType.ILLNESS], step="verification_visit", due_date=date(2026, 12, 1))
    staff = [StaffMember("cadre-here", StaffRole.VILLAGE_CADRE, "410721001001"),
             StaffMember("cadre-next-door", StaffRole.VILLAGE_CADRE, "410721001002"),
             StaffMember("township", StaffRole.TOWNSHIP_OFFICER, "410721001")]
    ids = iter(["n1", "n2"])
    [task] = tasks_for_case_opened(opened, staff, lambda: next(ids))
    assert (task.staff_id, task.notification_id, task.reference) == ("cadre-here", "n1", "case:case-1")


def test_a_registration_tells_the_other_services_the_pseudonymous_id_role_and_region_only():
    command = RegisterStaff(staff_id="cadre-7", name="王芳", role=StaffRole.VILLAGE_CADRE, region_code="410721001001",
                            email="wf@example.org", webhook_url="https://hooks.example.org/wf")
    event = staff_registered(command)
    assert event.model_dump(mode="json") == {"staff_id": "cadre-7", "role": "village_cadre", "region_code": "410721001001"}
