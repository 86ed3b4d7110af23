"""notifier's use cases, one async function per command, called by api/, handlers.py and jobs.py alike.

Every notification is decided here, in the transaction of what caused it: its NotificationSent, its
place in the person's inbox and its rows in the delivery ledger commit together. Nothing else writes
the ledger's queue, so a rebuild or a replay of events (which only re-applies projections) delivers
nothing.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import date, datetime
from zoneinfo import ZoneInfo

import orjson

from contracts.base import decode_payload
from contracts.envelope import EventEnvelope
from contracts.notifier import (NotificationAcknowledged, NotificationRead, NotificationSent, TaskAcknowledged,
                                TaskCompleted, TaskEscalated, TaskOpened, TaskReminded)
from runtime.eventstore import EventMetadata, NewEvent, StreamHead
from runtime.ids import new_id_str
from runtime.service import ServiceContext, UnitOfWork, caused_by, run_command
from services.notifier import domain, store
from services.notifier.domain.routing import LEVEL_DIGITS, ROLE_AT_LEVEL, Route
from services.notifier.domain.tasks import levels_above
from services.notifier.reference import routing_table, working_calendar


async def register_staff(ctx: ServiceContext, meta: EventMetadata, command: domain.RegisterStaff) -> tuple[bool, str | None]:
    """Put a member of staff in the directory: (True if they were not in it before, the secret that
    signs their webhooks if one was made now: it is told once, to whoever registers them)."""
    from services.notifier.channels.webhook import new_webhook_secret

    async def work(uow: UnitOfWork) -> tuple[bool, str | None]:
        stream = await uow.events.load(f"staff-{command.staff_id}")
        await uow.append(stream.stream_id, stream.position, [
            NewEvent(domain.staff_registered(command), region_code=command.region_code)
        ])
        # The name, e-mail and webhook live here only (the event carries none of them).
        row = {**dataclasses.asdict(command), "role": command.role.value, "updated_at": ctx.clock.now()}
        new_secret = None
        if command.webhook_url and not await store.webhook_secret_of(uow.session, command.staff_id):
            row["webhook_secret"] = new_secret = new_webhook_secret()
        await store.save_staff(uow.session, row)
        return stream.position == 0, new_secret

    return await run_command(ctx, meta, work)


@dataclasses.dataclass(frozen=True)
class Message:
    """What one notification says, to whoever it goes to."""

    kind: str
    subject: str
    subject_en: str
    reference: str
    urgent: bool
    due_at: datetime | None = None
    task_id: str | None = None


@dataclasses.dataclass(frozen=True)
class Outgoing:
    """One notification to be sent: to whom, what, and about what (the event that caused it, if any)."""

    staff_id: str
    message: Message
    event_type: str
    household_id: str | None
    region_code: str | None
    cause: EventEnvelope | None = None


def timezone(ctx: ServiceContext) -> ZoneInfo:
    return ZoneInfo(ctx.settings.notifier_timezone)


def _new_event(payload, household_id: str | None, region_code: str | None, cause: EventEnvelope | None) -> NewEvent:
    return NewEvent(payload, household_id=household_id, region_code=region_code, **(caused_by(cause) if cause else {}))


async def send_notifications(uow: UnitOfWork, outgoing: list[Outgoing],
                             together_with: list[tuple[StreamHead, list[NewEvent]]] = ()) -> list[NotificationSent]:
    """The notifications, set-based: numbered in each person's inbox (one statement, under a lock on
    their rows), appended with `together_with` in one statement, queued in the ledger for the other
    channels in one, and the live streams of those people woken at the commit."""
    numbered = await store.number_in_inboxes(uow.session, Counter(o.staff_id for o in outgoing)) if outgoing else {}
    next_seq = {staff_id: last - count + 1 for staff_id, (last, count, _) in numbered.items()}
    sent, items = [], list(together_with)
    for o in outgoing:
        if o.staff_id not in numbered:
            continue  # not in the directory (any more)
        m = o.message
        n = NotificationSent(notification_id=new_id_str(), staff_id=o.staff_id, kind=m.kind, subject=m.subject,
                             subject_en=m.subject_en, reference=m.reference, task_id=m.task_id, urgent=m.urgent,
                             due_at=m.due_at, inbox_seq=next_seq[o.staff_id])
        next_seq[o.staff_id] += 1
        sent.append((n, o))
        items.append((StreamHead(f"notification-{n.notification_id}"),
                      [_new_event(n, o.household_id, o.region_code, o.cause)]))
    if items:
        await uow.append_many(items)
    people = {staff_id: person for staff_id, (_, _, person) in numbered.items()}
    await store.queue_deliveries(uow.session, _deliveries_of(uow.ctx, sent, people))
    await store.signal_inboxes(uow.session, [n.staff_id for n, _ in sent])
    return [n for n, _ in sent]


def _deliveries_of(ctx: ServiceContext, sent: list[tuple[NotificationSent, Outgoing]], people: dict) -> list[dict]:
    """The ledger's rows of new notifications: the inbox's, delivered; a webhook and an e-mail queued
    where the person wants them and has the address (e-mail at the time quiet hours and the digest allow)."""
    from services.notifier.channels.webhook import webhook_body
    from services.notifier.domain.delivery_times import deliver_at

    now = ctx.clock.now()
    rows = []
    for n, o in sent:
        person = people[n.staff_id]
        base = {"notification_id": n.notification_id, "recipient": f"staff:{n.staff_id}", "event_type": o.event_type,
                "urgent": n.urgent, "created_at": now}
        rows.append({**base, "delivery_id": new_id_str(), "channel": "inbox", "address": None, "body": None,
                     "status": "delivered", "next_attempt_at": None, "delivered_at": now})
        if "webhook" in person.channels and person.webhook_url:
            data = {**n.model_dump(mode="json"), "household_id": o.household_id, "region_code": o.region_code}
            rows.append({**base, "delivery_id": new_id_str(), "channel": "webhook", "address": person.webhook_url,
                         "body": webhook_body("notification.sent", now, data), "status": "queued",
                         "next_attempt_at": now, "delivered_at": None})
        if "email" in person.channels and person.email and ctx.settings.smtp_host:
            when = deliver_at(now, urgent=n.urgent, digest=person.digest, quiet=person.quiet_hours,
                              digest_time=ctx.settings.digest_time, tz=timezone(ctx))
            body = orjson.dumps({"subject": n.subject, "subject_en": n.subject_en, "reference": n.reference,
                                 "due_at": n.due_at.isoformat() if n.due_at else None}).decode()
            rows.append({**base, "delivery_id": new_id_str(), "channel": "email", "address": person.email,
                         "body": body, "status": "queued", "next_attempt_at": when, "delivered_at": None})
    return rows


@dataclasses.dataclass
class _Routed:
    envelope: EventEnvelope
    payload: dict
    fields: dict
    region: str | None


async def route_events(uow: UnitOfWork, envelopes: list[EventEnvelope]) -> None:
    """Events other services published, through the routing table, set-based (a handful of
    statements however many): the tasks each completes, the tasks and messages it makes, and the
    subscriptions it goes to. The events are taken in their order: a task an earlier one opened, a
    later one of the same run may complete."""
    ctx = uow.ctx
    table = routing_table(ctx.settings.notifier_routing)
    routed = []
    for envelope in envelopes:
        if envelope.event_type in table.event_types:
            payload = decode_payload(envelope).model_dump(mode="json")
            fields = {"household_id": envelope.household_id, "region_code": envelope.region_code, **payload}
            routed.append(_Routed(envelope, payload, fields, payload.get("region_code") or envelope.region_code))
    if not routed:
        return
    session = uow.session
    closing = {r.envelope.event_id: table.closes(r.envelope.event_type, r.fields) for r in routed}
    open_tasks = await store.open_tasks_of(session, sorted({ref for refs in closing.values() for ref in refs}))
    regions = {r.region[:digits] for r in routed if r.region for digits in LEVEL_DIGITS.values() if digits <= len(r.region)}
    directory = await store.staff_in_regions(session, regions)
    helpers = await store.helpers_of(session, sorted({r.envelope.household_id for r in routed if r.envelope.household_id}))
    heads = await uow.events.heads(f"task-{t}" for ts in open_tasks.values() for t in ts)
    calendar, tz, now = working_calendar(ctx.settings.working_calendar), timezone(ctx), ctx.clock.now()

    streams: dict[str, list[NewEvent]] = {}  # the tasks' events, new streams and old
    opened_here: dict[str, list[str]] = {}  # reference -> tasks this run opened
    outgoing: list[Outgoing] = []
    for r in routed:
        envelope, household = r.envelope, r.envelope.household_id
        for reference in closing[envelope.event_id]:
            for task_id in open_tasks.pop(reference, []) + opened_here.pop(reference, []):
                streams.setdefault(f"task-{task_id}", []).append(_new_event(TaskCompleted(
                    task_id=task_id, by_event_type=envelope.event_type, by_event_id=str(envelope.event_id)),
                    household, r.region, envelope))
        for route in table.routes(envelope.event_type, r.fields, r.region):
            rule = route.rule
            if rule.level == "department":
                continue  # the subscriptions below
            level, role, recipients = _recipients(route, directory, helpers.get(household))
            due_at = None
            if rule.due_working_days is not None:
                due_at = calendar.add_working_days(envelope.occurred_at, rule.due_working_days, tz)
            elif r.payload.get("due_date"):
                due_at = domain.end_of_day(date.fromisoformat(r.payload["due_date"]), tz)
            message = Message(rule.kind, route.subject_zh, route.subject_en, route.reference, rule.urgent, due_at)
            if rule.task:
                task_id = new_id_str()
                schedule = domain.plan_schedule(due_at=due_at, level=level, role=role, now=now, calendar=calendar,
                                                tz=tz, remind_days_before=ctx.settings.task_remind_working_days,
                                                escalate_after_days=ctx.settings.task_escalate_working_days)
                streams[f"task-{task_id}"] = [_new_event(TaskOpened(
                    task_id=task_id, rule=rule.name, kind=rule.kind, reference=route.reference,
                    subject=route.subject_zh, subject_en=route.subject_en, urgent=rule.urgent, region_code=r.region,
                    level=level, role=role, recipients=recipients, due_at=due_at, schedule=schedule,
                    source_event_id=str(envelope.event_id), source_event_type=envelope.event_type),
                    household, r.region, envelope)]
                opened_here.setdefault(route.reference, []).append(task_id)
                message = dataclasses.replace(message, task_id=task_id)
            outgoing += [Outgoing(staff_id, message, envelope.event_type, household, r.region, envelope)
                         for staff_id in recipients]
    tasks = [(heads.get(stream) or StreamHead(stream), new) for stream, new in streams.items()]
    await send_notifications(uow, outgoing, together_with=tasks)
    await offer_to_subscribers(uow, table, routed)


def _recipients(route: Route, directory: dict[tuple[str, str], list[str]], helper: str | None) -> tuple[str, str, list[str]]:
    """Who a route tells: (level, role, staff ids). Nobody at a task's level: the level above answers."""
    rule = route.rule
    if rule.level == "helper":
        level, role, found = "helper", rule.role, [helper] if helper else []
    else:
        level, role = rule.level, rule.role
        found = directory.get((role, route.region_at(level)), [])
    if not found and rule.task:
        for upper in levels_above(level):
            found = directory.get((ROLE_AT_LEVEL[upper], route.region_at(upper)), [])
            if found:
                return upper, ROLE_AT_LEVEL[upper], found
    return level, role, found


