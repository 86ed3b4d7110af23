"""The only code that writes notifier's read tables, from notifier's own events (runtime.projections).

`notifications` (each member of staff's inbox) is projected from NotificationSent, NotificationRead
and NotificationAcknowledged; `tasks` (each task's state and the time of its next step) from the
Task* events. `household_helpers` mirrors assistance's HelperAssigned/HelperReassigned: who a plan
gap goes to. `staff`, `preferences`, `subscriptions` and `deliveries` are primary records (store.py):
kept, never rebuilt, and so a rebuild delivers nothing.
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.base import decode_payload
from contracts.envelope import EventEnvelope
from runtime.bulk import copy_rows, update_rows, upsert_rows
from runtime.projections import Projections
from services.notifier.store import (deliveries, household_helpers, notifications, preferences, staff,
                                     subscriptions, tasks)


async def notifications_sent(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    rows = []
    for envelope in envelopes:
        sent = decode_payload(envelope)
        rows.append({"notification_id": sent.notification_id, "staff_id": sent.staff_id, "kind": sent.kind,
                     "subject": sent.subject, "reference": sent.reference, "created_at": envelope.recorded_at,
                     "subject_en": sent.subject_en, "task_id": sent.task_id, "urgent": sent.urgent,
                     "due_at": sent.due_at, "inbox_seq": sent.inbox_seq})
    await copy_rows(session, notifications, rows)


async def notifications_read(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    for envelope in envelopes:
        read = decode_payload(envelope)
        await session.execute(sa.update(notifications).where(notifications.c.notification_id == read.notification_id)
                              .values(read_at=read.read_at))


async def notifications_acknowledged(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    for envelope in envelopes:
        ack = decode_payload(envelope)
        await session.execute(sa.update(notifications).where(notifications.c.notification_id == ack.notification_id)
                              .values(acknowledged_at=ack.acknowledged_at,
                                      read_at=sa.func.coalesce(notifications.c.read_at, ack.acknowledged_at)))


async def tasks_opened(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    rows = []
    for envelope in envelopes:
        task = decode_payload(envelope)
        schedule_at = [step.at for step in task.schedule]
        rows.append({"task_id": task.task_id, "kind": task.kind, "reference": task.reference,
                     "region_code": task.region_code, "level": task.level, "role": task.role, "due_at": task.due_at,
                     "state": "open", "escalated_to": None, "schedule_at": schedule_at,
                     "next_action_at": schedule_at[0] if schedule_at else None, "opened_at": envelope.occurred_at,
                     "closed_at": None})
    await copy_rows(session, tasks, rows)


async def tasks_stepped(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    """A reminder or an escalation: the next step's time is the schedule's one after it (1-based arrays)."""
    for envelope in envelopes:
        step = decode_payload(envelope)
        values = {"next_action_at": tasks.c.schedule_at[step.step + 2]}
        if envelope.event_type == "TaskEscalated":
            values["escalated_to"] = step.level
        await session.execute(sa.update(tasks).where(tasks.c.task_id == step.task_id).values(**values))


async def tasks_closed(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    """Acknowledged or completed: one statement for a run (a task closes once: its stream says so)."""
    await update_rows(session, tasks, [
        {"task_id": decode_payload(e).task_id, "state": "acknowledged" if e.event_type == "TaskAcknowledged" else "completed",
         "next_action_at": None, "closed_at": e.occurred_at} for e in envelopes], key=["task_id"])


async def helper_of_household(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    latest = {}
    for envelope in envelopes:
        event = decode_payload(envelope)
        latest[event.household_id] = event.helper_id if envelope.event_type == "HelperAssigned" else event.to_helper_id
    await upsert_rows(session, household_helpers, [{"household_id": h, "helper_id": s} for h, s in latest.items()],
                      key=["household_id"])


PROJECTIONS = Projections(
    tables=(notifications, tasks),
    appliers={"NotificationSent": notifications_sent, "NotificationRead": notifications_read,
              "NotificationAcknowledged": notifications_acknowledged, "TaskOpened": tasks_opened,
              "TaskReminded": tasks_stepped, "TaskEscalated": tasks_stepped,
              "TaskAcknowledged": tasks_closed, "TaskCompleted": tasks_closed},
    mirrored_tables=(household_helpers,),
    mirrors={"HelperAssigned": helper_of_household, "HelperReassigned": helper_of_household},
    primary_records=(staff, preferences, subscriptions, deliveries),
)
