"""Events published by notifier on `fangpin.notifier.events`."""
from __future__ import annotations

from datetime import datetime

from typing import Literal

from pydantic import BaseModel

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
    """A task or message put in a member of staff's inbox. `inbox_seq` is its place in that inbox
    (the live stream's event id), decided under a lock on the person's row so that a later number is
    never committed before an earlier one; `task_id` the task it tells of (none: a message only).
    Events recorded before issue 18 carry neither."""

    notification_id: str
    staff_id: str
    kind: str
    subject: str
    reference: str
    subject_en: str = ""
    task_id: str | None = None
    urgent: bool = False
    due_at: datetime | None = None
    inbox_seq: int | None = None


class NotificationRead(_NotifierEvent):
    """The member of staff opened a notification of their inbox (the first time only)."""

    notification_id: str
    staff_id: str
    read_at: datetime


class NotificationAcknowledged(_NotifierEvent):
    """The member of staff acknowledged a notification (已阅知/已受理): for a task, it stops its escalation."""

    notification_id: str
    staff_id: str
    acknowledged_at: datetime


class ScheduledStep(BaseModel):
    """One step of a task's chain, fixed when the task opens: a reminder to the task's own level,
    or an escalation to `level` (the role there that answers for it)."""

    action: Literal["remind", "escalate"]
    at: datetime
    level: str
    role: str


class TaskOpened(_NotifierEvent):
    """Routing gave an event a task: `role` at `level` of the household's region must act by
    `due_at`; `schedule` is when it is reminded and escalated (working days) unless acknowledged or
    completed before. `reference` names the work (case:…, exit:…): a later event of the same work
    that the routing table says closes it completes the task."""

    task_id: str
    rule: str
    kind: str
    reference: str
    subject: str
    subject_en: str
    urgent: bool
    region_code: str
    level: str
    role: str
    recipients: list[str]
    due_at: datetime | None
    schedule: list[ScheduledStep]
    source_event_id: str
    source_event_type: str


class TaskReminded(_NotifierEvent):
    task_id: str
    step: int  # the index of the schedule's step
    recipients: list[str]


class TaskEscalated(_NotifierEvent):
    """Not acknowledged in time: the task goes one level up (逐级督办)."""

    task_id: str
    step: int
    level: str
    role: str
    recipients: list[str]


class TaskAcknowledged(_NotifierEvent):
    task_id: str
    staff_id: str
    notification_id: str


class TaskCompleted(_NotifierEvent):
    """The work was done: the event `by_event_id` of the same reference closed it."""

    task_id: str
    by_event_type: str
    by_event_id: str


class DeliveryFailed(_NotifierEvent):
    """A delivery was given up (dead: its attempts ran out, or the receiver refused it for good, or the
    endpoint is gone, 410): it waits in the dead-letter list for an operator to resend it."""

    delivery_id: str
    notification_id: str | None = None
    channel: Literal["webhook", "email"]
    recipient: str  # staff:<id> or subscription:<id>
    attempts: int
    reason: Literal["attempts_exhausted", "refused", "gone"]
    detail: str
