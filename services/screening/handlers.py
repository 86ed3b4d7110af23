"""What screening does when another service's event arrives: clues from intake open or join cases
(or add a subject's risk), exit_review's outcomes change a subject's status. (What screening only
mirrors of intake's facts, projections.py writes.)"""
from __future__ import annotations

from contracts.base import decode_payload
from contracts.envelope import EventEnvelope
from contracts.screening import SubjectMonitoredAgain, SubjectRiskEliminated
from runtime.service import EventHandler, UnitOfWork
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


async def on_exit_outcomes(uow: UnitOfWork, envelopes: list[EventEnvelope]) -> None:
    """exit_review's outcomes: an approved exit eliminates the subject's risk; a rolled-back one
    (风险消除回退) has the subject monitored again."""
    outcomes = []
    for envelope in envelopes:
        decided = decode_payload(envelope)
        kind = SubjectRiskEliminated if envelope.event_type == "ExitApproved" else SubjectMonitoredAgain
        outcomes.append((kind(household_id=decided.household_id, exit_id=decided.exit_id), envelope))
    await commands.record_exit_outcomes(uow, outcomes)


HANDLERS: dict[str, EventHandler] = {
    "RiskClueRaised": on_risk_clues,
    "RiskCluesRaised": on_risk_clues,
    "ExitApproved": on_exit_outcomes,
    "ExitRolledBack": on_exit_outcomes,
}
