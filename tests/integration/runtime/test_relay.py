"""The outbox relay against a broker that goes away and comes back empty (Tansu keeps topics in
memory): nothing is lost, and nothing is applied twice downstream."""
import asyncio

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer

from contracts.envelope import Actor
from contracts.topics import dead_letter_topic, events_topic
from contracts.intake import WarningUnmatched
from runtime.embedded import TansuBroker, free_port
from runtime.eventstore import EventMetadata, NewEvent
from runtime.service import unit_of_work
from tests.conftest import eventually
from tests.factories import household, id_number, warning

pytestmark = pytest.mark.integration


async def test_relay_survives_a_broker_restart_and_republishes_into_the_empty_broker(run_services):
    broker = TansuBroker(free_port())
    broker.start()
    try:
        async with run_services("intake", "screening", kafka_bootstrap=broker.bootstrap,
                                broker_check_seconds=0.5) as system:
            cases, post_warning = await _households_and_warnings(system, 6)

            for n in (1, 2, 3):
                await post_warning(n)
            await eventually(lambda: _equals(cases(), 3), timeout=60)

            broker.stop()
            for n in (4, 5):  # accepted and stored while the broker is away
                await post_warning(n)
            broker.start()  # comes back with no topics at all
            await post_warning(6)

            await eventually(lambda: _equals(cases(), 6), timeout=120)

            async with system.context("screening").sessions() as session:
                per_household = (await session.execute(sa.text(
                    "select household_id, count(*) from cases group by household_id order by household_id"))).all()
                opened = await session.scalar(sa.text(
                    "select count(*) from events where event_type = 'VerificationCaseOpened'"))
            assert per_household == [(f"R{n}", 1) for n in range(1, 7)]
            assert opened == 6, "a republished clue must not open a second case"
            async with system.context("intake").sessions() as session:
                unpublished = await session.scalar(sa.text(
                    "select count(*) from events where global_position > (select position from relay_cursor)"))
            assert unpublished == 0
            assert system.apps["intake"].state.relay.anchors, "the relay learned where the broker's history starts"

            # The restarted broker holds the whole store again, events from before the restart included.
            async with system.context("intake").sessions() as session:
                stored = set(await session.scalars(sa.text("select event_id::text from events")))
            on_broker = await _event_ids_on(broker.bootstrap, system.context("intake").topic, len(stored))
            assert on_broker == stored
    finally:
        broker.stop()


async def _event_ids_on(bootstrap: str, topic: str, expected: int) -> set[str]:
    reader = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await reader.start()
    ids: set[str] = set()
    try:
        async def all_read():
            batch = await reader.getmany(timeout_ms=500)
            ids.update(dict(r.headers)["event_id"].decode() for records in batch.values() for r in records)
            return len(ids) >= expected

        await eventually(all_read, timeout=30)
    finally:
        await reader.stop()
    return ids


async def _equals(awaitable, expected) -> bool:
    return (await awaitable) == expected


def _unmatched(n: int) -> NewEvent:
    return NewEvent(WarningUnmatched(warning_id=f"W{n}", department="civil_affairs", source_record_id=f"G-{n}",
                                     indicator="new_dibao"), household_id="GAP")


async def _event_ids_in_order(bootstrap: str, topic: str, wait_ms: int = 1500) -> list[str]:
    """Every event id on the topic, partition by partition in offset order (all test events share a key)."""
    reader = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await reader.start()
    try:
        batch = await reader.getmany(timeout_ms=wait_ms)
        return [dict(r.headers)["event_id"].decode() for records in batch.values() for r in records]
    finally:
        await reader.stop()


