"""notifier's use cases, one async function per command, called by api/ and handlers.py alike."""
from __future__ import annotations

import dataclasses

from contracts.notifier import NotificationRead
from contracts.screening import VerificationCaseOpened
from runtime.eventstore import EventMetadata, NewEvent
from runtime.ids import new_id_str
from runtime.service import ServiceContext, UnitOfWork, run_command
from services.notifier import domain, store


async def register_staff(ctx: ServiceContext, meta: EventMetadata, command: domain.RegisterStaff) -> bool:
    """Put a member of staff in the directory; True if they were not in it before."""

    async def work(uow: UnitOfWork) -> bool:
        stream = await uow.events.load(f"staff-{command.staff_id}")
        await uow.append(stream.stream_id, stream.position, [
            NewEvent(domain.staff_registered(command), region_code=command.region_code)
        ])
        # The name, e-mail and webhook live here only (the event carries none of them).
        await store.save_staff(uow.session, {**dataclasses.asdict(command), "role": command.role.value,
                                             "updated_at": ctx.clock.now()})
        return stream.position == 0

    return await run_command(ctx, meta, work)


async def send_case_tasks(uow: UnitOfWork, case: VerificationCaseOpened) -> None:
    """A verification case was opened: a task in the inbox of each cadre of its village."""
    staff = await store.staff_of_region(uow.session, case.region_code)
    for sent in domain.tasks_for_case_opened(case, staff, new_id_str):
        await uow.append(f"notification-{sent.notification_id}", 0, [
            NewEvent(sent, household_id=case.household_id, region_code=case.region_code)
        ])


async def mark_read(ctx: ServiceContext, meta: EventMetadata, staff_id: str, notification_id: str):
    """The notification, marked read (the first reading's time is kept: read again, nothing is
    recorded); None if it is not in this inbox."""

    async def work(uow: UnitOfWork):
        row = await store.notification_of(uow.session, staff_id, notification_id)
        if row is None or row.read_at is not None:
            return row
        stream = await uow.events.load(f"notification-{notification_id}")
        await uow.append(stream.stream_id, stream.position, [NewEvent(NotificationRead(
            notification_id=notification_id, staff_id=staff_id, read_at=ctx.clock.now()))])
        return await store.notification_of(uow.session, staff_id, notification_id)

    return await run_command(ctx, meta, work)
