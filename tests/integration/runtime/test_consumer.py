"""The consumer loop on a real broker and database: effectively once under redelivery, and the
dead-letter topic for a message that keeps failing."""
import asyncio
import dataclasses
import zlib

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts.base import EventPayload
from contracts.topics import dead_letter_topic, events_topic
from runtime.app import one_copy_at_a_time
from runtime.auth import issue_token
from runtime.consumer import EventConsumer
from runtime.eventstore import NewEvent, StreamHead
from runtime.ids import new_id
from runtime.kafka import ensure_topics
from runtime.projections import Projections
from runtime.service import caused_by
from tests.conftest import eventually, served_over_http
from tests.factories import envelope

pytestmark = pytest.mark.integration


async def seen_table(ctx):
    async with ctx.engine.begin() as conn:
        await conn.execute(sa.text("create table if not exists seen (n serial primary key, event_id uuid, note text)"))


async def record_seen(uow, events):
    for event in events:
        if event.payload.get("poison"):
            raise ValueError("this event cannot be applied")
        await uow.session.execute(sa.text("insert into seen (event_id, note) values (:id, :note)"),
                                  {"id": event.event_id, "note": event.payload.get("note")})


async def count_seen(ctx, sql="select count(*) from seen"):
    async with ctx.sessions() as session:
        return await session.scalar(sa.text(sql))


async def produce(ctx, *messages: bytes):
    topic = events_topic("screening", ctx.settings.topic_prefix)
    await ensure_topics(ctx.settings, [topic])
    producer = AIOKafkaProducer(bootstrap_servers=ctx.settings.kafka_bootstrap)
    await producer.start()
    try:
        for value in messages:
            await producer.send_and_wait(topic, value, key=b"H-test")  # one key: one partition, in order
    finally:
        await producer.stop()


async def consume_until(ctx, group: str, done, handlers=None):
    consumer = EventConsumer(ctx, ["screening"], handlers or {"TestHappened": record_seen}, group_id=group)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        return await eventually(done, timeout=60)
    finally:
        stop.set()
        await task


async def test_redelivered_events_change_nothing(service_context):
    ctx = await service_context()
    await seen_table(ctx)
    one, two = envelope(payload={"note": "one"}), envelope(payload={"note": "two"})
    # The broker holds `one` twice, as after a producer retry.
    await produce(ctx, one.to_json(), one.to_json(), two.to_json())
    await consume_until(ctx, "g1", lambda: _equals(count_seen(ctx), 2))

    # A new group reads the whole topic again (as after lost offsets); a sentinel marks the end.
    sentinel = envelope(payload={"note": "sentinel"})
    await produce(ctx, sentinel.to_json())
    await consume_until(ctx, "g2", lambda: _equals(count_seen(ctx, "select count(*) from seen where note = 'sentinel'"), 1))

    assert await count_seen(ctx) == 3
    assert await count_seen(ctx, "select count(distinct event_id) from seen") == 3
    assert await count_seen(ctx, "select count(*) from inbox") == 3


class Noted(EventPayload):
    """A test's own event: what a handler appended for a consumed one."""

    producer = "tests"
    note: str


async def test_a_run_of_events_reaches_its_handler_in_one_call_and_each_reaction_names_its_cause(service_context):
    """Issue 19: a handler takes the consecutive events of a batch that go to it at once (set-based),
    a run cut where another handler's events begin; what it appends in one statement names, event by
    event, the consumed event it reacts to."""
    ctx = await service_context()
    calls: list[tuple[str, int]] = []

    async def note_all(uow, events):
        calls.append(("note", len(events)))
        await uow.append_many([(StreamHead(f"noted-{e.event_id}"), [NewEvent(Noted(note=e.payload["note"]), **caused_by(e))])
                               for e in events])

    async def other(uow, events):
        calls.append(("other", len(events)))

    sent = [envelope(payload={"note": f"n{i}"}) for i in range(4)] + [envelope("OtherHappened")] + \
           [envelope(payload={"note": f"n{i}"}) for i in range(4, 6)]
    await produce(ctx, *(e.to_json() for e in sent))
    await consume_until(ctx, "runs", lambda: _equals(count_seen(ctx, "select count(*) from inbox"), 7),
                        handlers={"TestHappened": note_all, "OtherHappened": other})
    assert calls == [("note", 4), ("other", 1), ("note", 2)]
    async with ctx.sessions() as session:
        caused = dict((await session.execute(sa.text(
            "select payload->>'note', causation_id::text from events where event_type = 'Noted'"))).all())
        correlated = set((await session.execute(sa.text(
            "select correlation_id::text from events where event_type = 'Noted'"))).scalars())
    consumed = [e for e in sent if e.event_type == "TestHappened"]
    assert caused == {e.payload["note"]: str(e.event_id) for e in consumed}
    assert correlated == {str(e.correlation_id) for e in consumed}


