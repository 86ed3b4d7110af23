"""The outbox relay: publishes the store's unpublished events to the service's topic.

Rows are chosen by `published_at is null`, never by position (positions commit out of order).
The broker's history is watched through anchors — the event id found at a known offset of each
partition. An anchor that has gone means the broker lost its log (the embedded broker keeps topics
in memory), and the whole store is published again; consumers' inboxes absorb the repeats.
"""
from __future__ import annotations

import asyncio
import logging

import orjson
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from sqlalchemy.dialects import postgresql as pg

from runtime.kafka import ensure_topics, make_producer
from runtime.service import ServiceContext
from runtime.tables import ENVELOPE_COLUMNS, events
from runtime.tasks import sleep_unless_stopped
from runtime.telemetry import EVENTS_PUBLISHED, RELAY_REPUBLISHES

log = logging.getLogger(__name__)


# JSON columns read as their text, spliced into the message as is (no decode and encode again).
_AS_STORED = [sa.cast(c, sa.Text).label(c.name) if c.name in ("actor", "payload") else c for c in ENVELOPE_COLUMNS]

_NAMES = [str(c.name) for c in ENVELOPE_COLUMNS]  # plain str: orjson refuses SQLAlchemy's quoted_name keys


def envelope_json(row) -> bytes:
    """The message value: the envelope as EventEnvelope.to_json would write it, built from the row."""
    body = {name: getattr(row, name) for name in _NAMES}
    body["actor"], body["payload"] = orjson.Fragment(row.actor), orjson.Fragment(row.payload)
    return orjson.dumps(body, default=str, option=orjson.OPT_UTC_Z)  # default: the driver's UUID type


class OutboxRelay:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.topic = ctx.topic
        self.producer: AIOKafkaProducer | None = None
        self.anchors: dict[int, tuple[int, str]] = {}  # partition -> (offset, event_id)
        self.connected = False
        self._history_checked = False

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.2
        last_check = 0.0
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                try:
                    await self._connect()
                    if not self._history_checked or loop.time() - last_check > self.settings.relay_broker_check_seconds:
                        await self.check_broker_history()
                        last_check = loop.time()
                    published = await self.publish_pending()
                    backoff = 0.2
                    if published == 0:
                        await sleep_unless_stopped(stop, self.settings.relay_idle_seconds)
                except Exception as exc:  # nothing may end the relay silently: log, wait, retry
                    if isinstance(exc, (KafkaError, OSError, asyncio.TimeoutError)):
                        log.warning("relay %s: broker unavailable (%s); retrying in %.1fs", self.ctx.name, exc, backoff)
                        self._history_checked = False  # the broker may come back empty
                    else:
                        log.exception("relay %s: publishing failed; retrying in %.1fs", self.ctx.name, backoff)
                    await self._disconnect()
                    await sleep_unless_stopped(stop, backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            await self._disconnect()

    async def _connect(self) -> None:
        if self.producer is not None:
            return
        await ensure_topics(self.settings, [self.topic])
        producer = make_producer(self.settings)
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self.producer, self.connected = producer, True

    async def _disconnect(self) -> None:
        producer, self.producer, self.connected = self.producer, None, False
        if producer is not None:
            try:
                await producer.stop()
            except Exception:  # already broken; nothing more to release
                log.debug("relay %s: producer stop failed", self.ctx.name, exc_info=True)

    async def publish_pending(self) -> int:
        """Publish one batch of unpublished events, in store order; returns how many."""
        assert self.producer is not None
        async with self.ctx.sessions() as session, session.begin():
            rows = (
                await session.execute(
                    sa.select(events.c.global_position, *_AS_STORED)
                    .where(events.c.published_at.is_(None))
                    .order_by(events.c.global_position)
                    .limit(self.settings.relay_batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            sends = []
            for row in rows:
                headers = [("event_id", str(row.event_id).encode()), ("event_type", row.event_type.encode())]
                if row.traceparent:
                    headers.append(("traceparent", row.traceparent.encode()))
                key = (row.household_id or row.stream_id).encode()
                sends.append(await self.producer.send(self.topic, envelope_json(row), key=key, headers=headers))
            acked = await asyncio.wait_for(asyncio.gather(*sends), timeout=30)
            for row, meta in zip(rows, acked):
                self.anchors.setdefault(meta.partition, (meta.offset, str(row.event_id)))
            await session.execute(
                sa.update(events)
                .where(events.c.global_position == sa.any_(sa.bindparam("published", [r.global_position for r in rows],
                                                                        type_=pg.ARRAY(sa.BigInteger))))
                .values(published_at=sa.func.now())
            )
        EVENTS_PUBLISHED.labels(self.ctx.name).inc(len(rows))
        return len(rows)

    async def check_broker_history(self) -> bool:
        """Publish the whole store again if the broker lost what was published. True if it did."""
        lost = await self._broker_lost_history()
        self._history_checked = True
        if not lost:
            return False
        async with self.ctx.sessions() as session, session.begin():
            result = await session.execute(
                sa.update(events).where(events.c.published_at.is_not(None)).values(published_at=None)
            )
        self.anchors.clear()
        RELAY_REPUBLISHES.labels(self.ctx.name).inc()
        log.warning(
            "relay %s: the broker has lost topic %s's history; publishing all %d stored events again",
            self.ctx.name, self.topic, result.rowcount,
        )
        return True

    async def _broker_lost_history(self) -> bool:
        async with self.ctx.sessions() as session:
            any_published = await session.scalar(
                sa.select(sa.literal(1)).where(events.c.published_at.is_not(None)).limit(1)
            )
        if not any_published:
            self.anchors.clear()
            return False
        reader = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap, enable_auto_commit=False)
        await reader.start()
        try:
            await reader.topics()  # fetches fresh metadata
            partitions = reader.partitions_for_topic(self.topic) or set()
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            if not tps:
                return True
            reader.assign(tps)
            if not self.anchors:
                # No anchors yet in this process: learn them from the start of each partition.
                await reader.seek_to_beginning(*tps)
                found = await _first_records(reader, tps, timeout_ms=1500)
                for tp, (offset, event_id) in found.items():
                    self.anchors[tp.partition] = (offset, event_id)
                return not found
            for partition, (offset, _) in self.anchors.items():
                reader.seek(TopicPartition(self.topic, partition), offset)
            anchored = [TopicPartition(self.topic, p) for p in self.anchors]
            found = await _first_records(reader, anchored, timeout_ms=3000)
            for tp in anchored:
                expected = self.anchors[tp.partition]
                if found.get(tp) != expected:
                    log.info("relay %s: anchor %s@%s is gone (found %s)", self.ctx.name, tp, expected, found.get(tp))
                    return True
            return False
        finally:
            await reader.stop()


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

