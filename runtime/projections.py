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

import asyncio
import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from itertools import groupby
from operator import attrgetter
from typing import AsyncIterator, Awaitable, Callable, Mapping

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.envelope import Actor, EventEnvelope
from runtime.bulk import driver_connection
from runtime.eventstore import sealed_envelope
from runtime.tables import ENVELOPE_COLUMNS

ApplyBatch = Callable[[AsyncSession, list[EventEnvelope]], Awaitable[None]]
REBUILD_BATCH = 5000
_LAST_POSITION = 2**63 - 1  # bigint's largest: no upto_position
# A page of the store as the driver gives it: actor and payload as text, which orjson reads faster
# than the session's JSON codec decodes them (the driver's rows, not the ORM's: at a million events
# a row object and a validated model per event cost more than the projections' own work).
_NAMES = [str(c.name) for c in ENVELOPE_COLUMNS]
_PAGE = ("select global_position, " + ", ".join(f"{n}::text" if n in ("actor", "payload") else n for n in _NAMES)
         + " from events where global_position > $1 and global_position <= $2 order by global_position limit $3")
_EVENT_TYPE = 1 + _NAMES.index("event_type")
_YIELD_EVERY = 250  # events made into envelopes between two turns of the event loop


@dataclass(frozen=True)
class Projections:
    tables: tuple[sa.Table, ...] = ()  # the read tables these alone write
    appliers: Mapping[str, ApplyBatch] = field(default_factory=dict)  # event type -> apply a batch of them
    primary_records: tuple[sa.Table, ...] = ()  # tables of facts no event carries: kept, never rebuilt
    mirrored_tables: tuple[sa.Table, ...] = ()  # the tables these alone write from other services' events
    mirrors: Mapping[str, ApplyBatch] = field(default_factory=dict)  # consumed event type -> apply a batch
    # Whether `rebuild` may apply a page of events grouped by applier (each group in store order, the
    # groups in the order `appliers` first names them) for the rows store order gives: a few
    # statements a page instead of one per run of one type, where event types come interleaved. Only
    # where no applier's rows depend on the events of one named after it (the live path keeps store
    # order, so the scenario-end rebuild test holds the claim to account).
    rebuild_grouped: bool = False

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


async def rebuild(session: AsyncSession, projections: Projections, upto_position: int | None = None,
                  progress: Callable[[int], None] | None = None) -> int:
    """Empty the projected tables and apply every event of the store (up to `upto_position`) again,
    in store order (by page grouped by applier, where the projections say that gives the same rows:
    `rebuild_grouped`), in the caller's transaction; returns the number of events read, and tells
    `progress` the number read so far after each page."""
    for table in reversed(projections.tables):
        await session.execute(sa.delete(table))
    connection = await driver_connection(session)
    upto = _LAST_POSITION if upto_position is None else upto_position
    apply = partial(_apply_grouped, projections.appliers) if projections.rebuild_grouped else projections.apply
    rows = await connection.fetch(_PAGE, 0, upto, REBUILD_BATCH)  # a page at a time: memory stays flat
    envelopes = await _stored_envelopes(rows, projections.appliers)
    read = 0
    while rows:
        with _collector_paused():
            # The next page is read while the connection is free, and made into envelopes while the
            # server writes this one's rows: Python and PostgreSQL work side by side.
            following = (await connection.fetch(_PAGE, rows[-1][0], upto, REBUILD_BATCH)
                         if len(rows) == REBUILD_BATCH else [])
            making = asyncio.ensure_future(_stored_envelopes(following, projections.appliers))
            try:
                await apply(session, envelopes)
                envelopes = await making
            finally:
                making.cancel()  # (done by then, unless the page's writes failed)
        read, rows = read + len(rows), following
        if progress:
            progress(read)
    return read


async def _apply_grouped(appliers: Mapping[str, ApplyBatch], session: AsyncSession,
                         envelopes: list[EventEnvelope]) -> None:
    """Each applier's events in one call, in store order; the appliers in the order they are named."""
    groups: dict[ApplyBatch, list[EventEnvelope]] = {applier: [] for applier in appliers.values()}
    for envelope in envelopes:
        groups[appliers[envelope.event_type]].append(envelope)
    for applier, group in groups.items():
        if group:
            await applier(session, group)


async def _stored_envelopes(rows: list, appliers: Mapping[str, ApplyBatch]) -> list[EventEnvelope]:
    """The envelopes of the events of a page that an applier takes, giving way to the event loop
    now and then. Constructed, not validated (as sealed_envelope does): they were validated when
    appended, and the appliers upcast old payload versions (contracts.base.current_payload)."""
    actors: dict[str, Actor] = {}  # the events of one append share their actor: made once
    envelopes = []
    for start in range(0, len(rows), _YIELD_EVERY):
        await asyncio.sleep(0)
        for row in rows[start:start + _YIELD_EVERY]:
            if row[_EVENT_TYPE] in appliers:
                fields = dict(zip(_NAMES, row[1:]))
                actor = actors.get(fields["actor"])
                if actor is None:
                    actor = actors[fields["actor"]] = Actor.model_construct(**orjson.loads(fields["actor"]))
                envelopes.append(sealed_envelope(fields, actor))
    return envelopes


@contextmanager
def _collector_paused():
    """The cyclic garbage collector off for a while: a page makes some hundred thousand objects that
    hold no cycles, and the collector, set off every few hundred of them, went through them all again
    and again (it took as long as reading the page). Cycles made meanwhile are collected after."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