async def test_consecutive_mirrored_events_are_mirrored_together_between_the_runs_and_ignored_ones_are_not_parsed(
        service_context):
    """Mirrors take their consecutive events at once, after the handler's run before them and before
    the one after; an event the service neither handles nor mirrors is recorded from its headers
    alone (here its body is not even JSON) and never parsed."""
    ctx = await service_context()
    calls: list[tuple[str, list[str]]] = []

    async def mirror(session, events):
        calls.append(("mirror", [e.payload["note"] for e in events]))

    async def handle(uow, events):
        calls.append(("handler", [e.payload["note"] for e in events]))

    ctx = dataclasses.replace(ctx, projections=Projections(mirrors={"Mirrored": mirror}))
    m1, m2, h1, m3, h2 = (envelope("Mirrored", {"note": "m1"}), envelope("Mirrored", {"note": "m2"}),
                          envelope(payload={"note": "h1"}), envelope("Mirrored", {"note": "m3"}),
                          envelope(payload={"note": "h2"}))
    ignored_id = str(new_id())
    topic = events_topic("screening", ctx.settings.topic_prefix)
    await ensure_topics(ctx.settings, [topic])
    producer = AIOKafkaProducer(bootstrap_servers=ctx.settings.kafka_bootstrap)
    await producer.start()
    try:
        for event in (m1, m2, h1):
            await producer.send_and_wait(topic, event.to_json(), key=b"H-test")
        await producer.send_and_wait(topic, b"not json at all", key=b"H-test",
                                     headers=[("event_id", ignored_id.encode()), ("event_type", b"NobodysEvent")])
        for event in (m3, h2):
            await producer.send_and_wait(topic, event.to_json(), key=b"H-test")
    finally:
        await producer.stop()
    await consume_until(ctx, "mirrors", lambda: _equals(count_seen(ctx, "select count(*) from inbox"), 6),
                        handlers={"TestHappened": handle})
    assert calls == [("mirror", ["m1", "m2"]), ("handler", ["h1"]), ("mirror", ["m3"]), ("handler", ["h2"])]
    assert await count_seen(ctx, f"select outcome from inbox where event_id = '{ignored_id}'") == "ignored"


async def test_a_poisoned_message_goes_to_the_dead_letter_topic_and_the_loop_goes_on(service_context):
    ctx = await service_context()
    await seen_table(ctx)
    poison = envelope(payload={"poison": True})
    good = envelope(payload={"note": "after the poison"})
    await produce(ctx, b"{not json", poison.to_json(), good.to_json())
    await consume_until(ctx, "g1", lambda: _equals(count_seen(ctx), 1))

    dlq = dead_letter_topic(events_topic("screening", ctx.settings.topic_prefix))
    reader = AIOKafkaConsumer(dlq, bootstrap_servers=ctx.settings.kafka_bootstrap, auto_offset_reset="earliest")
    await reader.start()
    try:
        dead = []

        async def two_dead():
            batch = await reader.getmany(timeout_ms=500)
            dead.extend(r for records in batch.values() for r in records)
            return len(dead) >= 2

        await eventually(two_dead, timeout=30)
    finally:
        await reader.stop()
    assert [r.value for r in dead] == [b"{not json", poison.to_json()]
    errors = [dict(r.headers)["dlq_error"].decode() for r in dead]
    assert "JSONDecodeError" in errors[0] and "cannot be applied" in errors[1]
    async with ctx.sessions() as session:
        outcome = await session.scalar(sa.text("select outcome from inbox where event_id = :id"), {"id": poison.event_id})
    assert outcome == "dead_lettered"
    assert await count_seen(ctx, "select note from seen") == "after the poison"


async def _equals(awaitable, expected) -> bool:
    return (await awaitable) == expected


async def test_an_unreachable_database_holds_the_batch_instead_of_dead_lettering_it(service_context):
    from runtime.db import make_sessions
    from sqlalchemy.ext.asyncio import create_async_engine

    ctx = await service_context(consumer_attempts_before_dlq=1)
    await seen_table(ctx)
    working_sessions = ctx.sessions
    dead_engine = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    ctx.sessions = make_sessions(dead_engine)  # the database is away
    waiting = envelope(payload={"note": "waited for the database"})
    await produce(ctx, waiting.to_json())

    consumer = EventConsumer(ctx, ["screening"], {"TestHappened": record_seen}, group_id="g1")
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await asyncio.sleep(8)  # joined the group, fetched, and failed against the dead database
        ctx.sessions = working_sessions  # the database is back
        await eventually(lambda: _equals(count_seen(ctx, "select count(*) from seen"), 1), timeout=30)
    finally:
        stop.set()
        await task
        await dead_engine.dispose()
    async with ctx.sessions() as session:
        outcome = await session.scalar(sa.text("select outcome from inbox where event_id = :id"), {"id": waiting.event_id})
    assert outcome == "applied", "a database outage is no reason to dead-letter a message"


