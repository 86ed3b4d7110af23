"""`fangpin audit replay --from-topics`: what an operator holding only the Kafka topics can do. A fresh
database is migrated; the service's own topic, read from the beginning, becomes its event store again
(each event once, each partition in its order: a household's events share a partition); the service's
projections rebuild its views from that store, its mirrors rebuild the mirrored tables from the topics
it consumes; then every view is compared with the live one.

A replay sends nothing to anyone: it runs no handler, no relay, no job and no consumer group, so
replayed events produce no event, notification, webhook or e-mail, and no one's offsets move."""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from audit.differences import TableComparison, compare_table, last_event_naming
from audit.rebuild import _engine_url
from audit.verify import AuditError
from contracts.envelope import EventEnvelope
from contracts.topics import events_topic
from runtime.app import load_definition
from runtime.bulk import driver_connection, insert_rows
from runtime.db import ensure_database, migrate
from runtime.kafka import read_from_start
from runtime.projections import rebuild, rebuild_mirrors
from runtime.settings import Settings
from runtime.tables import ENVELOPE_COLUMNS, events

Progress = Callable[[str, int], None]  # (what is being read, events so far)


@dataclass
class ReplayReport:
    service: str
    events: int = 0  # of its own topic, once each
    consumed: int = 0  # of the topics it consumes
    tables: list[TableComparison] = field(default_factory=list)
    kept_database: str | None = None

    @property
    def equal(self) -> bool:
        return all(t.equal for t in self.tables)

    def summary(self) -> str:
        tables = ", ".join(f"{t.table} {t.rows_live:,}/{t.rows_rebuilt:,}" for t in self.tables) or "no views"
        verdict = "equal to the live tables" if self.equal else f"{sum(t.different for t in self.tables):,} rows differ"
        kept = f"; the replay is kept in database {self.kept_database}" if self.kept_database else ""
        return (f"{self.service}: replayed {self.events:,} events of its topic and {self.consumed:,} of the topics it "
                f"consumes: {verdict} (rows live/replayed: {tables}){kept}")


def _row(envelope: EventEnvelope) -> dict:
    return {str(column.name): getattr(envelope, column.name) for column in ENVELOPE_COLUMNS} | {
        "actor": envelope.actor.model_dump(mode="json")}


async def _store_from_topic(session: AsyncSession, settings: Settings, topic: str, progress: Progress | None) -> int:
    """The topic's events into the (fresh) events table, in the order they arrive, each once (the
    relay may have published an event again after a broker loss)."""
    stored = 0
    async for records in read_from_start(settings, [topic]):
        rows = [_row(EventEnvelope.from_json(record.value)) for record in records]
        stored += len(await insert_rows(session, events, rows, "ON CONFLICT DO NOTHING RETURNING global_position"))
        if progress:
            progress(topic, stored)
    return stored


async def _consumed(settings: Settings, topics: list[str], report: ReplayReport, progress: Progress | None):
    async for records in read_from_start(settings, topics):
        report.consumed += len(records)
        if progress:
            progress(", ".join(topics), report.consumed)
        yield [EventEnvelope.from_json(record.value) for record in records]


async def replay_and_compare(live_url: str, service: str, kafka_bootstrap: str, topic_prefix: str = "",
                             keep: bool = False, progress: Progress | None = None) -> ReplayReport:
    definition = load_definition(service)
    projections = definition.projections
    settings = Settings(service=service, kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix)
    live_url = _engine_url(live_url)
    live_name = make_url(live_url).database
    replay_name = f"{live_name}_replay_{secrets.token_hex(4)}"
    replay_url = make_url(live_url).set(database=replay_name).render_as_string(hide_password=False)
    report = ReplayReport(service)
    live_engine = create_async_engine(live_url, hide_parameters=True)
    try:
        try:
            async with live_engine.connect() as probe:
                await probe.execute(sa.text("select 1 from events limit 1"))
        except Exception as exc:
            raise AuditError(f"{service}: its live database does not answer ({type(exc).__name__})") from None
        await ensure_database(replay_url)
        replay_engine = create_async_engine(replay_url, hide_parameters=True)
        try:
            await migrate(replay_engine, service)
            async with AsyncSession(replay_engine) as session, session.begin():
                try:
                    report.events = await _store_from_topic(session, settings, events_topic(service, topic_prefix), progress)
                    await rebuild(session, projections)
                    if projections.mirrored_tables:
                        topics = [events_topic(producer, topic_prefix) for producer in definition.consumes]
                        await rebuild_mirrors(session, projections, _consumed(settings, topics, report, progress))
                except RuntimeError as exc:  # a topic the broker does not have
                    raise AuditError(str(exc)) from None
                except OSError as exc:
                    raise AuditError(f"the broker at {kafka_bootstrap} does not answer ({exc})") from None
            async with AsyncSession(replay_engine) as replay, AsyncSession(live_engine) as live:
                replayed, current = await driver_connection(replay), await driver_connection(live)
                for table in (*projections.tables, *projections.mirrored_tables):
                    compared = await compare_table(current, "public", replayed, "public", table)
                    compared.shown = [replace(d, last_event=await last_event_naming(replayed, d.key, None))
                                      for d in compared.shown]
                    report.tables.append(compared)
        finally:
            await replay_engine.dispose()
        if keep:
            report.kept_database = replay_name
        else:
            await _drop_database(live_url, replay_name)
        return report
    finally:
        await live_engine.dispose()


async def _drop_database(any_url: str, name: str) -> None:
    engine = create_async_engine(make_url(any_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(sa.text(f'drop database if exists "{name}"'))
    finally:
        await engine.dispose()

