"""What a service declares (ServiceDefinition) and what it is handed at run time (ServiceContext),
with the unit of work that puts state changes and new events in one transaction."""
from __future__ import annotations

from collections import Counter
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, AsyncIterator, Awaitable, Callable

from fastapi import APIRouter, Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from contracts.envelope import EventEnvelope
from contracts.topics import events_topic
from runtime.clock import Clock
from runtime.eventstore import ConcurrencyConflict, EventMetadata, EventStore, sealed_envelope
from runtime.projections import Projections
from runtime.settings import Settings
from runtime.telemetry import EVENTS_APPENDED


@dataclass
class ServiceContext:
    name: str
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker
    clock: Clock
    projections: Projections = Projections()  # what writes the read tables from the events appended

    @property
    def topic(self) -> str:
        return events_topic(self.name, self.settings.topic_prefix)


class UnitOfWork:
    """One transaction: a service's own tables plus the events it appends."""

    def __init__(self, ctx: ServiceContext, session: AsyncSession, meta: EventMetadata) -> None:
        self.ctx, self.session, self.meta = ctx, session, meta
        self.events = EventStore(session, ctx.name, ctx.clock)
        self.appended: Counter[str] = Counter()  # event type -> events appended, for the metrics

    async def append(self, stream_id: str, expected_position: int, new_events) -> list[EventEnvelope]:
        written = await self.events.append(stream_id, expected_position, new_events, self.meta)
        self.appended.update(e.event_type for e in written)
        await self.ctx.projections.apply(self.session, written)
        return written

    async def append_many(self, items) -> list[dict]:
        """Events for many streams, in one statement (see EventStore.append_many)."""
        written = await self.events.append_many(items, self.meta)
        self.appended.update(r["event_type"] for r in written)
        if any(r["event_type"] in self.ctx.projections.appliers for r in written):  # envelopes only if needed
            actor = self.meta.actor  # every event of one append is by it
            await self.ctx.projections.apply(self.session, [sealed_envelope(r, actor) for r in written])
        return written


@asynccontextmanager
async def unit_of_work(ctx: ServiceContext, meta: EventMetadata) -> AsyncIterator[UnitOfWork]:
    async with ctx.sessions() as session:
        async with session.begin():
            uow = UnitOfWork(ctx, session, meta)
            yield uow
        for event_type, count in uow.appended.items():
            EVENTS_APPENDED.labels(ctx.name, event_type).inc(count)


async def run_command(ctx: ServiceContext, meta: EventMetadata, work: Callable[[UnitOfWork], Awaitable[Any]], attempts: int = 5) -> Any:
    """Run `work` in a unit of work, again from the start when a stream moved on meanwhile."""
    for attempt in range(1, attempts + 1):
        try:
            async with unit_of_work(ctx, meta) as uow:
                return await work(uow)
        except ConcurrencyConflict:
            if attempt == attempts:
                raise


# A handler takes a run of consumed events (consecutive in the polled batch, each of a type it is
# registered for) in one unit of work, set-based: a handful of statements however many events. What
# it appends names each event's own cause (`caused_by`).
EventHandler = Callable[[UnitOfWork, list[EventEnvelope]], Awaitable[None]]


def caused_by(envelope: EventEnvelope) -> dict:
    """NewEvent(..., **caused_by(envelope)): the event is a reaction to `envelope`."""
    return {"causation_id": envelope.event_id, "correlation_id": envelope.correlation_id}


@dataclass
class ServiceDefinition:
    """Everything the app factory needs to know about one service."""

    name: str
    routers: list[APIRouter] = field(default_factory=list)
    consumes: tuple[str, ...] = ()  # producing services whose topics this service reads
    handlers: dict[str, EventHandler] = field(default_factory=dict)  # event_type -> handler
    # (seconds, or the name of the setting that holds them; job)
    periodic: list[tuple[float | str, Callable[[ServiceContext], Awaitable[None]]]] = field(default_factory=list)
    description: str = ""
    # Deployment data the service reads (setting name -> loader of the file it names; None: the demo
    # county's, which only a development system may use). Loaded at start, so a bad file stops the
    # service there, naming the setting, not at the first request that needs it.
    reference_data: dict[str, Callable[[str | None], Any]] = field(default_factory=dict)
    # More start-up checks of the service's settings: each returns what is wrong (empty: nothing).
    start_checks: list[Callable[[Settings], list[str]]] = field(default_factory=list)
    # The one mapping of the service's domain refusals (contracts.codes.Refusal subclasses) to HTTP
    # statuses; the app factory answers each with a problem document carrying its code and details.
    refusal_statuses: dict[type[Exception], int] = field(default_factory=dict)
    # The functions that alone write its read tables, from its own events (runtime.projections).
    projections: Projections = Projections()


async def get_context(request: Request) -> ServiceContext:
    return request.app.state.context


# A route's parameter `ctx: Context` is handed the service's context.
Context = Annotated[ServiceContext, Depends(get_context)]