async def offer_to_subscribers(uow: UnitOfWork, table, routed: list[_Routed]) -> None:
    """Each event, signed, to each active subscription that asked for its type in its region (a
    department system's subscription: its own department's events only, of the types routed to
    `department_system`)."""
    from services.notifier.channels.webhook import webhook_body

    subscriptions = await store.subscriptions_to(uow.session, sorted({r.envelope.event_type for r in routed}))
    if not subscriptions:
        return
    now, rows = uow.ctx.clock.now(), []
    for r in routed:
        envelope = r.envelope
        department = r.payload.get("department") if envelope.event_type in table.department_event_types else None
        takers = [s for s in subscriptions if envelope.event_type in s.event_types
                  and (not envelope.region_code or envelope.region_code.startswith(s.region_prefix))
                  and (s.department is None or s.department == department)]
        if not takers:
            continue
        data = {"event_id": str(envelope.event_id), "household_id": envelope.household_id,
                "region_code": envelope.region_code, "occurred_at": envelope.occurred_at.isoformat(), **r.payload}
        body = webhook_body(envelope.event_type, now, data)
        rows += [{"delivery_id": new_id_str(), "notification_id": None, "channel": "webhook",
                  "recipient": f"subscription:{s.subscription_id}", "address": s.url, "event_type": envelope.event_type,
                  "body": body, "urgent": False, "status": "queued", "next_attempt_at": now, "created_at": now,
                  "delivered_at": None} for s in takers]
    await store.queue_deliveries(uow.session, rows)


