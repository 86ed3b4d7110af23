"""Dead letters: what a service's consumer could not apply, and sending it again.

A message that keeps failing goes to `<topic>.dlq` and its event id into the inbox as
`dead_lettered` (runtime.consumer). The topic alone does not tell what became of it since: a
dead letter written just before the database went away may have been applied when the message
came again, and a replayed one may have been applied at last. `GET /v1/dead-letters` reads the
service's dead-letter topics and says, from its inbox, which of them still wait; replaying one
sends the original message to its topic again, where the consumer applies it (and marks the
inbox row `replayed_at`) or dead-letters it once more. `fangpin dlq list|replay` calls these.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timezone
from uuid import UUID

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from contracts.envelope import EventEnvelope
from contracts.topics import dead_letter_topic
from runtime.auth import Principal, require
from runtime.consumer import event_id_of
from runtime.kafka import make_producer
from runtime.settings import Settings
from runtime.tables import inbox

router = APIRouter(prefix="/v1", tags=["operations"])
_DLQ_HEADERS = ("dlq_error", "dlq_source", "dlq_consumer")


@dataclass(frozen=True)
class DeadLetter:
    topic: str  # the dead-letter topic
    offset: int
    partition: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int

    def header(self, name: str) -> str | None:
        raw = dict(self.headers).get(name)
        return raw.decode(errors="replace") if raw is not None else None

    @property
    def event_id(self) -> UUID | None:
        return event_id_of(self.value, self.headers)

    @property
    def event_type(self) -> str | None:
        try:
            return EventEnvelope.from_json(self.value).event_type
        except Exception:
            return self.header("event_type")

    @property
    def source_topic(self) -> str:
        return self.topic.removesuffix(".dlq")


def state_of(letter: DeadLetter, outcome: str | None, replayed_at: datetime | None) -> str:
    """What became of a dead letter, from its event's inbox row:
    `dead` (waits for a replay), `replayed` (applied when sent again), `applied_later` (applied when
    the message came again by itself: this copy is stale), `not_recorded` (no inbox row: its
    recording failed and the message will come again), `unreadable` (no event id to follow)."""
    if letter.event_id is None:
        return "unreadable"
    if outcome is None:
        return "not_recorded"
    if outcome == "dead_lettered":
        return "dead"
    return "replayed" if replayed_at is not None else "applied_later"


async def read_dead_letters(settings: Settings, consumed_topics: list[str], wait_seconds: float = 3.0) -> list[DeadLetter]:
    """Every record of the dead-letter topics of `consumed_topics`, oldest first per partition."""
    topics = [dead_letter_topic(t) for t in consumed_topics]
    if not topics:
        return []
    reader = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        await reader.topics()
        tps = [TopicPartition(t, p) for t in topics for p in sorted(reader.partitions_for_topic(t) or ())]
        if not tps:
            return []
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        letters: list[DeadLetter] = []
        positions = {tp: 0 for tp in tps}
        deadline = asyncio.get_running_loop().time() + wait_seconds

        def behind(tp: TopicPartition) -> bool:
            # The high watermark fetch responses bring (Tansu's ListOffsets answers a batch's first offset + 1).
            highwater = reader.highwater(tp)
            return highwater is None or positions[tp] < highwater

        while any(behind(tp) for tp in tps) and asyncio.get_running_loop().time() < deadline:
            batch = await reader.getmany(timeout_ms=300)
            for tp, records in batch.items():
                for r in records:
                    letters.append(DeadLetter(r.topic, r.offset, r.partition, r.key, r.value,
                                              tuple((k, v) for k, v in (r.headers or ())), r.timestamp))
                    positions[tp] = r.offset + 1
        return letters
    finally:
        await reader.stop()


async def inbox_rows(sessions, event_ids: list[UUID]) -> dict[UUID, tuple[str, datetime | None]]:
    if not event_ids:
        return {}
    async with sessions() as session:
        rows = await session.execute(sa.select(inbox.c.event_id, inbox.c.outcome, inbox.c.replayed_at)
                                     .where(inbox.c.event_id.in_(event_ids)))
        return {r.event_id: (r.outcome, r.replayed_at) for r in rows}


async def replay(settings: Settings, letters: list[DeadLetter]) -> None:
    """Send each letter's original message to its topic again (same key, so the same partition)."""
    producer = make_producer(settings)
    await producer.start()
    try:
        for letter in letters:
            headers = [(k, v) for k, v in letter.headers if k not in _DLQ_HEADERS]
            headers.append(("dlq_replayed_from", f"{letter.topic}/{letter.partition}/{letter.offset}".encode()))
            await producer.send_and_wait(letter.source_topic, letter.value, key=letter.key, headers=headers)
    finally:
        await producer.stop()


