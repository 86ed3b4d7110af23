"""Kafka clients configured one way for every service: producer, consumer, topic creation.

Topics are created here and nowhere else, with the configured partition count. aiokafka asks for
topic metadata with `allow_auto_topic_creation` on, so a broker that came back empty (the embedded
broker keeps topics in memory) would create any topic a client merely asks about, with the broker's
default partition count — and the relay's keys would land on other partitions than before. Every
client of this process asks without it (`_never_auto_create`); a missing topic is an error the
relay and the consumer answer by calling `ensure_topics`.
"""
from __future__ import annotations

import asyncio
import logging
from functools import lru_cache
from typing import AsyncIterator

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.partitioner import murmur2
from aiokafka.protocol import metadata as _metadata

from contracts.topics import SERVICES, dead_letter_topic, events_topic
from runtime.settings import Settings
from runtime.tasks import stray_cancellation

log = logging.getLogger(__name__)


def make_producer(settings: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=settings.kafka_idempotence,
        linger_ms=5,
        max_batch_size=1024 * 1024,
        request_timeout_ms=15_000,
        retry_backoff_ms=200,
    )


def make_consumer(settings: Settings, topics: list[str], group_id: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_interval_ms=settings.consumer_max_poll_interval_ms,
        isolation_level="read_uncommitted",
    )


async def stop_quietly(client, what: str) -> None:
    """Stop a client that may already be broken: nothing more to release if stopping fails.
    aiokafka's stop() lets its own tasks' cancellation out; that is not this task being cancelled."""
    try:
        await client.stop()
    except asyncio.CancelledError:
        if not stray_cancellation():
            raise
    except Exception:
        log.debug("%s: client stop failed", what, exc_info=True)


def all_topics(settings: Settings) -> list[str]:
    topics = [events_topic(s, settings.topic_prefix) for s in SERVICES]
    return topics + [dead_letter_topic(t) for t in topics]


class TopicMisconfigured(KafkaError):
    """A topic exists with another partition count than FANGPIN_KAFKA_PARTITIONS: publishing to it
    would send a household's events to another partition than before, out of order."""


async def ensure_topics(settings: Settings, topics: list[str] | None = None) -> list[str]:
    """Create the topics that do not exist yet; returns the ones this call created. A topic found
    with another partition count raises TopicMisconfigured (never silently re-keyed)."""
    wanted = topics if topics is not None else all_topics(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        present = [t for t in wanted if t in existing]
        if present:
            wrong = {d["topic"]: len(d["partitions"]) for d in await admin.describe_topics(present)
                     if d["topic"] in present and len(d["partitions"]) != settings.kafka_partitions}
            if wrong:
                raise TopicMisconfigured(
                    f"topics {wrong} have another partition count than FANGPIN_KAFKA_PARTITIONS={settings.kafka_partitions}; "
                    "set it to the topics' count, or re-create the topics (the relays publish the stores again)")
        missing = [t for t in wanted if t not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(t, num_partitions=settings.kafka_partitions, replication_factor=settings.kafka_replication)
                    for t in missing
                ]
            )
            for topic, code, *_ in response.topic_errors:
                if code not in (0, TopicAlreadyExistsError.errno):
                    raise RuntimeError(f"could not create topic {topic}: error code {code}")
        return missing
    finally:
        await admin.close()


async def read_from_start(settings: Settings, topics: list[str], batch: int = 1000,
                          idle_ms: int = 500) -> AsyncIterator[list[ConsumerRecord]]:
    """Every record of `topics` from the first offset on, in batches (each partition in its order),
    until a fetch of `idle_ms` brings nothing more; with no consumer group, so reading changes no
    one's offsets. For rebuilding what a service mirrors from the topics it consumes. (Not ended
    at the end offsets the broker reports: Tansu reports the last record's offset there, not the
    next one's, so a partition holding one record looks empty.)"""
    reader = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                              isolation_level="read_uncommitted", max_poll_records=batch)
    await reader.start()
    try:
        known = await reader.topics()  # also fetches their partitions
        if missing := [topic for topic in topics if topic not in known]:
            raise RuntimeError(f"no topic {', '.join(missing)} on {settings.kafka_bootstrap}")
        partitions = [TopicPartition(topic, p) for topic in topics for p in sorted(reader.partitions_for_topic(topic))]
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        while found := await reader.getmany(timeout_ms=idle_ms, max_records=batch):
            yield [record for part in found.values() for record in part]
    finally:
        await stop_quietly(reader, "topic reader")


@lru_cache(maxsize=1 << 16)
def partition_of(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2, as the Java client): the relay's choice of partition,
    and how intake groups a batch's clues by it. Cached, since keys repeat per household."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def _never_auto_create() -> None:
    """Make aiokafka's metadata requests ask the broker not to create the topics they name."""
    if getattr(_metadata.MetadataRequest, "_fangpin_no_auto_create", False):
        return
    original = _metadata.MetadataRequest.__init__

    def __init__(self, topics=None, allow_auto_topic_creation=None):
        original(self, topics, False if allow_auto_topic_creation is None else allow_auto_topic_creation)

    _metadata.MetadataRequest.__init__ = __init__
    _metadata.MetadataRequest._fangpin_no_auto_create = True


_never_auto_create()
