"""The outbox relay against a broker that goes away and comes back empty (Tansu keeps topics in
memory): nothing is lost, and nothing is applied twice downstream."""
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer

from runtime.embedded import TansuBroker, free_port
from tests.conftest import eventually
from tests.factories import household, id_number, warning

pytestmark = pytest.mark.integration


async def test_relay_survives_a_broker_restart_and_republishes_into_the_empty_broker(run_services):
    broker = TansuBroker(free_port())
    broker.start()
    try:
        async with run_services("intake", "screening", kafka_bootstrap=broker.bootstrap,
                                relay_broker_check_seconds=0.5) as system:
            intake, screening = system.clients["intake"], system.clients["screening"]
            county = system.token("county_officer", "410721")
            department = system.token("department_system", kind="system")
            for n in range(1, 7):
                assert (await intake.post("/v1/households", headers=county, json=household(f"R{n}", n))).status_code == 201

            async def cases() -> int:
                async with system.context("screening").sessions() as session:
                    return await session.scalar(sa.text("select count(*) from cases"))

            async def post_warning(n: int):
                r = await intake.post("/v1/warnings", headers=department, json=warning(f"R-{n}", id_number(n)))
                assert r.status_code == 201, r.text

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
                unpublished = await session.scalar(sa.text("select count(*) from events where published_at is null"))
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
