"""The outbox relay: publishes the store's events to the service's topic, in store order.

The relay keeps a cursor per topic (`relay_cursor`): every event at or below its position is on the
broker. Positions are handed out before commit, so a gap above the cursor may be a transaction still
running; the relay waits at a gap until every transaction that could fill it has ended, then steps
over it for good (a rolled-back append leaves one). A row lock on the cursor keeps one relay at work
per topic, however many copies of the service run.

The broker's history is watched through anchors — the event id found at a known offset of each
partition. An anchor that has gone means the broker lost its log (the embedded broker keeps topics
in memory), and the cursor goes back to the start; consumers' inboxes absorb the repeats.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace

import orjson
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError

from contracts.topics import dead_letter_topic
from runtime.db import database_answers, is_database_outage, sqlstate_of
from runtime.kafka import TopicMisconfigured, ensure_topics, make_producer, partition_of, stop_quietly
from runtime.service import ServiceContext
from runtime.signals import EVENTS_APPENDED, CommitSignal
from runtime.tables import ENVELOPE_COLUMNS, events, relay_cursor
from runtime.tasks import Health, sleep_unless_stopped, stray_cancellation
from runtime.telemetry import EVENTS_PUBLISHED, RELAY_REPUBLISHES

log = logging.getLogger(__name__)


# JSON columns read as their text, spliced into the message as is (no decode and encode again);
# ids read as text too, which orjson writes without a call back into Python per value.
_AS_TEXT = ("actor", "payload", "event_id", "correlation_id", "causation_id")
_AS_STORED = [sa.cast(c, sa.Text).label(c.name) if c.name in _AS_TEXT else c for c in ENVELOPE_COLUMNS]

_NAMES = [str(c.name) for c in ENVELOPE_COLUMNS]  # plain str: orjson refuses SQLAlchemy's quoted_name keys


def events_per_pass(rows: list, most: int) -> int:
    """How many events the next pass reads: as many as carry about PASS_PAYLOAD_CHARS of payload,
    judged by the rows just read, and at most `most` (FANGPIN_RELAY_BATCH_SIZE)."""
    chars = sum(len(row.payload) for row in rows)
    return max(1, min(most, len(rows) * PASS_PAYLOAD_CHARS // max(chars, 1)))


def envelope_json(row) -> bytes:
    """The message value: the envelope as EventEnvelope.to_json would write it, built from the row
    (global_position and partition_key first, then the envelope's columns)."""
    body = dict(zip(_NAMES, row[2:]))
    body["actor"], body["payload"] = orjson.Fragment(row.actor), orjson.Fragment(row.payload)
    return orjson.dumps(body, option=orjson.OPT_UTC_Z)


@dataclass(frozen=True)
class Gaps:
    """What the relay saw when it met a gap: every position missing up to `upto` (the highest it
    had read then) was handed out to a transaction that had taken its id before `below` (the
    relay's own id in that pass): once no transaction older than `below` runs, none is left that
    could fill any of them."""

    upto: int
    below: int
    since: float = 0.0  # time.monotonic() when seen
    reported: bool = False


GAP_PATIENCE_SECONDS = 30.0  # then the wait at a gap is logged, once
PASS_PAYLOAD_CHARS = 16_000_000
"""About how much event payload one pass reads. A pass holds the cursor and its rows until the broker
has acknowledged them all, so a pass of 1,000 batch events (130 kB of clues each) took seconds of
lag and a hundred megabytes of memory; the number of events per pass follows their size."""


# The oldest transaction running in this transaction's snapshot (cluster-wide; its xmin) and this
# transaction's own id, taken by the cursor's row lock after the snapshot.
_HORIZON = sa.text(
    "select pg_snapshot_xmin(pg_current_snapshot())::text::bigint, pg_current_xact_id()::text::bigint"
)


class OutboxRelay:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.topic = ctx.topic
        self.producer: AIOKafkaProducer | None = None
        self.anchors: dict[int, tuple[int, str]] = {}  # partition -> (offset, event_id)
        self.connected = False
        self._history_checked = False
        self.gaps: Gaps | None = None
        self._silent_checks = 0
        self.health = Health()
        # Events per pass (see PASS_PAYLOAD_CHARS): a tenth of the most to begin with, since a backlog of
        # batch events read a thousand at a time would be a hundred megabytes.
        self.pass_limit = max(1, ctx.settings.relay_batch_size // 10)
        self.appended: CommitSignal | None = None  # while running: woken by the commits of appends

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until `stop`; nothing else ends this loop (errors are logged and retried)."""
        backoff = 0.2
        last_check = 0.0
        loop = asyncio.get_running_loop()
        # Woken by the commits of appends; still looks every relay_idle_seconds without one.
        self.appended = CommitSignal(self.ctx.engine, EVENTS_APPENDED)
        try:
            while not stop.is_set():
                try:
                    await self._connect()
                    if not self._history_checked or loop.time() - last_check > self.settings.broker_check_seconds:
                        await self.check_broker_history()
                        last_check = loop.time()
                    self.appended.clear()  # before looking: a commit from now on wakes the wait below
                    published = await self.publish_pending()
                    self.health.set("running")
                    backoff = 0.2
                    if published == 0:
                        await self.appended.wait(self.settings.relay_idle_seconds, stop)
                except (Exception, asyncio.CancelledError) as exc:  # nothing may end the relay silently: log, wait, retry
                    if isinstance(exc, asyncio.CancelledError) and not stray_cancellation():
                        raise  # this task is being cancelled: the service stops
                    if isinstance(exc, TopicMisconfigured):
                        log.error("relay %s: not publishing: %s", self.ctx.name, exc)
                        self.health.set("topic misconfigured", exc)
                    elif is_database_outage(exc) and not isinstance(exc, KafkaError) and not await database_answers(self.ctx.engine):
                        log.warning("relay %s: database unavailable (%r); retrying in %.1fs", self.ctx.name, exc, backoff)
                        self.health.set("waiting for the database", exc)
                    elif isinstance(exc, (KafkaError, OSError, asyncio.TimeoutError)):
                        log.warning("relay %s: broker unavailable (%r); retrying in %.1fs", self.ctx.name, exc, backoff)
                        self.health.set("waiting for the broker", exc)
                        self._history_checked = False  # the broker may come back empty
                    else:
                        log.exception("relay %s: publishing failed; retrying in %.1fs", self.ctx.name, backoff)
                        self.health.set("retrying", exc)
                    await self._disconnect()
                    await sleep_unless_stopped(stop, backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            self.health.set("stopped")
            await self._disconnect()
            await self.appended.close()

    async def lag(self) -> int | None:
        """Events in the store not yet on the broker (None while the database does not answer)."""
        try:
            async with self.ctx.sessions() as session:
                return await session.scalar(
                    sa.select(sa.func.coalesce(sa.func.max(events.c.global_position), 0)
                              - sa.func.coalesce(sa.select(relay_cursor.c.position)
                                                 .where(relay_cursor.c.topic == self.topic).scalar_subquery(), 0)))
        except Exception:
            return None

    async def _connect(self) -> None:
        if self.producer is not None:
            return
        producer = make_producer(self.settings)
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self.producer, self.connected = producer, True
        self._history_checked = False  # a new connection may find a new (empty) broker: check first

    async def _disconnect(self) -> None:
        producer, self.producer, self.connected = self.producer, None, False
        if producer is not None:
            await stop_quietly(producer, f"relay {self.ctx.name}")

    async def publish_pending(self) -> int:
        """Publish the next events above the cursor, in store order, and move it on; returns how many."""
        try:
            return await self._publish_pass()
        except DBAPIError as exc:
            if sqlstate_of(exc) != "40001":
                raise
            # Another copy of this service moved the cursor after this pass's snapshot was taken.
            return 0

    async def _publish_pass(self) -> int:
        assert self.producer is not None
        async with self.ctx.sessions() as session, session.begin():
            # One snapshot for the rows and the oldest running transaction (see _up_to_open_gap): in
            # two READ COMMITTED statements, a writer committing between them is neither read nor running.
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            position = await session.scalar(
                sa.select(relay_cursor.c.position).where(relay_cursor.c.topic == self.topic)
                .with_for_update(skip_locked=True)
            )
            if position is None:
                await self._create_cursor(session)
                return 0  # or another copy of this service holds it and is publishing
            rows = await self._rows_above(session, position)
            if not rows:
                return 0
            self.pass_limit = events_per_pass(rows, self.settings.relay_batch_size)
            oldest_running, me = (await session.execute(_HORIZON)).one()
            ready = self._up_to_open_gap(position, rows, oldest_running, me)
            if ready:
                await self._send(ready)
                await session.execute(
                    sa.update(relay_cursor).where(relay_cursor.c.topic == self.topic)
                    .values(position=ready[-1].global_position)
                )
        EVENTS_PUBLISHED.labels(self.ctx.name).inc(len(ready))
        return len(ready)

    async def _rows_above(self, session, position: int) -> list:
        return (
            await session.execute(
                sa.select(events.c.global_position, events.c.partition_key, *_AS_STORED)
                .where(events.c.global_position > position)
                .order_by(events.c.global_position)
                .limit(self.pass_limit)
            )
        ).all()

    def _up_to_open_gap(self, position: int, rows: list, oldest_running: int, me: int) -> list:
        """The rows before the first gap that a running transaction may still fill.

        `rows` and `oldest_running` (the snapshot's xmin) come from one snapshot; `me` is this pass's
        own transaction id, taken after that snapshot. A missing position below a row of the snapshot
        was handed out before that row's, so its holder had taken its transaction id before (appends
        take it first, see EventStore._insert), and so before `me`. Not committed in the snapshot, the
        holder was running or has rolled back. Running transactions are not all listed in a snapshot
        (those newer than the newest finished one are not), so the relay waits for every
        transaction older than `me`: once the oldest one running is newer than that, every gap seen
        then stays empty for good and is stepped over at once (one wait per pass, not one per gap:
        with many writers at work, gaps come faster than their transactions end)."""
        expected = position + 1
        for i, row in enumerate(rows):
            if row.global_position != expected:
                if self.gaps is None or expected > self.gaps.upto:
                    self.gaps = Gaps(rows[-1].global_position, me, time.monotonic())
                if oldest_running < self.gaps.below:
                    if not self.gaps.reported and time.monotonic() - self.gaps.since > GAP_PATIENCE_SECONDS:
                        self.gaps = replace(self.gaps, reported=True)
                        log.warning("relay %s: waiting %.0fs at position %d for transaction %d and any other older "
                                    "than %d to end (one of them may still commit an event there); a long write "
                                    "transaction in this PostgreSQL server holds publishing back", self.ctx.name,
                                    time.monotonic() - self.gaps.since, expected, oldest_running, self.gaps.below)
                    return rows[:i]
            expected = row.global_position + 1
        return rows

    async def _send(self, rows: list) -> None:
        """One record batch per partition (keyed by household, so its events stay in order)."""
        assert self.producer is not None
        partitions = len(await self.producer.partitions_for(self.topic))
        if partitions != self.settings.kafka_partitions:
            # Keys would land on other partitions than before: a household's events out of order.
            raise TopicMisconfigured(f"topic {self.topic} has {partitions} partitions, FANGPIN_KAFKA_PARTITIONS "
                                     f"says {self.settings.kafka_partitions}")
        batches: dict[int, tuple] = {}  # partition -> (batch builder, event id of its first record)
        sent = []
        for row in rows:
            key = (row.partition_key or row.household_id or row.stream_id).encode()
            partition = partition_of(key, partitions)
            headers = [("event_id", row.event_id.encode()), ("event_type", row.event_type.encode())]
            if row.traceparent:
                headers.append(("traceparent", row.traceparent.encode()))
            value = envelope_json(row)
            builder = batches.get(partition)
            if builder is None or builder[0].append(timestamp=None, key=key, value=value, headers=headers) is None:
                if builder is not None:  # full: send it and start the next
                    sent.append((partition, builder[1], await self.producer.send_batch(builder[0], self.topic, partition=partition)))
                builder = batches[partition] = (self.producer.create_batch(), row.event_id)
                if builder[0].append(timestamp=None, key=key, value=value, headers=headers) is None:
                    raise ValueError(f"event {row.event_id} is larger than a whole record batch")
        for partition, (builder, first_event) in batches.items():
            sent.append((partition, first_event, await self.producer.send_batch(builder, self.topic, partition=partition)))
        acked = await asyncio.wait_for(asyncio.gather(*(future for *_, future in sent)), timeout=30)
        for (partition, first_event, _), meta in zip(sent, acked):
            self.anchors.setdefault(partition, (meta.offset, first_event))

    async def _create_cursor(self, session) -> None:
        await session.execute(pg_insert(relay_cursor).values(topic=self.topic, position=0).on_conflict_do_nothing())

    async def check_broker_history(self) -> bool:
        """Publish the whole store again if the broker lost what was published. True if it did.

        The topic is created first if the broker does not know it (no client creates topics by
        asking about them, see runtime.kafka): a broker that came back empty then gets the topic
        with its configured partitions before anything is published to it again."""
        # Its dead-letter topic too: a service nobody consumes yet still has one, ready for its first consumer.
        created = await ensure_topics(self.settings, [self.topic, dead_letter_topic(self.topic)])
        lost = await self._broker_lost_history(topic_was_missing=self.topic in created)
        self._history_checked = True
        if not lost:
            return False
        async with self.ctx.sessions() as session, session.begin():
            published = await session.scalar(
                sa.select(relay_cursor.c.position).where(relay_cursor.c.topic == self.topic).with_for_update()
            )
            await session.execute(sa.update(relay_cursor).where(relay_cursor.c.topic == self.topic).values(position=0))
        self.anchors.clear()
        self.gaps = None
        self._silent_checks = 0
        RELAY_REPUBLISHES.labels(self.ctx.name).inc()
        log.warning(
            "relay %s: the broker has lost topic %s's history; publishing the store again from position 1 (was at %s)",
            self.ctx.name, self.topic, published,
        )
        return True

    def _nothing_found(self, nothing: bool) -> bool:
        """A broker that answers nothing where records should be has lost them, or is only slow
        under load: lost once it has answered nothing twice running."""
        self._silent_checks = self._silent_checks + 1 if nothing else 0
        return self._silent_checks >= 2

    async def _broker_lost_history(self, topic_was_missing: bool = False) -> bool:
        async with self.ctx.sessions() as session:
            any_published = await session.scalar(
                sa.select(relay_cursor.c.position > 0).where(relay_cursor.c.topic == self.topic)
            )
        if not any_published:
            self.anchors.clear()
            return False
        if topic_was_missing:
            return True
        # It needs the first record at each anchor, not a partition's worth of them.
        reader = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap, enable_auto_commit=False,
                                  max_partition_fetch_bytes=64 * 1024, fetch_max_bytes=1024 * 1024)
        await reader.start()
        try:
            await reader.topics()  # fetches fresh metadata
            partitions = reader.partitions_for_topic(self.topic) or set()
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            if not tps or not set(self.anchors) <= partitions:
                return True  # the topic is gone, or was made again with other partitions
            reader.assign(tps)
            if not self.anchors:
                # No anchors yet in this process: learn them from the start of each partition.
                await reader.seek_to_beginning(*tps)
                found = await _first_records(reader, tps, timeout_ms=3000)
                for tp, (offset, event_id) in found.items():
                    self.anchors[tp.partition] = (offset, event_id)
                return self._nothing_found(not found)
            for partition, (offset, _) in self.anchors.items():
                reader.seek(TopicPartition(self.topic, partition), offset)
            anchored = [TopicPartition(self.topic, p) for p in self.anchors]
            found = await _first_records(reader, anchored, timeout_ms=3000)
            for tp, record in found.items():
                if record != self.anchors[tp.partition]:
                    log.info("relay %s: anchor %s@%s is gone (found %s)", self.ctx.name, tp, self.anchors[tp.partition], record)
                    return True
            return self._nothing_found(not found)
        finally:
            await stop_quietly(reader, f"relay {self.ctx.name}")


async def _first_records(reader: AIOKafkaConsumer, tps: list[TopicPartition], timeout_ms: int) -> dict:
    """The (offset, event_id) of the first record at each partition's position, for those that have one."""
    found: dict[TopicPartition, tuple[int, str]] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_ms / 1000
    while len(found) < len(tps) and loop.time() < deadline:
        pending = [tp for tp in tps if tp not in found]
        remaining = max(1, int((deadline - loop.time()) * 1000))
        batch = await reader.getmany(*pending, timeout_ms=min(remaining, 500), max_records=len(pending) * 50)
        for tp, records in batch.items():
            if records and tp not in found:
                headers = dict(records[0].headers or ())
                found[tp] = (records[0].offset, headers.get("event_id", b"").decode())
                reader.pause(tp)
    return found

