"""Read tables as projections of a service's own events (DESIGN, "Views and audit").

A service declares, per event type, the function that writes its read tables from a batch of its
events (`Projections`). The unit of work applies them in the transaction that appends the events, so
reads stay immediately consistent; `rebuild` applies the same functions to the whole event store, so
"rebuilt equals live" is a test, not a hope. No read table is written anywhere else.

Records that events deliberately do not carry (names, encrypted ID numbers, phone numbers) are
primary records: tables of their own, named in `primary_records`, never rebuilt.

A table that only mirrors another service's facts (screening's labour facts, from intake's
registry) is a mirror: written by `mirrors`, per consumed event type, which the consumer loop applies
in the transaction that takes the event, before any handler; `rebuild_mirrors` applies them again to
the consumed topics, read from the beginning. Mirroring appends no event of its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby
from operator import attrgetter
from typing import AsyncIterator, Awaitable, Callable, Mapping

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.envelope import EventEnvelope
from runtime.eventstore import row_to_envelope
from runtime.tables import events

ApplyBatch = Callable[[AsyncSession, list[EventEnvelope]], Awaitable[None]]
REBUILD_BATCH = 5000


@dataclass(frozen=True)
class Projections:
    tables: tuple[sa.Table, ...] = ()  # the read tables these alone write
    appliers: Mapping[str, ApplyBatch] = field(default_factory=dict)  # event type -> apply a batch of them
    primary_records: tuple[sa.Table, ...] = ()  # tables of facts no event carries: kept, never rebuilt
    mirrored_tables: tuple[sa.Table, ...] = ()  # the tables these alone write from other services' events
    mirrors: Mapping[str, ApplyBatch] = field(default_factory=dict)  # consumed event type -> apply a batch

    async def apply(self, session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
        """Write what `envelopes` (the service's own, in store order) change; a run of one type goes in one call."""
        await _apply_runs(self.appliers, session, envelopes)

    async def mirror(self, session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
        """Write what consumed `envelopes` (in topic order) change in the mirrored tables."""
        await _apply_runs(self.mirrors, session, envelopes)


async def _apply_runs(appliers: Mapping[str, ApplyBatch], session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    for event_type, run in groupby(envelopes, key=attrgetter("event_type")):
        applier = appliers.get(event_type)
        if applier is not None:
            await applier(session, list(run))


async def rebuild_mirrors(session: AsyncSession, projections: Projections, consumed: AsyncIterator[list[EventEnvelope]]) -> int:
    """Empty the mirrored tables and apply `consumed` (batches of the consumed topics' events, from
    the beginning, each partition in its order) again, in the caller's transaction; returns the
    number of events read."""
    for table in reversed(projections.mirrored_tables):
        await session.execute(sa.delete(table))
    read = 0
    async for batch in consumed:
        await projections.mirror(session, batch)
        read += len(batch)
    return read


async def rebuild(session: AsyncSession, projections: Projections, upto_position: int | None = None) -> int:
    """Empty the projected tables and apply every event of the store (up to `upto_position`) again,
    in store order, in the caller's transaction; returns the number of events read."""
    for table in reversed(projections.tables):
        await session.execute(sa.delete(table))
    read, after = 0, 0
    while True:
        query = sa.select(events).where(events.c.global_position > after)
        if upto_position is not None:
            query = query.where(events.c.global_position <= upto_position)
        rows = (await session.execute(query.order_by(events.c.global_position).limit(REBUILD_BATCH))).all()
        if not rows:
            return read
        await projections.apply(session, [row_to_envelope(row) for row in rows])
        read, after = read + len(rows), rows[-1].global_position
