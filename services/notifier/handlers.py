"""Events notifier consumes."""
from __future__ import annotations

from runtime.ids import new_id_str

from contracts.base import decode_payload
from contracts.envelope import EventEnvelope
from runtime.eventstore import NewEvent
from runtime.service import EventHandler, UnitOfWork
from services.notifier import domain, store


async def on_verification_case_opened(uow: UnitOfWork, envelope: EventEnvelope) -> None:
    case = decode_payload(envelope)
    staff = await store.staff_of_region(uow.session, case.region_code)
    now = uow.ctx.clock.now()
    for sent in domain.tasks_for_case_opened(case, staff, lambda: new_id_str()):
        await uow.append(f"notification-{sent.notification_id}", 0, [
            NewEvent(sent, household_id=case.household_id, region_code=case.region_code)
        ])
        await uow.session.execute(store.notifications.insert().values(
            notification_id=sent.notification_id, staff_id=sent.staff_id, kind=sent.kind, subject=sent.subject,
            reference=sent.reference, created_at=now,
        ))


HANDLERS: dict[str, EventHandler] = {"VerificationCaseOpened": on_verification_case_opened}