async def test_relay_waits_at_a_gap_a_running_transaction_may_fill_and_steps_over_a_rolled_back_one(run_services):
    async with run_services("intake") as system:
        ctx = system.context("intake")
        meta = EventMetadata(actor=Actor(kind="system", id="test", role="service"))
        bootstrap, topic = ctx.settings.kafka_bootstrap, ctx.topic

        async def published() -> list[str]:
            return await _event_ids_in_order(bootstrap, topic)

        # A holds the lower position open while B, above it, commits: B must wait for A.
        async with unit_of_work(ctx, meta) as a:
            [first] = await a.append("gap-a", 0, [_unmatched(1)])
            async with unit_of_work(ctx, meta) as b:
                [second] = await b.append("gap-b", 0, [_unmatched(2)])
            await asyncio.sleep(1.0)  # the relay polls every 0.05 s
            assert str(second.event_id) not in await published(), "published past a gap a running transaction holds"
        await eventually(lambda: _contains(published(), {str(first.event_id), str(second.event_id)}))
        assert await published() == [str(first.event_id), str(second.event_id)], "store order kept on the broker"

        # A rolled-back append leaves a gap for good: the relay steps over it.
        with pytest.raises(RuntimeError):
            async with unit_of_work(ctx, meta) as c:
                await c.append("gap-c", 0, [_unmatched(3)])
                raise RuntimeError("roll back")
        async with unit_of_work(ctx, meta) as d:
            [fourth] = await d.append("gap-d", 0, [_unmatched(4)])
        await eventually(lambda: _contains(published(), {str(fourth.event_id)}))
        async with ctx.sessions() as session:
            cursor = await session.scalar(sa.text("select position from relay_cursor"))
            last = await session.scalar(sa.text("select max(global_position) from events"))
        assert cursor == last


async def test_a_commit_wakes_the_relay_it_does_not_wait_for_its_next_look(run_services):
    """runtime.signals: an append notifies at its commit; the relay, idle for 30 s between looks here,
    publishes at once."""
    async with run_services("intake", relay_idle_seconds=30) as system:
        ctx = system.context("intake")
        meta = EventMetadata(actor=Actor(kind="system", id="test", role="service"))

        async def cursor() -> int:
            async with ctx.sessions() as session:
                return await session.scalar(sa.text("select coalesce(max(position), 0) from relay_cursor")) or 0

        async def listening():
            appended = system.apps["intake"].state.relay.appended
            return appended is not None and appended.listener.listening
        await eventually(listening)
        await asyncio.sleep(0.5)  # the relay's first looks are over: it waits
        for n in (1, 2):
            async with unit_of_work(ctx, meta) as uow:
                [appended] = await uow.append(f"woken-{n}", 0, [_unmatched(n)])
            async with ctx.sessions() as session:
                position = await session.scalar(sa.text("select global_position from events where event_id = :id"),
                                                 {"id": appended.event_id})
            await eventually(lambda: _at_least(cursor(), position), timeout=5)


async def _at_least(awaitable, position: int) -> bool:
    return await awaitable >= position


async def _contains(awaitable, wanted: set[str]) -> bool:
    return wanted <= set(await awaitable)


