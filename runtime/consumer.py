"""The consumer loop: one polled batch is applied in one transaction together with the inbox rows
of its event ids; offsets are committed only after that transaction commits.

A redelivered event finds its id in the inbox and changes nothing. A failed commit means "this
batch comes again" (the inbox absorbs it). A batch that fails is retried one message at a time;
a message that fails `consumer_attempts_before_dlq` times goes to `<topic>.dlq` and the loop goes on.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Iterable
from uuid import UUID

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from opentelemetry.trace import SpanKind
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from contracts.envelope import Actor, EventEnvelope
from contracts.topics import dead_letter_topic, events_topic
from runtime.bulk import insert_rows
from runtime.db import database_answers, describe_error, is_database_outage
from runtime.eventstore import EventMetadata
from runtime.kafka import ensure_topics, make_consumer, make_producer, stop_quietly
from runtime.service import EventHandler, ServiceContext, UnitOfWork
from runtime.tables import inbox
from runtime.tasks import Health, sleep_unless_stopped, stray_cancellation
from runtime.telemetry import EVENTS_CONSUMED, current_traceparent, span_from_traceparent

log = logging.getLogger(__name__)
COMMIT_TIMEOUT_SECONDS = 30.0
_FRESH_IN_INBOX = ("ON CONFLICT (event_id) DO UPDATE SET outcome = EXCLUDED.outcome, replayed_at = now() "
                   "WHERE inbox.outcome = 'dead_lettered' RETURNING event_id")


class EventConsumer:
    def __init__(self, ctx: ServiceContext, consumes: Iterable[str], handlers: dict[str, EventHandler], group_id: str | None = None) -> None:
        self.ctx, self.settings, self.handlers = ctx, ctx.settings, handlers
        self.topics = [events_topic(s, ctx.settings.topic_prefix) for s in consumes]
        self.group_id = group_id or f"{ctx.settings.topic_prefix}fangpin.{ctx.name}"
        self.consumer: AIOKafkaConsumer | None = None
        self.dlq_producer: AIOKafkaProducer | None = None
        self.connected = False
        self.health = Health()
        self.lag = 0  # records on the broker not yet consumed (as of the last fetch)
        self._next_offsets: dict[TopicPartition, int] = {}
        self._topics_checked = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop`. Nothing ends this loop but `stop`: the broker or the database
        going away, and anything unexpected, is logged and retried with backoff."""
        if not self.topics:
            self.health.set("idle")
            await stop.wait()
            return
        backoff = 0.5
        try:
            while not stop.is_set():
                try:
                    await self._connect()
                    await self._check_topics()
                    batch = await self.consumer.getmany(timeout_ms=500, max_records=self.settings.consumer_max_records)
                    self._note_lag(batch)
                    records = [r for tp in sorted(batch, key=lambda t: (t.topic, t.partition)) for r in batch[tp]]
                    if not records:
                        self.health.set("running")
                        continue
                    try:
                        await self.apply(records)
                    except DatabaseUnavailable as exc:
                        # Not the messages' fault: read them again from the first one, later.
                        log.warning("consumer %s: database unavailable (%s); retrying in %.1fs", self.ctx.name, exc, backoff)
                        self.health.set("waiting for the database", exc)
                        for tp, tp_records in batch.items():
                            self.consumer.seek(tp, tp_records[0].offset)
                        await sleep_unless_stopped(stop, backoff)
                        backoff = min(backoff * 2, 5.0)
                        continue
                    await self._commit(batch)
                    self.health.set("running")
                    backoff = 0.5
                except (KafkaError, OSError, asyncio.TimeoutError) as exc:
                    log.warning("consumer %s: broker unavailable (%r); retrying in %.1fs", self.ctx.name, exc, backoff)
                    self.health.set("waiting for the broker", exc)
                    await self._disconnect()
                    await sleep_unless_stopped(stop, backoff)
                    backoff = min(backoff * 2, 5.0)
                except (Exception, asyncio.CancelledError) as exc:  # a bug or a surprise: the batch comes again
                    if isinstance(exc, asyncio.CancelledError) and not stray_cancellation():
                        raise  # this task is being cancelled: the service stops
                    log.exception("consumer %s: unexpected failure; reconnecting in %.1fs", self.ctx.name, backoff)
                    self.health.set("retrying", exc)
                    await self._disconnect()
                    await sleep_unless_stopped(stop, backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            self.health.set("stopped")
            await self._disconnect()

    async def _check_topics(self) -> None:
        """Now and then, make sure the topics exist: a broker that came back empty knows none of
        them (and creates none by itself, see runtime.kafka). Topics created here mean the broker
        lost its history: the group's offsets went with it, so read from the beginning again; the
        relays publish their stores again and the inbox absorbs what was applied before."""
        now = asyncio.get_running_loop().time()
        if now - self._topics_checked < self.settings.broker_check_seconds:
            return
        created = await ensure_topics(self.settings, self.topics + [dead_letter_topic(t) for t in self.topics])
        self._topics_checked = now
        if created:
            log.warning("consumer %s: the broker had lost topics %s (created again); reading from the beginning",
                        self.ctx.name, created)
            await self._disconnect()
            await self._connect()

    def _note_lag(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Records on the broker not yet consumed, by the highwater marks the last fetches brought."""
        for tp, records in batch.items():
            if records:
                self._next_offsets[tp] = records[-1].offset + 1
        lag = 0
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                lag += max(0, highwater - self._next_offsets.get(tp, 0))
        self.lag = lag

    async def _connect(self) -> None:
        if self.consumer is not None:
            return
        await ensure_topics(self.settings, self.topics + [dead_letter_topic(t) for t in self.topics])
        consumer = make_consumer(self.settings, self.topics, self.group_id)
        producer = make_producer(self.settings)
        try:
            await consumer.start()
            await producer.start()
        except BaseException:
            await consumer.stop()
            await producer.stop()
            raise
        self.consumer, self.dlq_producer, self.connected = consumer, producer, True
        self._next_offsets = {}
        self._topics_checked = asyncio.get_running_loop().time()  # just ensured

    async def _disconnect(self) -> None:
        consumer, producer = self.consumer, self.dlq_producer
        self.consumer, self.dlq_producer, self.connected = None, None, False
        for client in (consumer, producer):
            if client is not None:
                await stop_quietly(client, f"consumer {self.ctx.name}")

    async def _commit(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items() if records}
        try:
            # A broker that restarted may never answer a commit of the old group: give up, reconnect
            # (asyncio.TimeoutError), and the batch comes again.
            await asyncio.wait_for(self.consumer.commit(offsets), timeout=COMMIT_TIMEOUT_SECONDS)
        except CommitFailedError as exc:
            # The group moved on (rebalance); the batch comes again and the inbox absorbs it.
            log.warning("consumer %s: offset commit failed (%s); the batch will be redelivered", self.ctx.name, exc)

    async def apply(self, records: list[ConsumerRecord]) -> None:
        """Apply records in one transaction; on failure, one by one with retries and the DLQ."""
        try:
            async with self.ctx.sessions() as session, session.begin():
                await self._apply_in(session, records)
        except Exception as exc:
            await self._raise_if_database_down(exc)
            log.warning("consumer %s: batch of %d failed; applying one by one", self.ctx.name, len(records), exc_info=True)
            for record in records:
                await self._apply_alone(record)

    async def _apply_alone(self, record: ConsumerRecord) -> None:
        error: Exception | None = None
        for attempt in range(1, self.settings.consumer_attempts_before_dlq + 1):
            try:
                async with self.ctx.sessions() as session, session.begin():
                    await self._apply_in(session, [record])
                return
            except Exception as exc:
                await self._raise_if_database_down(exc)
                error = exc
                log.warning("consumer %s: %s@%s offset %s failed (attempt %d): %s",
                            self.ctx.name, record.topic, record.partition, record.offset, attempt, exc)
                await asyncio.sleep(self.settings.consumer_retry_backoff_seconds * attempt)
        await self._dead_letter(record, error)

    def _read(self, record: ConsumerRecord) -> tuple[UUID, str, EventEnvelope | None]:
        """The event's id and type, and its envelope decoded only if this service acts on its type:
        the relay's headers name both, so an event it only records as ignored costs no parse."""
        headers = dict(record.headers or ())
        event_type, event_id = headers.get("event_type", b"").decode(), headers.get("event_id")
        if event_type and event_id and event_type not in self.handlers and event_type not in self.ctx.projections.mirrors:
            return UUID(event_id.decode()), event_type, None
        envelope = EventEnvelope.from_json(record.value)
        return envelope.event_id, envelope.event_type, envelope

    async def _apply_in(self, session, records: list[ConsumerRecord]) -> None:
        read = [(record, *self._read(record)) for record in records]
        mirrors = self.ctx.projections.mirrors
        rows = [
            {
                "event_id": event_id, "topic": rec.topic, "partition": rec.partition, "offset": rec.offset,
                "event_type": event_type,
                "outcome": "applied" if event_type in self.handlers or event_type in mirrors else "ignored",
            }
            for rec, event_id, event_type, _ in read
        ]
        rows = list({row["event_id"]: row for row in reversed(rows)}.values())[::-1]  # an event once per statement
        # A new event id, or one that was dead-lettered and comes again (replayed, or redelivered
        # after the cause was fixed): apply it. Any other known event id changes nothing. (One JSON
        # parameter: a VALUES list of a few hundred rows cost more to compile than to run.)
        inserted = await insert_rows(session, inbox, rows, _FRESH_IN_INBOX)
        fresh = {row[0] for row in inserted}
        EVENTS_CONSUMED.labels(self.ctx.name, "duplicate").inc(len({event_id for _, event_id, _, _ in read} - fresh))
        # In the batch's order, set-based: consecutive mirrored events go to the mirrors together, and
        # consecutive events of one handler to it together (a run); a mirrored event waits for the
        # run before it (its handler reads the tables as they were), a handled one for the mirrors
        # before it (they are written first).
        mirrored: list[EventEnvelope] = []
        run: list[tuple[ConsumerRecord, EventEnvelope]] = []
        for record, event_id, _, envelope in read:
            if event_id not in fresh:
                continue
            fresh.discard(event_id)  # the same event twice in one batch is applied once
            handler = self.handlers.get(envelope.event_type) if envelope else None
            if envelope is None or (handler is None and envelope.event_type not in mirrors):  # nothing to do here
                EVENTS_CONSUMED.labels(self.ctx.name, "ignored").inc()
                continue
            if envelope.event_type in mirrors:
                if run:
                    await self._handle(session, run)
                    run = []
                mirrored.append(envelope)
            if handler is None:
                continue
            if mirrored:
                await self._mirror(session, mirrored)
                mirrored = []
            if run and handler is not self.handlers[run[0][1].event_type]:
                await self._handle(session, run)
                run = []
            run.append((record, envelope))
        if mirrored:
            await self._mirror(session, mirrored)
        if run:
            await self._handle(session, run)

    async def _mirror(self, session, envelopes: list[EventEnvelope]) -> None:
        await self.ctx.projections.mirror(session, envelopes)
        EVENTS_CONSUMED.labels(self.ctx.name, "applied").inc(sum(e.event_type not in self.handlers for e in envelopes))

    async def _handle(self, session, run: list[tuple[ConsumerRecord, EventEnvelope]]) -> None:
        """One handler, a run of consecutive events of its types, in the batch's transaction."""
        record, first = run[0]
        headers = dict(record.headers or ())
        traceparent = headers.get("traceparent", b"").decode() or first.traceparent
        with span_from_traceparent(
            f"consume {first.event_type}" + (f" (+{len(run) - 1})" if len(run) > 1 else ""), traceparent,
            SpanKind.CONSUMER, **{"messaging.destination": record.topic, "fangpin.service": self.ctx.name,
                                  "fangpin.event_id": str(first.event_id), "fangpin.events": len(run)},
        ):
            # The first event's cause; a handler names each event's own where a run holds several.
            meta = EventMetadata(
                actor=Actor(kind="system", id=f"fangpin-{self.ctx.name}", role="service"),
                correlation_id=first.correlation_id,
                causation_id=first.event_id,
                traceparent=current_traceparent(),
            )
            await self.handlers[first.event_type](UnitOfWork(self.ctx, session, meta), [e for _, e in run])
        EVENTS_CONSUMED.labels(self.ctx.name, "applied").inc(len(run))

    async def _raise_if_database_down(self, exc: Exception) -> None:
        """A failure is the database's, not the message's, when it says so (runtime.db) or when the
        database does not answer a plain query right after it (an error of an odd shape while it
        starts or stops)."""
        if is_database_outage(exc) or not await database_answers(self.ctx.engine):
            raise DatabaseUnavailable(describe_error(exc)) from exc

    async def _dead_letter(self, record: ConsumerRecord, error: Exception | None) -> None:
        reason = describe_error(error)[:2000]  # kept in the inbox and the letter's header: no database values
        headers = list(record.headers or ()) + [
            ("dlq_error", reason.encode()),
            ("dlq_source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
            ("dlq_consumer", self.ctx.name.encode()),
        ]
        await self.dlq_producer.send_and_wait(dead_letter_topic(record.topic), record.value, key=record.key, headers=headers)
        event_id = event_id_of(record.value, record.headers)
        if event_id is not None:
            try:
                async with self.ctx.sessions() as session, session.begin():
                    await session.execute(
                        pg_insert(inbox)
                        .values(event_id=event_id, topic=record.topic, partition=record.partition, offset=record.offset,
                                outcome="dead_lettered", error=reason)
                        .on_conflict_do_nothing(index_elements=["event_id"])
                    )
            except Exception as exc:
                # The dead letter is on its topic already; unrecorded, the message comes again.
                await self._raise_if_database_down(exc)
                raise
        EVENTS_CONSUMED.labels(self.ctx.name, "dead_lettered").inc()
        log.error("consumer %s: %s@%s offset %s sent to %s: %s", self.ctx.name, record.topic, record.partition,
                  record.offset, dead_letter_topic(record.topic), reason)


class DatabaseUnavailable(Exception):
    """The database cannot take the batch now: it waits for it instead of going to the DLQ."""


def event_id_of(value: bytes, headers) -> UUID | None:
    """The event id of a message, from its body or else its header; None for an unreadable one."""
    try:
        return EventEnvelope.from_json(value).event_id
    except Exception:
        pass
    raw = dict(headers or ()).get("event_id")
    try:
        return UUID(raw.decode()) if raw else None
    except ValueError:
        return None
