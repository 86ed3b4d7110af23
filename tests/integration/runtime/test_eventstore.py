"""The event store on a real PostgreSQL: hash chain, optimistic concurrency, catch-up reading."""
import asyncio

import pytest

from contracts.envelope import Actor, verify_chain
from contracts.notifier import StaffRegistered
from runtime.eventstore import ConcurrencyConflict, EventMetadata, EventStore, NewEvent

pytestmark = pytest.mark.integration
META = EventMetadata(actor=Actor(kind="system", id="tests"))


def staff(n: int) -> NewEvent:
    return NewEvent(StaffRegistered(staff_id=f"s{n}", role="village_cadre", region_code="410721001001"))


async def append(ctx, stream: str, expected: int, *events: NewEvent):
    async with ctx.sessions() as session, session.begin():
        return await EventStore(session, ctx.name, ctx.clock).append(stream, expected, list(events), META)


async def test_appended_stream_loads_whole_and_its_chain_verifies(service_context):
    ctx = await service_context()
    await append(ctx, "staff-a", 0, staff(1), staff(2))
    await append(ctx, "staff-a", 2, staff(3))
    async with ctx.sessions() as session:
        stream = await EventStore(session, ctx.name, ctx.clock).load("staff-a")
    assert [e.stream_position for e in stream.events] == [1, 2, 3]
    assert [e.payload["staff_id"] for e in stream.events] == ["s1", "s2", "s3"]
    assert verify_chain(stream.events) == []
    assert stream.events[1].prev_hash == stream.events[0].hash


async def test_append_at_a_stale_position_is_a_conflict(service_context):
    ctx = await service_context()
    await append(ctx, "staff-b", 0, staff(1))
    with pytest.raises(ConcurrencyConflict):
        await append(ctx, "staff-b", 0, staff(2))
    async with ctx.sessions() as session:
        assert (await EventStore(session, ctx.name, ctx.clock).load("staff-b")).position == 1


async def test_two_writers_racing_for_the_same_position_one_wins(service_context):
    ctx = await service_context()
    await append(ctx, "staff-c", 0, staff(1))
    first_inserted = asyncio.Event()

    async def writer(name: int, wait_for_other: bool):
        async with ctx.sessions() as session, session.begin():
            store = EventStore(session, ctx.name, ctx.clock)
            if wait_for_other:
                await first_inserted.wait()
            await store.append("staff-c", 1, [staff(name)], META)
            if not wait_for_other:
                first_inserted.set()
                await asyncio.sleep(0.3)  # hold the transaction open while the other inserts

    results = await asyncio.gather(writer(2, False), writer(3, True), return_exceptions=True)
    assert results[0] is None
    assert isinstance(results[1], ConcurrencyConflict)
    async with ctx.sessions() as session:
        events = (await EventStore(session, ctx.name, ctx.clock).load("staff-c")).events
    assert [e.payload["staff_id"] for e in events] == ["s1", "s2"]


async def test_catch_up_reader_never_skips_an_event_that_commits_late(service_context):
    """The non-interleaving trap: a later position that commits first must wait for the earlier one."""
    ctx = await service_context()
    slow_session = ctx.sessions()
    slow = await slow_session.begin()
    await EventStore(slow_session, ctx.name, ctx.clock).append("slow", 0, [staff(1)], META)  # takes position 1
    await append(ctx, "fast", 0, staff(2))  # takes position 2 and commits first

    async with ctx.sessions() as session:
        seen = await EventStore(session, ctx.name, ctx.clock).read_all(0)
    assert seen == [], "reading past the open transaction would lose position 1 for good"

    await slow.commit()
    await slow_session.close()
    async with ctx.sessions() as session:
        seen = await EventStore(session, ctx.name, ctx.clock).read_all(0)
    assert [e.stream_id for _, e in seen] == ["slow", "fast"]
    assert [p for p, _ in seen] == sorted(p for p, _ in seen)
