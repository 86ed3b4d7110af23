"""The event envelope every service writes and every consumer reads."""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any, Literal
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict, Field

GENESIS_HASH = "0" * 64


class Actor(BaseModel):
    """Who caused an event: a system, a member of staff or a household."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["system", "staff", "household"]
    id: str
    role: str | None = None
    region: str | None = None


class EventEnvelope(BaseModel):
    """One recorded event. `hash` chains it to the previous event of its stream."""

    model_config = ConfigDict(frozen=True)

    event_id: UUID
    event_type: str
    schema_version: int = 1
    stream_id: str
    stream_position: int = Field(ge=1)
    household_id: str | None = None
    region_code: str | None = None
    occurred_at: datetime
    recorded_at: datetime
    producer: str
    actor: Actor
    correlation_id: UUID
    causation_id: UUID | None = None
    traceparent: str | None = None
    prev_hash: str
    hash: str
    payload: dict[str, Any]

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_json(cls, raw: bytes) -> "EventEnvelope":
        return cls.model_validate(orjson.loads(raw))


def utc_spelling(moment: datetime) -> str:
    """How the hash spells a time: UTC, always with microseconds."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utc_microseconds(value: Any) -> str:
    if isinstance(value, datetime):
        return utc_spelling(value)
    if isinstance(value, UUID):  # the database driver's own UUID subclass
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def canonical_json(value: Any) -> bytes:
    """Stable bytes for hashing: sorted keys, no whitespace, every time in UTC with microseconds
    (one instant has one spelling, whatever zone it was written in)."""
    return orjson.dumps(value, default=_utc_microseconds,
                        option=orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME)


def compute_hash(envelope_fields: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of every envelope field except `hash` itself; fields may be
    Python values (UUID, datetime) or their JSON spellings."""
    body = {k: v for k, v in envelope_fields.items() if k != "hash"} if "hash" in envelope_fields else envelope_fields
    return hashlib.sha256(canonical_json(body)).hexdigest()


def verify_chain(events: list[EventEnvelope]) -> list[str]:
    """Problems found in one stream's events, in order; an empty list proves it whole and unaltered."""
    problems: list[str] = []
    expected_prev = GENESIS_HASH
    for expected_position, event in enumerate(events, start=1):
        if event.stream_position != expected_position:
            problems.append(f"{event.stream_id}: position {event.stream_position} where {expected_position} was due (missing event)")
        if event.prev_hash != expected_prev:
            problems.append(f"{event.stream_id}@{event.stream_position}: prev_hash does not match the previous event")
        if compute_hash(event.model_dump()) != event.hash:
            problems.append(f"{event.stream_id}@{event.stream_position}: content does not match its hash (altered)")
        expected_prev = event.hash
    return problems
