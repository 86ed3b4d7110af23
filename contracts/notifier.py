"""Events published by notifier on `fangpin.notifier.events`."""
from __future__ import annotations

from datetime import datetime

from contracts.base import EventPayload, upcaster
from contracts.vocabulary import StaffRole


class _NotifierEvent(EventPayload):
    producer = "notifier"


class StaffRegistered(_NotifierEvent):
    """A member of staff joined or changed in the directory, named by their pseudonymous `staff_id`
    only: events go to every consumer and are kept for good, so the person's name, e-mail and
    webhook stay in notifier's `staff` table, their primary record. Version 1 carried the name."""

    schema_version = 2
    staff_id: str
    role: StaffRole
    region_code: str


@upcaster("StaffRegistered", from_version=1)
def _staff_registered_without_the_name(old: dict) -> dict:
    # Events stored as v1 keep the name (their hash covers the payload): readers never see it.
    return {key: value for key, value in old.items() if key != "name"}


class NotificationSent(_NotifierEvent):
    """A task or message put in a member of staff's inbox."""

    notification_id: str
    staff_id: str
    kind: str
    subject: str
    reference: str


class NotificationRead(_NotifierEvent):
    """The member of staff opened a notification of their inbox (the first time only)."""

    notification_id: str
    staff_id: str
    read_at: datetime