async def take_task_steps(uow: UnitOfWork, task_id: str) -> int:
    """The reminders and escalations of one task whose time has come, each once (the stream position
    makes two schedulers that race take each step once between them). Returns how many were taken."""
    stream = await uow.events.load(f"task-{task_id}")
    events = [decode_payload(e) for e in stream.events]
    state = domain.fold(events)
    if state is None:
        return 0
    opened = events[0]
    household_id = stream.events[0].household_id
    new, outgoing = [], []
    for index, step in domain.steps_due(state, uow.ctx.clock.now()):
        if step.action == "remind":
            recipients = state.first_recipients
            new.append(TaskReminded(task_id=task_id, step=index, recipients=recipients))
            message = Message("reminder", f"提醒：{opened.subject}", f"Reminder: {opened.subject_en}", opened.reference,
                              opened.urgent, opened.due_at, task_id)
        else:
            region = state.region_code[:LEVEL_DIGITS[step.level]]
            recipients = (await store.staff_in_regions(uow.session, {region})).get((step.role, region), [])
            new.append(TaskEscalated(task_id=task_id, step=index, level=step.level, role=step.role, recipients=recipients))
            message = Message("escalation", f"督办（未按时受理）：{opened.subject}",
                              f"Escalated (not acknowledged in time): {opened.subject_en}", opened.reference,
                              True, opened.due_at, task_id)
        outgoing += [Outgoing(staff_id, message, new[-1].event_type, household_id, state.region_code)
                     for staff_id in recipients]
    if new:
        await send_notifications(uow, outgoing, together_with=[(
            StreamHead(stream.stream_id, stream.position, stream.last_hash),
            [NewEvent(e, household_id=household_id, region_code=state.region_code) for e in new])])
    return len(new)


