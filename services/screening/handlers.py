"""What screening does when another service's event arrives: clues from intake open or join cases
(or add a subject's risk), household facts keep who can work, exit_review's outcomes set a subject's status."""
from __future__ import annotations

from contracts.base import decode_payload
from contracts.envelope import EventEnvelope
from runtime.service import EventHandler, UnitOfWork
from services.screening import commands
from services.screening.domain import subjects


async def on_risk_clue_raised(uow: UnitOfWork, envelope: EventEnvelope) -> None:
    await commands.take_clues(uow, [(decode_payload(envelope), envelope.region_code)], envelope.occurred_at)


async def on_risk_clues_raised(uow: UnitOfWork, envelope: EventEnvelope) -> None:
    clues = decode_payload(envelope).clues
    await commands.take_clues(uow, [(clue, clue.region_code) for clue in clues], envelope.occurred_at)


async def on_household_facts(uow: UnitOfWork, envelope: EventEnvelope) -> None:
    await commands.record_household_labour(uow, decode_payload(envelope))


async def on_exit_approved(uow: UnitOfWork, envelope: EventEnvelope) -> None:
    await commands.set_subject_status(uow, decode_payload(envelope).household_id, subjects.RISK_ELIMINATED)


async def on_exit_rolled_back(uow: UnitOfWork, envelope: EventEnvelope) -> None:
    """风险消除回退: the subject is monitored again."""
    await commands.set_subject_status(uow, decode_payload(envelope).household_id, subjects.MONITORED)


HANDLERS: dict[str, EventHandler] = {
    "RiskClueRaised": on_risk_clue_raised,
    "RiskCluesRaised": on_risk_clues_raised,
    "HouseholdRegistered": on_household_facts,
    "HouseholdUpdated": on_household_facts,
    "ExitApproved": on_exit_approved,
    "ExitRolledBack": on_exit_rolled_back,
}