async def test_a_periodic_job_runs_in_one_process_of_a_service_at_a_time(run_services):
    """Workers and replicas share the database: a job another process is running is skipped."""
    async with run_services("screening") as system:
        ctx = system.context("screening")
        runs = []

        async def job(ctx):
            runs.append(ctx.name)

        key = zlib.crc32(f"screening:{job.__module__}.{job.__qualname__}".encode())
        async with ctx.engine.connect() as other_process:
            other_process = await other_process.execution_options(isolation_level="AUTOCOMMIT")
            assert await other_process.scalar(sa.text("select pg_try_advisory_lock(:key)"), {"key": key})
            await one_copy_at_a_time(ctx, job)
            assert runs == [], "ran while another process held the job"
            await other_process.scalar(sa.text("select pg_advisory_unlock(:key)"), {"key": key})
        await one_copy_at_a_time(ctx, job)
        await one_copy_at_a_time(ctx, job)
        assert runs == ["screening", "screening"], "the lock is released after each run"


async def test_a_database_that_refuses_connections_mid_stream_loses_nothing_and_the_consumer_lives_on(service_context):
    """As a restart looks from the consumer: its sessions are cut and new ones refused for a few
    seconds (issue 12 §3). Messages wait for the database; none goes to the dead-letter topic, and
    the consumer is still at work after it."""
    ctx = await service_context(consumer_attempts_before_dlq=3)
    await seen_table(ctx)
    database = ctx.engine.url.database
    first = [envelope(payload={"note": f"before {n}"}) for n in range(3)]
    await produce(ctx, *(e.to_json() for e in first))
    consumer = EventConsumer(ctx, ["screening"], {"TestHappened": record_seen}, group_id="g1")
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    admin = await asyncpg_admin(ctx)
    try:
        await eventually(lambda: _equals(count_seen(ctx), 3), timeout=60)
        await admin.execute(f'alter database "{database}" allow_connections false')
        await admin.execute("select pg_terminate_backend(pid) from pg_stat_activity where datname = $1", database)
        during = [envelope(payload={"note": f"during {n}"}) for n in range(3)]
        await produce(ctx, *(e.to_json() for e in during))
        await asyncio.sleep(4)  # several times the retries a poisoned message gets
        assert not task.done(), "the consumer task ended during the outage"
        await admin.execute(f'alter database "{database}" allow_connections true')
        await eventually(lambda: _equals(count_seen(ctx), 6), timeout=60)
        after = envelope(payload={"note": "after"})
        await produce(ctx, after.to_json())
        await eventually(lambda: _equals(count_seen(ctx), 7), timeout=60)
    finally:
        await admin.execute(f'alter database "{database}" allow_connections true')
        await admin.close()
        stop.set()
        await task
    assert await count_seen(ctx, "select count(distinct event_id) from seen") == 7
    assert await count_seen(ctx, "select count(*) from inbox where outcome = 'dead_lettered'") == 0
    assert consumer.health.state == "stopped"


async def asyncpg_admin(ctx):
    """A connection to the server's maintenance database, outside the service's own."""
    import asyncpg
    from runtime.db import _asyncpg_dsn

    return await asyncpg.connect(_asyncpg_dsn(ctx.settings.database_url, "postgres"))