async def mark_read(ctx: ServiceContext, meta: EventMetadata, staff_id: str, notification_id: str):
    """The notification, marked read (the first reading's time is kept: read again, nothing is
    recorded); None if it is not in this inbox."""
    return await _mark(ctx, meta, staff_id, notification_id, "read", lambda now: NotificationRead(
        notification_id=notification_id, staff_id=staff_id, read_at=now))


async def acknowledge(ctx: ServiceContext, meta: EventMetadata, staff_id: str, notification_id: str):
    """已受理: the notification acknowledged, and its task's chain stopped (if it still runs); acknowledged
    again, nothing is recorded. None if it is not in this inbox."""

    async def stop_the_chain(uow: UnitOfWork, row) -> None:
        if not row.task_id:
            return
        task = await uow.events.load(f"task-{row.task_id}")
        state = domain.fold([decode_payload(e) for e in task.events])
        if state and not state.closed:
            await uow.append(task.stream_id, task.position, [NewEvent(TaskAcknowledged(
                task_id=row.task_id, staff_id=staff_id, notification_id=notification_id),
                household_id=task.events[0].household_id, region_code=state.region_code)])

    return await _mark(ctx, meta, staff_id, notification_id, "acknowledged", lambda now: NotificationAcknowledged(
        notification_id=notification_id, staff_id=staff_id, acknowledged_at=now), then=stop_the_chain)


async def _mark(ctx: ServiceContext, meta: EventMetadata, staff_id: str, notification_id: str, status: str,
                event, then=None):
    """A notification of `staff_id`'s inbox marked `status` (read, acknowledged) once: its event, what
    follows from it (`then`), its inbox row in the ledger; the row as it then is (None: not in this inbox)."""

    async def work(uow: UnitOfWork):
        row = await store.notification_of(uow.session, staff_id, notification_id)
        if row is None or getattr(row, f"{status}_at") is not None:
            return row
        now = ctx.clock.now()
        stream = await uow.events.load(f"notification-{notification_id}")
        await uow.append(stream.stream_id, stream.position, [NewEvent(event(now))])
        if then:
            await then(uow, row)
        await store.mark_inbox_delivery(uow.session, notification_id, status, now)
        return await store.notification_of(uow.session, staff_id, notification_id)

    return await run_command(ctx, meta, work)
