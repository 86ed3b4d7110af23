"""The event store: append with an expected stream position, load a stream, read all in order.

The `events` table is also the relay's outbox: the relay publishes it in `global_position` order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping
from uuid import UUID

import asyncpg
import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.base import DumpedPayload, EventPayload
from contracts.envelope import GENESIS_HASH, Actor, EventEnvelope, canonical_json, compute_hash, utc_spelling
from runtime.bulk import copy_records
from runtime.clock import Clock
from runtime.ids import new_id
from runtime.signals import EVENTS_APPENDED
from runtime.tables import ENVELOPE_COLUMNS, events


# The transaction's id, taken before the rows take their positions (see _insert), and the relay's
# signal to look at its commit (runtime.signals), in one round trip.
_TAKE_TRANSACTION_ID_AND_SIGNAL = sa.text(f"select pg_current_xact_id(), pg_notify('{EVENTS_APPENDED}', '')")


class ConcurrencyConflict(Exception):
    """The stream moved on since it was loaded; load it again and retry the command."""

    def __init__(self, stream_id: str, expected: int, actual: int | None = None) -> None:
        self.stream_id, self.expected, self.actual = stream_id, expected, actual
        super().__init__(f"stream {stream_id} is not at position {expected} (found {actual})")


@dataclass(frozen=True)
class EventMetadata:
    """What every event of one command or consumed message shares."""

    actor: Actor
    correlation_id: UUID = field(default_factory=new_id)
    causation_id: UUID | None = None
    traceparent: str | None = None


@dataclass(frozen=True)
class NewEvent:
    payload: EventPayload | DumpedPayload
    household_id: str | None = None
    region_code: str | None = None
    occurred_at: datetime | None = None
    # An event about many households goes to the topic partition of this one (see runtime.kafka.partition_of);
    # left out, the event goes to its household's partition, or its stream's.
    partition_key: str | None = None
    # The consumed event that caused this one, when one append holds the reactions to several
    # (a handler taking a batch of events: runtime.service.caused_by); left out, the metadata's.
    causation_id: UUID | None = None
    correlation_id: UUID | None = None


@dataclass(frozen=True)
class Stream:
    stream_id: str
    events: list[EventEnvelope]

    @property
    def position(self) -> int:
        return self.events[-1].stream_position if self.events else 0

    @property
    def last_hash(self) -> str:
        return self.events[-1].hash if self.events else GENESIS_HASH


@dataclass(frozen=True)
class StreamHead:
    """Where a stream stands: enough to append to it without loading it."""

    stream_id: str
    position: int = 0
    last_hash: str = GENESIS_HASH


_ENVELOPE_FIELDS = tuple(EventEnvelope.model_fields)
# Copied with every field given: model_copy(update=...) sets them unchecked, as model_construct
# does, without walking the fields one by one in Python (a rebuild makes a million envelopes).
_BLANK_ENVELOPE = EventEnvelope.model_construct()


def sealed_envelope(row: Mapping[str, Any], actor: Actor | None = None) -> EventEnvelope:
    """The envelope of a row as the store sealed it (already validated: constructed, not checked),
    its payload as JSON text; `actor`: the row's actor as a model, if at hand (events share it)."""
    fields = {name: row[name] for name in _ENVELOPE_FIELDS}
    fields["actor"] = actor or Actor.model_construct(**row["actor"])
    fields["payload"] = orjson.loads(row["payload"])
    return _BLANK_ENVELOPE.model_copy(update=fields)


def row_to_envelope(row: Any) -> EventEnvelope:
    data = {c.name: getattr(row, c.name) for c in ENVELOPE_COLUMNS}
    return EventEnvelope.model_validate(data)


