"""What assistance does when another service's event arrives: a subject identified opens its plan
with a helper, a new risk reopens the check, a protected mark is checked against the plan, a removal
or an approved exit closes it, a rolled-back exit reopens it. (What it only mirrors of other
services' facts, projections.py writes.)"""
from __future__ import annotations

from contracts.base import decode_payload
from contracts.envelope import EventEnvelope
from runtime.service import EventHandler, UnitOfWork, one_by_one
from services.assistance import commands


async def on_subject_identified(uow: UnitOfWork, envelope: EventEnvelope) -> None:
    identified = decode_payload(envelope)
    await commands.open_plan(uow, identified.household_id, envelope.region_code, identified.case_id,
                             identified.category, identified.risk_types, envelope.recorded_at.date())


async def on_subject_risk_added(uow: UnitOfWork, envelope: EventEnvelope) -> None:
    added = decode_payload(envelope)
    await commands.add_risk(uow, added.household_id, added.clue_id, added.risk_types)


async def on_subject_protected(uow: UnitOfWork, envelope: EventEnvelope) -> None:
    await commands.check_again(uow, envelope.household_id)


async def on_subject_removed(uow: UnitOfWork, envelope: EventEnvelope) -> None:
    await commands.close_plan(uow, envelope.household_id, "subject_removed")


async def on_exit_approved(uow: UnitOfWork, envelope: EventEnvelope) -> None:
    await commands.close_plan(uow, decode_payload(envelope).household_id, "exit_approved")


async def on_exit_rolled_back(uow: UnitOfWork, envelope: EventEnvelope) -> None:
    await commands.reopen_plan(uow, decode_payload(envelope).household_id)


# One by one: each is one household's change, rare next to the bulk flows (issue 19 leaves them so).
HANDLERS: dict[str, EventHandler] = {
    "SubjectIdentified": one_by_one(on_subject_identified),
    "SubjectRiskAdded": one_by_one(on_subject_risk_added),
    "SubjectProtected": one_by_one(on_subject_protected),
    "SubjectRemoved": one_by_one(on_subject_removed),
    "ExitApproved": one_by_one(on_exit_approved),
    "ExitRolledBack": one_by_one(on_exit_rolled_back),
}
