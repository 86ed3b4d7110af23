"""Events notifier consumes: every event of the services it reads goes through the routing table
(commands.route_events, a run of them at a time), so a deployment's table may route any of them;
an event no row names costs a dictionary lookup."""
from __future__ import annotations

import contracts.catalog  # noqa: F401  every event type is registered
from contracts.base import all_payload_classes
from contracts.envelope import EventEnvelope
from runtime.service import EventHandler, UnitOfWork
from services.notifier import commands

CONSUMES = ("intake", "screening", "assistance", "exit_review")


async def on_events(uow: UnitOfWork, envelopes: list[EventEnvelope]) -> None:
    await commands.route_events(uow, envelopes)


HANDLERS: dict[str, EventHandler] = {event_type: on_events for event_type, payload in all_payload_classes().items()
                                     if not event_type.startswith("_") and payload.producer in CONSUMES}
