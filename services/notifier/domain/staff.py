"""The staff directory's decisions: what a registration tells the other services."""
from __future__ import annotations

from dataclasses import dataclass

from contracts.notifier import StaffRegistered
from contracts.vocabulary import StaffRole

REGION_LEVELS = (2, 4, 6, 9, 12)  # province, city, county, township, village


@dataclass(frozen=True)
class RegisterStaff:
    """Join the directory, or change one's entry (same `staff_id`)."""

    staff_id: str
    name: str
    role: StaffRole
    region_code: str
    email: str | None = None
    webhook_url: str | None = None


def staff_registered(command: RegisterStaff) -> StaffRegistered:
    """The event names the person by their pseudonymous id only: events reach every consumer and
    are kept for good, so the name, e-mail and webhook stay in notifier's own table."""
    return StaffRegistered(staff_id=command.staff_id, role=command.role, region_code=command.region_code)
