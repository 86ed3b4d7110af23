"""Events screening consumes."""
from __future__ import annotations

import sqlalchemy as sa
from runtime.ids import new_id_str

from contracts.base import decode_payload
from contracts.envelope import EventEnvelope
from contracts.screening import VerificationCaseOpened
from runtime.eventstore import NewEvent
from runtime.service import EventHandler, UnitOfWork
from services.screening import domain, store


async def on_risk_clue_raised(uow: UnitOfWork, envelope: EventEnvelope) -> None:
    clue = decode_payload(envelope)
    open_case = await store.open_case_of(uow.session, clue.household_id)
    now = uow.ctx.clock.now()
    new = domain.take_clue(open_case, clue, envelope.region_code, new_id_str(), now.date(),
                           uow.ctx.settings.verification_due_days)
    for event in new:
        stream = f"case-{event.case_id}"
        position = 0 if isinstance(event, VerificationCaseOpened) else (await uow.events.load(stream)).position
        await uow.append(stream, position, [NewEvent(event, household_id=clue.household_id, region_code=envelope.region_code)])
        if isinstance(event, VerificationCaseOpened):
            await uow.session.execute(store.cases.insert().values(
                case_id=event.case_id, household_id=event.household_id, region_code=event.region_code, status="open",
                step=event.step, due_date=event.due_date, risk_types=[r.value for r in event.risk_types],
                clue_ids=[event.clue_id], opened_at=now, updated_at=now,
            ))
        else:
            await uow.session.execute(
                sa.update(store.cases).where(store.cases.c.case_id == event.case_id).values(
                    clue_ids=[*open_case.clue_ids, event.clue_id],
                    risk_types=sorted(set(open_case.risk_types) | {r.value for r in event.risk_types}),
                    updated_at=now,
                )
            )


HANDLERS: dict[str, EventHandler] = {"RiskClueRaised": on_risk_clue_raised}
