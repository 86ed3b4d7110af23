"""What screening does when another service's event arrives: clues from intake open or join cases
(or add a subject's risk), exit_review's outcomes change a subject's status. (What screening only
mirrors of intake's facts, projections.py writes.)"""
from __future__ import annotations

from contracts.base import decode_payload
from contracts.envelope import EventEnvelope
from contracts.screening import SubjectMonitoredAgain, SubjectRiskEliminated
from runtime.service import EventHandler, UnitOfWork, one_by_one
from services.screening import commands


async def on_risk_clues(uow: UnitOfWork, envelopes: list[EventEnvelope]) -> None:
    """A run of clues, single (RiskClueRaised) or batched (RiskCluesRaised), taken together."""
    clues = []
    for envelope in envelopes:
        payload = decode_payload(envelope)
        if envelope.event_type == "RiskCluesRaised":
            clues += [(clue, clue.region_code, envelope) for clue in payload.clues]
        else:
            clues.append((payload, envelope.region_code, envelope))
    await commands.take_clues(uow, clues)


async def on_exit_approved(uow: UnitOfWork, envelope: EventEnvelope) -> None:
    exit_approved = decode_payload(envelope)
    await commands.record_exit_outcome(uow, SubjectRiskEliminated(household_id=exit_approved.household_id,
                                                                  exit_id=exit_approved.exit_id))


async def on_exit_rolled_back(uow: UnitOfWork, envelope: EventEnvelope) -> None:
    """风险消除回退: the subject is monitored again."""
    rolled_back = decode_payload(envelope)
    await commands.record_exit_outcome(uow, SubjectMonitoredAgain(household_id=rolled_back.household_id,
                                                                  exit_id=rolled_back.exit_id))


HANDLERS: dict[str, EventHandler] = {
    "RiskClueRaised": on_risk_clues,
    "RiskCluesRaised": on_risk_clues,
    "ExitApproved": one_by_one(on_exit_approved),
    "ExitRolledBack": one_by_one(on_exit_rolled_back),
}
