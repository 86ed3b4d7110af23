"""What assistance does when another service's event arrives: a subject identified opens its plan
with a helper, a new risk reopens the check, a protected mark is checked against the plan, a removal
or an approved exit closes it, a rolled-back exit reopens it. (What it only mirrors of other
services' facts, projections.py writes.)

A run of these events is taken together (commands.PlansAtHand): the plans it touches read at once,
decided in the run's order, appended in one statement."""
from __future__ import annotations

from contracts.base import decode_payload
from contracts.envelope import EventEnvelope
from runtime.service import EventHandler, UnitOfWork
from services.assistance.commands import PlansAtHand


def _decide_one(plans: PlansAtHand, envelope: EventEnvelope, payload) -> None:
    event_type, household = envelope.event_type, payload.household_id
    if event_type == "SubjectIdentified":
        plans.open(household, envelope.region_code, payload.case_id, payload.category, payload.risk_types,
                   envelope.recorded_at.date(), cause=envelope)
    elif event_type == "SubjectRiskAdded":
        plans.add_risk(household, payload.clue_id, payload.risk_types, cause=envelope)
    elif event_type == "SubjectProtected":
        plans.check_again(household, cause=envelope)
    elif event_type == "SubjectRemoved":
        plans.close(household, "subject_removed", cause=envelope)
    elif event_type == "ExitApproved":
        plans.close(household, "exit_approved", cause=envelope)
    elif event_type == "ExitRolledBack":
        plans.reopen(household, cause=envelope)


async def on_events(uow: UnitOfWork, envelopes: list[EventEnvelope]) -> None:
    decided = [(envelope, decode_payload(envelope)) for envelope in envelopes]
    plans = await PlansAtHand.load(
        uow, [payload.household_id for _, payload in decided],
        helpers_for_regions={e.region_code for e in envelopes if e.event_type == "SubjectIdentified" and e.region_code})
    for envelope, payload in decided:
        _decide_one(plans, envelope, payload)
    await plans.save()


HANDLERS: dict[str, EventHandler] = {event_type: on_events for event_type in (
    "SubjectIdentified", "SubjectRiskAdded", "SubjectProtected", "SubjectRemoved", "ExitApproved", "ExitRolledBack")}
