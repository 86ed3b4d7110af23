"""Kafka clients configured one way for every service: producer, consumer, topic creation."""
from __future__ import annotations

import logging
from functools import lru_cache

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import murmur2

from contracts.topics import SERVICES, dead_letter_topic, events_topic
from runtime.settings import Settings

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


def all_topics(settings: Settings) -> list[str]:
    topics = [events_topic(s, settings.topic_prefix) for s in SERVICES]
    return topics + [dead_letter_topic(t) for t in topics]


async def ensure_topics(settings: Settings, topics: list[str] | None = None) -> list[str]:
    """Create the topics that do not exist yet; returns the ones this call created."""
    wanted = topics if topics is not None else all_topics(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
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


@lru_cache(maxsize=1 << 16)
def partition_of(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2, as the Java client): the relay's choice of partition,
    and how intake groups a batch's clues by it. Cached, since keys repeat per household."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
