"""Events notifier consumes."""
from __future__ import annotations

from contracts.base import decode_payload
from contracts.envelope import EventEnvelope
from runtime.service import EventHandler, UnitOfWork
from services.notifier import commands


async def on_verification_case_opened(uow: UnitOfWork, envelope: EventEnvelope) -> None:
    await commands.send_case_tasks(uow, decode_payload(envelope))


HANDLERS: dict[str, EventHandler] = {"VerificationCaseOpened": on_verification_case_opened}