class EventStore:
    """Bound to one open transaction; appends become visible with its commit."""

    def __init__(self, session: AsyncSession, producer: str, clock: Clock) -> None:
        self.session, self.producer, self.clock = session, producer, clock

    async def load(self, stream_id: str) -> Stream:
        result = await self.session.execute(
            sa.select(*ENVELOPE_COLUMNS).where(events.c.stream_id == stream_id).order_by(events.c.stream_position)
        )
        return Stream(stream_id, [row_to_envelope(r) for r in result])

    async def load_many(self, stream_ids: Iterable[str]) -> dict[str, Stream]:
        """Each of these streams, whole (one query; a stream with no events comes back empty)."""
        wanted = sorted(set(stream_ids))
        found: dict[str, Stream] = {stream_id: Stream(stream_id, []) for stream_id in wanted}
        if wanted:
            result = await self.session.execute(
                sa.select(*ENVELOPE_COLUMNS).where(events.c.stream_id.in_(wanted))
                .order_by(events.c.stream_id, events.c.stream_position))
            for row in result:
                found[row.stream_id].events.append(row_to_envelope(row))
        return found

    async def heads(self, stream_ids: Iterable[str]) -> dict[str, StreamHead]:
        """Where each of these streams stands now, for append_many (one query; a new stream at 0)."""
        wanted = sorted(set(stream_ids))
        last = await self.last_events(wanted)
        return {s: StreamHead(s, last[s].stream_position, last[s].hash) if s in last else StreamHead(s) for s in wanted}

    async def _head(self, stream_id: str) -> tuple[int, str]:
        row = (
            await self.session.execute(
                sa.select(events.c.stream_position, events.c.hash)
                .where(events.c.stream_id == stream_id)
                .order_by(events.c.stream_position.desc())
                .limit(1)
            )
        ).first()
        return (row.stream_position, row.hash) if row else (0, GENESIS_HASH)

    async def append(
        self, stream_id: str, expected_position: int, new_events: Iterable[NewEvent], meta: EventMetadata
    ) -> list[EventEnvelope]:
        """Append after `expected_position` (0 for a new stream) or raise ConcurrencyConflict.

        A conflict aborts the transaction: the caller retries the whole unit of work."""
        if expected_position == 0:
            # A new stream: the unique (stream_id, stream_position) key catches a concurrent creator.
            position, prev_hash = 0, GENESIS_HASH
        else:
            position, prev_hash = await self._head(stream_id)
            if position != expected_position:
                raise ConcurrencyConflict(stream_id, expected_position, position)
        seal = self._sealer(meta, self.clock.now())
        written: list[dict] = []
        for new in new_events:
            position += 1
            written.append(seal(stream_id, position, prev_hash, new))
            prev_hash = written[-1]["hash"]
        await self._insert(written, stream_id, expected_position)
        return [sealed_envelope(r) for r in written]

    async def append_many(self, items: list[tuple[StreamHead, list[NewEvent]]], meta: EventMetadata) -> list[dict]:
        """Append to many streams in one statement (bulk intake). Each head is where its stream
        was read; a stream that moved on since makes the whole call a ConcurrencyConflict.
        Returns the rows as stored (no envelope objects: at bulk rates they cost more than the COPY)."""
        seal = self._sealer(meta, self.clock.now())
        written: list[dict] = []
        for head, new_events in items:
            position, prev_hash = head.position, head.last_hash
            for new in new_events:
                position += 1
                written.append(seal(head.stream_id, position, prev_hash, new))
                prev_hash = written[-1]["hash"]
        await self._insert(written, "(bulk)", 0)
        return written

    async def last_events(self, stream_ids: list[str]) -> dict[str, EventEnvelope]:
        """The newest event of each of these streams that exists (one query)."""
        if not stream_ids:
            return {}
        result = await self.session.execute(
            sa.select(*ENVELOPE_COLUMNS)
            .where(events.c.stream_id.in_(stream_ids))
            .order_by(events.c.stream_id, events.c.stream_position.desc())
            .ext(distinct_on(events.c.stream_id))
        )
        return {r.stream_id: row_to_envelope(r) for r in result}

    def _sealer(self, meta: EventMetadata, now: datetime):
        """seal(stream_id, position, prev_hash, new event) -> the event as the row it is stored as,
        its hash covering every envelope field but itself (the partition key is routing, not
        content). What the events of one append share is worked out once: at bulk rates, spelling
        the same time and actor per event cost more than the rest."""
        utc: dict[datetime, tuple[datetime, str]] = {}

        def in_utc(moment: datetime) -> tuple[datetime, str]:
            found = utc.get(moment)
            if found is None:
                found = utc[moment] = (moment.astimezone(timezone.utc), utc_spelling(moment))
            return found

        recorded_at, recorded_spelled = in_utc(now)
        shared = {"recorded_at": recorded_at, "producer": self.producer, "actor": meta.actor.model_dump(),
                  "correlation_id": meta.correlation_id, "causation_id": meta.causation_id,
                  "traceparent": meta.traceparent}
        shared_spelled = {**shared, "recorded_at": recorded_spelled, "correlation_id": str(meta.correlation_id),
                          "causation_id": str(meta.causation_id) if meta.causation_id else None}

        def seal(stream_id: str, position: int, prev_hash: str, new: NewEvent) -> dict:
            event_id = new_id()
            occurred_at, occurred_spelled = in_utc(new.occurred_at or now)
            common, common_spelled = shared, shared_spelled
            if new.causation_id is not None:
                cause = {"correlation_id": new.correlation_id or meta.correlation_id, "causation_id": new.causation_id}
                common = {**shared, **cause}
                common_spelled = {**shared_spelled, "correlation_id": str(cause["correlation_id"]),
                                  "causation_id": str(new.causation_id)}
            # The payload is written out once, canonically: the hash takes those bytes as they are,
            # and so does the row (a batch event's payload is a few hundred clues).
            payload = canonical_json(new.payload.model_dump(mode="json"))
            own = {"event_id": event_id, "event_type": new.payload.event_type,
                   "schema_version": new.payload.schema_version, "stream_id": stream_id,
                   "stream_position": position, "household_id": new.household_id, "region_code": new.region_code,
                   "occurred_at": occurred_at, "prev_hash": prev_hash, "payload": orjson.Fragment(payload)}
            body = {**own, **common_spelled, "event_id": str(event_id), "occurred_at": occurred_spelled}
            return {**own, **common, "payload": payload.decode(), "hash": compute_hash(body),
                    "partition_key": new.partition_key}

        return seal

    async def _insert(self, written: list[dict], stream_id: str, expected_position: int) -> None:
        if not written:
            return
        columns = list(written[0])
        actor_at = columns.index("actor")
        actors: dict[int, str] = {}  # the events of one append share one actor: encode it once
        records = []
        for r in written:
            values = list(r.values())
            actor = values[actor_at]
            values[actor_at] = actors.get(id(actor)) or actors.setdefault(id(actor), orjson.dumps(actor).decode())
            records.append(values)
        # The transaction takes its id before the rows take their positions: the relay, waiting at a
        # gap in the positions, then finds whoever may still fill it among the running transactions.
        # Its commit wakes the relay.
        await self.session.execute(_TAKE_TRANSACTION_ID_AND_SIGNAL)
        try:
            await copy_records(self.session, events, columns, records)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name != "events_stream_position_key":
                raise
            raise ConcurrencyConflict(stream_id, expected_position) from exc

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[tuple[int, EventEnvelope]]:
        """Events in global order after `after_position`, stopping below the oldest transaction
        still in progress: sequence numbers are handed out before commit, so a row that commits
        late would otherwise be skipped for good."""
        result = await self.session.execute(
            sa.select(events.c.global_position, *ENVELOPE_COLUMNS)
            .where(events.c.global_position > after_position)
            .where(events.c.txid < sa.text("(pg_snapshot_xmin(pg_current_snapshot())::text)::bigint"))
            .order_by(events.c.global_position)
            .limit(limit)
        )
        return [(r.global_position, row_to_envelope(r)) for r in result]
