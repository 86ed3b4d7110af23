"""notifier's pure decisions: what a registration tells the other services (routing: test_routing.py)."""
from contracts.vocabulary import StaffRole
from services.notifier.domain import RegisterStaff, staff_registered


def test_a_registration_tells_the_other_services_the_pseudonymous_id_role_and_region_only():
    command = RegisterStaff(staff_id="cadre-7", name="王芳", role=StaffRole.VILLAGE_CADRE, region_code="410721001001",
                            email="wf@example.org", webhook_url="https://hooks.example.org/wf")
    event = staff_registered(command)
    assert event.model_dump(mode="json") == {"staff_id": "cadre-7", "role": "village_cadre", "region_code": "410721001001"}