async def test_dead_letters_are_listed_with_what_became_of_them_and_replayed_once(service_settings):
    """`GET /v1/dead-letters` tells a dead letter that still waits from a stale copy of a message
    applied later; replaying one applies it once, and a second replay sends nothing (issue 12 §4)."""
    import httpx

    from runtime.app import create_app
    from runtime.clock import SystemClock
    from runtime.db import ensure_database
    from runtime.service import ServiceDefinition

    async def record_unless_broken(uow, events):
        for event in events:
            if event.payload.get("needs_repair") and not await uow.session.scalar(sa.text("select count(*) from repaired")):
                raise ValueError("cannot be applied until repaired")
        await record_seen(uow, events)

    settings = service_settings("assistance", consumer_attempts_before_dlq=2)
    await ensure_database(settings.database_url)
    definition = ServiceDefinition(name="assistance", consumes=("screening",),
                                   handlers={"TestHappened": record_unless_broken})
    app = create_app(definition, settings, SystemClock(), consumer_group=f"{settings.topic_prefix}dlq-test")
    async with app.router.lifespan_context(app):
        ctx = app.state.context
        await seen_table(ctx)
        async with ctx.engine.begin() as conn:
            await conn.execute(sa.text("create table if not exists repaired (n int)"))
        operator = {"Authorization": "Bearer " + issue_token(settings, sub="op", role="administrator", region="41")}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://assistance") as client:
            broken, fine = envelope(payload={"needs_repair": True, "note": "broken"}), envelope(payload={"note": "fine"})
            await produce(ctx, broken.to_json(), fine.to_json())
            await eventually(lambda: _equals(count_seen(ctx), 1), timeout=60)

            async def listed(state: str, n: int = 1):
                body = (await client.get("/v1/dead-letters", headers=operator)).json()
                return body if sum(1 for i in body["items"] if i["state"] == state) >= n else None

            body = await eventually(lambda: listed("dead"), timeout=30)
            [item] = body["items"]
            assert item["event_id"] == str(broken.event_id) and "cannot be applied" in item["error"]
            assert (await client.get("/v1/dead-letters")).status_code == 401

            # A stale copy, as a dead letter written just before the database went away leaves it:
            # the message came again and was applied.
            producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
            await producer.start()
            try:
                await producer.send_and_wait(dead_letter_topic(events_topic("screening", settings.topic_prefix)),
                                             fine.to_json(), key=b"H-test",
                                             headers=[("event_id", str(fine.event_id).encode()), ("dlq_error", b"outage")])
            finally:
                await producer.stop()
            body = await eventually(lambda: listed("applied_later"), timeout=30)
            assert body["counts"] == {"dead": 1, "applied_later": 1}

            async with ctx.engine.begin() as conn:
                await conn.execute(sa.text("insert into repaired values (1)"))
            replayed = (await client.post("/v1/dead-letters:replay", headers=operator, json={})).json()
            assert replayed == {"replayed": [str(broken.event_id)], "skipped": {str(fine.event_id): "applied_later"}}
            await eventually(lambda: _equals(count_seen(ctx), 2), timeout=60)
            await eventually(lambda: listed("replayed"), timeout=30)
            again = (await client.post("/v1/dead-letters:replay", headers=operator,
                                       json={"event_ids": [str(broken.event_id)]})).json()
            assert again == {"replayed": [], "skipped": {str(broken.event_id): "replayed"}}
            await asyncio.sleep(1)
            assert await count_seen(ctx, "select count(*) from seen where note = 'broken'") == 1

        # The operator's command, over HTTP: the table shows each letter's state.
        from typer.testing import CliRunner

        from runtime.cli import app as cli

        async with served_over_http(app) as url:
            token = issue_token(settings, sub="op", role="administrator", region="41")
            result = await asyncio.to_thread(CliRunner().invoke, cli, [
                "dlq", "list", "--service", "assistance", "--url", url, "--token", token])
        assert result.exit_code == 0, result.output
        assert "1 applied_later, 1 replayed" in result.output and str(broken.event_id)[:8] in result.output



async def test_two_workers_share_the_partitions_and_the_group_settles(service_context):
    """Issue 19: the consumers of two workers of one service (one group) split the topic's partitions
    between them, the group stops rebalancing once both are in, and every event is applied once
    while events keep coming."""
    ctx = await service_context()
    await seen_table(ctx)
    topic = events_topic("screening", ctx.settings.topic_prefix)
    await ensure_topics(ctx.settings, [topic])
    workers = [EventConsumer(ctx, ["screening"], {"TestHappened": record_seen}, group_id="two-workers") for _ in range(2)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(worker.run(stop)) for worker in workers]
    producer = AIOKafkaProducer(bootstrap_servers=ctx.settings.kafka_bootstrap)
    await producer.start()
    sent = 0

    async def send(n: int) -> None:
        nonlocal sent
        for _ in range(n):
            event = envelope(payload={"note": f"n{sent}"}, household_id=f"H{sent}")
            await producer.send(topic, event.to_json(), key=event.household_id.encode())
            sent += 1
        await producer.flush()

    def assignments() -> list[set[int]]:
        return [{tp.partition for tp in w.consumer.assignment()} if w.consumer else set() for w in workers]

    def generations() -> list[int]:
        return [w.consumer._coordinator.generation if w.consumer else -1 for w in workers]

    try:
        async def both_assigned():
            await send(10)
            return all(assignments()) and len(set(generations())) == 1
        await eventually(both_assigned, timeout=60, interval=0.5)
        settled = generations()
        for _ in range(8):  # events keep coming for a few seconds: the group stays as it is
            await send(25)
            await asyncio.sleep(0.5)
        shares = assignments()
        assert generations() == settled, "the group rebalanced again with both workers in it"
        assert not shares[0] & shares[1] and shares[0] | shares[1] == set(range(ctx.settings.kafka_partitions))
        await eventually(lambda: _equals(count_seen(ctx), sent), timeout=60)
        assert await count_seen(ctx, "select count(distinct event_id) from seen") == sent
    finally:
        await producer.stop()
        stop.set()
        await asyncio.gather(*tasks)
