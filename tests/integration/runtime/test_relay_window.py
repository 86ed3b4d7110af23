"""The relay's gap rule against real concurrent writers: a committed event is published exactly
once, whatever commits while the relay reads (issue 12 §1).

The first test drives the one window deterministically: a writer holding a lower position commits
exactly after the relay has read the rows above it. The second is the `eventsourcing` library's
non-interleaving idea at load: many writers, some rolling back, and a checker that compares every
committed event with what the topic holds."""
import asyncio
import random

import pytest
import sqlalchemy as sa

from contracts.envelope import Actor
from contracts.intake import WarningUnmatched
from runtime.eventstore import EventMetadata, EventStore, NewEvent
from runtime.relay import OutboxRelay
from tests.conftest import eventually, topic_records

pytestmark = pytest.mark.integration

META = EventMetadata(actor=Actor(kind="system", id="test", role="service"))


def _event(n: int) -> NewEvent:
    return NewEvent(WarningUnmatched(warning_id=f"W{n}", department="civil_affairs", source_record_id=f"G-{n}",
                                     indicator="new_dibao"), household_id=f"H{n % 7}")


async def _open_append(ctx, stream: str, n: int, think: float = 0.0):
    """An append whose transaction is left open: the caller commits or rolls back `session`. With
    `think`, the transaction takes its id that long before the append."""
    session = ctx.sessions()
    await session.begin()
    if think:
        await session.execute(sa.text("select pg_current_xact_id()"))
        await asyncio.sleep(think)
    [written] = await EventStore(session, ctx.name, ctx.clock).append(stream, 0, [_event(n)], META)
    return session, str(written.event_id)


async def _topic_event_ids(ctx, expected: int, timeout: float = 30.0) -> list[str]:
    """Every record's event id on the service's topic (repeats kept), once `expected` have arrived."""
    return [dict(r.headers)["event_id"].decode() for r in await topic_records(ctx, expected, timeout)]


async def _committed_event_ids(ctx) -> list[str]:
    async with ctx.sessions() as session:
        return list(await session.scalars(sa.text("select event_id::text from events order by global_position")))


async def test_a_writer_that_commits_between_the_relays_reads_is_not_skipped(service_context, monkeypatch):
    ctx = await service_context("intake", kafka_partitions=1)  # one partition: the topic's order is the store's
    relay = OutboxRelay(ctx)
    await relay._connect()
    await relay.check_broker_history()  # creates the topic
    try:
        assert await relay.publish_pending() == 0  # makes the cursor
        low, low_id = await _open_append(ctx, "low", 1)  # takes position 1 and stays open
        high, high_id = await _open_append(ctx, "high", 2)
        await high.commit()  # position 2 commits first: position 1 is a gap a running writer holds

        read_rows = relay._rows_above

        async def read_then_let_the_low_writer_commit(session, position):
            rows = await read_rows(session, position)
            if not low.in_transaction() or not low.get_transaction().is_active:
                return rows
            await low.commit()  # exactly here: after the rows were read, before the gap is judged
            return rows

        monkeypatch.setattr(relay, "_rows_above", read_then_let_the_low_writer_commit)
        await relay.publish_pending()
        await relay.publish_pending()
        await relay.publish_pending()
        await low.close()
        await high.close()

        committed = await _committed_event_ids(ctx)
        assert committed == [low_id, high_id]
        assert await _topic_event_ids(ctx, 2) == [low_id, high_id], "an event committed at a gap was skipped"
    finally:
        await relay._disconnect()


async def test_a_holder_newer_than_every_finished_transaction_is_waited_for(service_context):
    """A snapshot lists as running only transactions older than the newest finished one (its xmax);
    a holder that took its id after that is running and not listed. Here: `early` takes its id,
    `holder` takes a newer id and a lower position, `early` appends above it and commits; nothing
    newer than `early` has finished, so `holder` is not in the relay's snapshot's running list."""
    ctx = await service_context("intake", kafka_partitions=1)
    relay = OutboxRelay(ctx)
    await relay._connect()
    await relay.check_broker_history()
    try:
        assert await relay.publish_pending() == 0  # makes the cursor
        early = ctx.sessions()
        await early.begin()
        await early.execute(sa.text("select pg_current_xact_id()"))  # takes its id first
        holder, holder_id = await _open_append(ctx, "holder", 1)  # a newer id, the lower position
        [written] = await EventStore(early, ctx.name, ctx.clock).append("early", 0, [_event(2)], META)
        await early.commit()
        await early.close()

        await relay.publish_pending()
        published_too_soon = await _topic_event_ids(ctx, 1, timeout=1.0)
        await holder.commit()
        await holder.close()
        await relay.publish_pending()
        await relay.publish_pending()

        assert published_too_soon == [], "published past a position a running transaction holds"
        assert await _topic_event_ids(ctx, 2) == [holder_id, str(written.event_id)]
    finally:
        await relay._disconnect()


async def test_many_writers_every_committed_event_is_published_exactly_once(service_context):
    ctx = await service_context("intake", relay_idle_seconds=0.0, kafka_partitions=1, database_pool_size=12)
    relay = OutboxRelay(ctx)
    stop = asyncio.Event()
    relay_task = asyncio.create_task(relay.run(stop))
    told: dict[str, bool] = {}  # event id -> committed? (what each writer was told)
    rng = random.Random(12)

    async def writer(w: int) -> None:
        for i in range(40):
            n = w * 1000 + i
            # Half the writers take their transaction id a while before their position, as a command
            # that reads and decides first does: their positions then come late against their ids.
            session, event_id = await _open_append(ctx, f"w{w}-{i}", n, think=rng.random() * 0.01 if w % 2 else 0)
            try:
                await asyncio.sleep(rng.random() * 0.01)  # others take positions meanwhile
                if rng.random() < 0.1:
                    await session.rollback()
                    told[event_id] = False
                else:
                    await session.commit()
                    told[event_id] = True
            finally:
                await session.close()

    try:
        await asyncio.gather(*(writer(w) for w in range(10)))
        committed = await _committed_event_ids(ctx)
        assert set(committed) == {e for e, ok in told.items() if ok}

        async def all_published():
            async with ctx.sessions() as session:
                return await session.scalar(sa.text(
                    "select count(*) from events where global_position > (select position from relay_cursor)")) == 0

        await eventually(all_published, timeout=30)
        on_topic = await _topic_event_ids(ctx, len(committed))
    finally:
        stop.set()
        await relay_task
    missing = set(committed) - set(on_topic)
    doubled = {e for e in on_topic if on_topic.count(e) > 1}
    assert not missing, f"{len(missing)} committed events never published"
    assert not doubled, f"{len(doubled)} events published twice"
    assert not set(on_topic) - set(committed), "a rolled-back event was published"
    assert on_topic == committed, "one partition: the topic holds the store's order"
