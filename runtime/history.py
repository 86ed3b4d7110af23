"""One stream's history as an API shows it (a case's steps, a plan's life): each event with when,
who and what, at the current schema version, oldest first."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from contracts.base import current_payload
from runtime.eventstore import EventStore


class HistoryEntry(BaseModel):
    event_type: str
    at: datetime = Field(description="when it was recorded")
    actor: dict = Field(description="who: kind, id, role")
    payload: dict = Field(description="what, in the event's current schema (docs/events.md)")


async def stream_history(events: EventStore, stream_id: str) -> list[HistoryEntry]:
    stream = await events.load(stream_id)
    return [HistoryEntry(event_type=e.event_type, at=e.recorded_at, actor=e.actor.model_dump(),
                         payload=current_payload(e)) for e in stream.events]
