"""What screening does when another service's event arrives: clues from intake open or join cases
(or add a subject's risk), exit_review's outcomes change a subject's status. (What screening only
mirrors of intake's facts, projections.py writes.)"""
from __future__ import annotations

from contracts.base import decode_payload
from contracts.envelope import EventEnvelope
from contracts.screening import SubjectMonitoredAgain, SubjectRiskEliminated
from runtime.service import EventHandler, UnitOfWork
from services.screening import commands


async def on_risk_clue_raised(uow: UnitOfWork, envelope: EventEnvelope) -> None:
    await commands.take_clues(uow, [(decode_payload(envelope), envelope.region_code)])


async def on_risk_clues_raised(uow: UnitOfWork, envelope: EventEnvelope) -> None:
    clues = decode_payload(envelope).clues
    await commands.take_clues(uow, [(clue, clue.region_code) for clue in clues])


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
    "RiskClueRaised": on_risk_clue_raised,
    "RiskCluesRaised": on_risk_clues_raised,
    "ExitApproved": on_exit_approved,
    "ExitRolledBack": on_exit_rolled_back,
}
