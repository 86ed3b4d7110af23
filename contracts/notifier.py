"""Events published by notifier on `fangpin.notifier.events`."""
from __future__ import annotations

from contracts.base import EventPayload
from contracts.vocabulary import StaffRole


class _NotifierEvent(EventPayload):
    producer = "notifier"


class StaffRegistered(_NotifierEvent):
    staff_id: str
    name: str
    role: StaffRole
    region_code: str


class NotificationSent(_NotifierEvent):
    """A task or message put in a member of staff's inbox."""

    notification_id: str
    staff_id: str
    kind: str
    subject: str
    reference: str