async def test_a_broker_killed_and_back_within_a_second_heals_without_a_restart(run_services, caplog):
    """Kill -9 and restart inside the producers' request timeout (issue 12 §2): no client sees an
    error, yet the broker knows no topic. Topics come back with their configured partitions (none
    auto-created with the broker's default), dead-letter topics too, the store is published again
    once, and every warning still opens exactly one case."""
    from aiokafka.admin import AIOKafkaAdminClient

    from runtime.kafka import all_topics

    broker = TansuBroker(free_port())
    broker.start()
    try:
        async with run_services("intake", "screening", kafka_bootstrap=broker.bootstrap, broker_check_seconds=1.0) as system:
            cases, post_warning = await _households_and_warnings(system, 12)

            for n in range(1, 5):
                await post_warning(n)
            await eventually(lambda: _equals(cases(), 4), timeout=60)

            caplog.clear()
            broker.process.kill()
            broker.process.wait()
            await post_warning(5)
            await asyncio.sleep(0.5)
            broker.start()  # the same port, no topics
            for n in range(6, 13):
                await post_warning(n)
                await asyncio.sleep(0.2)
            await eventually(lambda: _equals(cases(), 12), timeout=90)

            settings = system.settings["intake"]
            consumed = [events_topic("intake", settings.topic_prefix), dead_letter_topic(events_topic("intake", settings.topic_prefix))]
            wanted = [system.context("intake").topic, system.context("screening").topic, *consumed]

            async def partition_counts() -> dict:
                admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
                await admin.start()
                try:
                    described = await admin.describe_topics(all_topics(settings))
                finally:
                    await admin.close()
                return {d["topic"]: len(d["partitions"]) for d in described if d["error_code"] == 0}

            # Every topic back (each relay and consumer checks every second), none with the broker's default count.
            counts = await eventually(lambda: _all_there(partition_counts(), wanted), timeout=30)
            for topic in wanted:
                assert counts[topic] == settings.kafka_partitions, f"{topic}: {counts[topic]} partitions"
            republished = [r.getMessage() for r in caplog.records if "publishing the store again" in r.getMessage()]
            assert sum("relay intake" in m for m in republished) == 1, republished
            async with system.context("screening").sessions() as session:
                per_household = (await session.execute(sa.text(
                    "select household_id, count(*) from cases group by household_id order by household_id"))).all()
            assert sorted(per_household) == sorted((f"R{n}", 1) for n in range(1, 13))
            for service in ("intake", "screening"):
                async def caught_up(service=service):
                    ready = await system.clients[service].get("/readyz")
                    return ready.status_code == 200 and ready.json()["relay"]["lag"] == 0

                await eventually(caught_up, timeout=30)
    finally:
        broker.stop()


async def test_a_topic_with_another_partition_count_stops_publishing_loudly(service_context, caplog):
    """Publishing by other partitions would put a household's events out of order: the relay says
    so and publishes nothing, instead of re-keying silently (issue 12 §2)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from runtime.relay import OutboxRelay

    ctx = await service_context("intake")  # settings: 3 partitions
    admin = AIOKafkaAdminClient(bootstrap_servers=ctx.settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(ctx.topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    meta = EventMetadata(actor=Actor(kind="system", id="test", role="service"))
    async with unit_of_work(ctx, meta) as uow:
        await uow.append("misconfigured", 0, [_unmatched(1)])
    relay = OutboxRelay(ctx)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await eventually(lambda: _equals(_state(relay), "topic misconfigured"), timeout=20)
        assert "FANGPIN_KAFKA_PARTITIONS=3" in relay.health.error and "2" in relay.health.error
        assert await relay.lag() == 1, "nothing published"
        assert any(r.levelname == "ERROR" and "not publishing" in r.getMessage() for r in caplog.records)
    finally:
        stop.set()
        await task
    assert await _event_ids_in_order(ctx.settings.kafka_bootstrap, ctx.topic, wait_ms=500) == []


async def _state(relay) -> str:
    return relay.health.state


async def _all_there(counts_awaitable, topics: list[str]):
    counts = await counts_awaitable
    return counts if all(t in counts for t in topics) else None


async def _households_and_warnings(system, households: int):
    """Register households R1..Rn; returns (count of screening's cases, post warning n about Rn)."""
    intake = system.clients["intake"]
    county = system.token("county_officer", "410721")
    department = system.token("department_system", kind="system", department="civil_affairs")
    for n in range(1, households + 1):
        assert (await intake.post("/v1/households", headers=county, json=household(f"R{n}", n))).status_code == 201

    async def cases() -> int:
        async with system.context("screening").sessions() as session:
            return await session.scalar(sa.text("select count(*) from cases"))

    async def post_warning(n: int):
        r = await intake.post("/v1/warnings", headers=department, json=warning(f"R-{n}", id_number(n)))
        assert r.status_code == 201, r.text

    return cases, post_warning