class DeadLetterView(BaseModel):
    event_id: UUID | None
    event_type: str | None
    state: str = Field(description="dead, replayed, applied_later, not_recorded or unreadable")
    source: str | None = Field(description="topic/partition/offset the message was consumed from")
    error: str | None
    consumer: str | None
    dead_lettered_at: datetime
    dead_letter: str = Field(description="topic/partition/offset of this copy")


class DeadLetterList(BaseModel):
    items: list[DeadLetterView]
    counts: dict[str, int]


class ReplayRequest(BaseModel):
    event_ids: list[UUID] | None = Field(None, description="which dead letters to send again; left out: every one still dead")


class ReplayOutcome(BaseModel):
    replayed: list[UUID]
    skipped: dict[str, str] = Field(description="event id -> why it was not sent again")


async def _views(request: Request) -> list[tuple[DeadLetter, DeadLetterView]]:
    state = request.app.state
    letters = await read_dead_letters(state.context.settings, state.consumer.topics)
    rows = await inbox_rows(state.context.sessions, list({l.event_id for l in letters if l.event_id}))
    views = []
    for letter in letters:
        outcome, replayed_at = rows.get(letter.event_id, (None, None))
        views.append((letter, DeadLetterView(
            event_id=letter.event_id, event_type=letter.event_type,
            state=state_of(letter, outcome, replayed_at), source=letter.header("dlq_source"),
            error=letter.header("dlq_error"), consumer=letter.header("dlq_consumer"),
            dead_lettered_at=datetime.fromtimestamp(letter.timestamp_ms / 1000, timezone.utc),
            dead_letter=f"{letter.topic}/{letter.partition}/{letter.offset}",
        )))
    return views


_OPERATOR = require("administrator", "operator", kinds=("staff", "system"))


@router.get("/dead-letters", response_model=DeadLetterList)
async def list_dead_letters(request: Request, state: str | None = None, principal: Principal = Depends(_OPERATOR)):
    """The messages this service's consumer dead-lettered, each with what became of it since."""
    views = [view for _, view in await _views(request)]
    counts: dict[str, int] = {}
    for view in views:
        counts[view.state] = counts.get(view.state, 0) + 1
    return DeadLetterList(items=[v for v in views if state is None or v.state == state], counts=counts)


@router.post("/dead-letters:replay", response_model=ReplayOutcome)
async def replay_dead_letters(body: ReplayRequest, request: Request, principal: Principal = Depends(_OPERATOR)):
    """Send dead letters that still wait (state `dead`) to their topic again; the consumer applies
    them once (its inbox) or dead-letters them again. Others are skipped with the reason."""
    views = await _views(request)
    wanted = set(body.event_ids) if body.event_ids is not None else None
    chosen: dict[UUID, DeadLetter] = {}
    skipped: dict[str, str] = {}
    for letter, view in views:
        if view.event_id is None or (wanted is not None and view.event_id not in wanted):
            continue
        if view.state == "dead":
            chosen.setdefault(view.event_id, letter)  # several copies of one event: send it once
        else:
            skipped.setdefault(str(view.event_id), view.state)
    for event_id in (wanted or set()) - {v.event_id for _, v in views}:
        skipped[str(event_id)] = "no such dead letter"
    for event_id in chosen:
        skipped.pop(str(event_id), None)
    await replay(request.app.state.context.settings, list(chosen.values()))
    return ReplayOutcome(replayed=list(chosen), skipped=skipped)
