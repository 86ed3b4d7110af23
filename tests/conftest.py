"""One PostgreSQL server and one Kafka-protocol broker per test session: the embedded PostgreSQL and
Tansu, or (FANGPIN_TEST_BACKEND=containers) PostgreSQL and Apache Kafka in containers (tests/backends.py);
a fresh database per service and a fresh topic prefix per test, so tests never see each other's events."""
from __future__ import annotations

import asyncio
import os
import sys
import uuid
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa

from contracts.envelope import EventEnvelope
from contracts.topics import events_topic
from runtime.app import create_app, load_definition
from runtime.auth import issue_token
from runtime.clock import SystemClock
from runtime.embedded import EmbeddedPostgres, TansuBroker, free_port
from runtime.db import ensure_database, make_engine, make_sessions
from runtime.kafka import read_from_start
from runtime.projections import rebuild, rebuild_mirrors
from runtime.settings import Settings
from tests import backends

# Tests run on the development keys (a service elsewhere refuses them); services the tests start as
# processes inherit this.
os.environ.setdefault("FANGPIN_ENVIRONMENT", "development")


_BACKEND = pytest.StashKey[backends.Choice]()
_TESTS = Path(__file__).parent


@pytest.hookimpl(trylast=True)  # after the terminal reporter is there
def pytest_configure(config):
    """FANGPIN_TEST_BACKEND, read once; containers asked for where Docker does not answer: one line says
    so (shown with -q too) and the session runs on the embedded pair. An unknown value stops the run."""
    choice = config.stash[_BACKEND] = backends.choose()
    if choice.note:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter:
            reporter.write_line(choice.note)
        else:
            print(choice.note, file=sys.stderr)


def _on_containers(request) -> bool:
    """Whether this test gets the containers: the session's backend, except for the tests that run
    the embedded system themselves (tests/faults, tests/e2e: backends.EMBEDDED_ONLY)."""
    return (request.config.stash[_BACKEND].backend == backends.CONTAINERS
            and not backends.runs_embedded_only(request.node.path, _TESTS))


@pytest.fixture
def postgres(request):
    """The session's PostgreSQL server: `url(database)` (ensure_database creates the database)."""
    return request.getfixturevalue("postgres_in_container" if _on_containers(request) else "embedded_postgres")


@pytest.fixture
def broker(request):
    """The session's Kafka-protocol broker: `bootstrap`."""
    return request.getfixturevalue("kafka_in_container" if _on_containers(request) else "embedded_broker")


@pytest.fixture(scope="session")
def embedded_postgres(tmp_path_factory):
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def embedded_broker():
    tansu = TansuBroker(free_port())
    tansu.start()
    yield tansu
    tansu.stop()


@pytest.fixture(scope="session")
def postgres_in_container():
    server = backends.PostgresInContainer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kafka_in_container():
    kafka = backends.KafkaInContainer()
    yield kafka
    kafka.stop()


@dataclass
class Running:
    """Services of one test, running in-process with their relay and consumer."""

    settings: dict[str, Settings]
    apps: dict = field(default_factory=dict)
    clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)

    def token(self, role: str, region: str = "", sub: str | None = None, kind: str = "staff", department: str | None = None) -> dict:
        any_settings = next(iter(self.settings.values()))
        jwt = issue_token(any_settings, sub=sub or f"t-{role}", role=role, region=region, kind=kind, department=department)
        return {"Authorization": f"Bearer {jwt}"}

    def context(self, service: str):
        return self.apps[service].state.context


@pytest.fixture
def service_settings(postgres, broker):
    """Settings for `service` in this test: its own database, this test's topic prefix."""
    prefix = f"t{uuid.uuid4().hex[:10]}."

    def make(service: str, **overrides) -> Settings:
        db = f"{prefix.rstrip('.')}_{service}"
        values = dict(
            service=service, database_url=postgres.url(db), kafka_bootstrap=broker.bootstrap, topic_prefix=prefix,
            kafka_partitions=3, relay_idle_seconds=0.05, database_pool_size=4, consumer_retry_backoff_seconds=0.01,
            # No checkpoint appears unasked among the events a test counts; tests of the checkpoints
            # (tests/integration/audit) give an interval. Services run as processes keep the default.
            checkpoint_interval_seconds=0,
        )
        values.update(overrides)
        if "kafka_idempotence" not in overrides:
            # Idempotent producers on Apache Kafka (the containers); not on Tansu (it fails InitProducerId),
            # the session's or one a test starts of its own (tests/integration/runtime/test_relay.py).
            on_the_sessions = values["kafka_bootstrap"] == broker.bootstrap
            values["kafka_idempotence"] = on_the_sessions and getattr(broker, "idempotent", False)
        return Settings(**values)

    return make


@pytest_asyncio.fixture
async def run_services(service_settings):
    """`async with run_services("intake", "screening") as system:` starts them in-process. When the
    test's scenario is over and the services have stopped, each service's read tables rebuilt from
    its event store must equal the live ones (every view a projection: issue 15)."""

    @asynccontextmanager
    async def start(*services: str, clock=None, **overrides):
        running = Running(settings={s: service_settings(s, **overrides) for s in services})
        async with AsyncExitStack() as inner:
            for service, settings in running.settings.items():
                await ensure_database(settings.database_url)
                app = create_app(load_definition(service), settings, clock,  # None: the clock its settings give
                                 consumer_group=f"{settings.topic_prefix}{service}")
                await inner.enter_async_context(app.router.lifespan_context(app))
                running.apps[service] = app
                running.clients[service] = await inner.enter_async_context(
                    httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{service}")
                )
            yield running
        for service, settings in running.settings.items():
            await assert_views_rebuild_from_events(service, settings)

    yield start


async def assert_views_rebuild_from_events(service: str, settings: Settings) -> None:
    """The service's projected tables, emptied and rebuilt from its event store in a transaction that
    is then rolled back, hold exactly the rows the live tables hold."""
    definition = load_definition(service)
    projections = definition.projections
    tables = (*projections.tables, *projections.mirrored_tables)
    if not tables:
        return
    engine = make_engine(settings)
    try:
        async with make_sessions(engine)() as session:
            live = {table.name: await _all_rows(session, table) for table in tables}
            await rebuild(session, projections)
            if projections.mirrored_tables:
                taken = set((await session.execute(sa.text("select event_id from inbox where outcome = 'applied'"))).scalars())
                topics = [events_topic(producer, settings.topic_prefix) for producer in definition.consumes]
                await rebuild_mirrors(session, projections, _consumed(settings, topics, taken))
            rebuilt = {table.name: await _all_rows(session, table) for table in tables}
            await session.rollback()
    finally:
        await engine.dispose()
    for name in live:
        missing = [row for row in live[name] if row not in rebuilt[name]]
        extra = [row for row in rebuilt[name] if row not in live[name]]
        assert not missing and not extra, (f"{service}.{name} rebuilt from the events differs from the live table:\n"
                                           f"  live only: {missing[:5]}\n  rebuilt only: {extra[:5]}")


async def _consumed(settings: Settings, topics: list[str], taken: set):
    """The events of `topics` the service took (its inbox says so), from the beginning: those a
    scenario left on a topic unread are not in its tables yet. (None taken: its consumer may not
    even have made the topics yet.)"""
    if not taken:
        return
    async for records in read_from_start(settings, topics):
        envelopes = [EventEnvelope.from_json(record.value) for record in records]
        yield [envelope for envelope in envelopes if envelope.event_id in taken]


async def _all_rows(session, table) -> list[tuple]:
    return [tuple(row) for row in await session.execute(sa.select(table).order_by(*table.primary_key.columns))]


async def eventually(check, timeout: float = 30.0, interval: float = 0.2):
    """Poll `check` (async, returns a truthy value when done) until it succeeds or time runs out."""
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


async def topic_records(ctx, expected: int, timeout: float = 30.0) -> list:
    """Every record on the service's topic (repeats kept) once `expected` have arrived, or what
    arrived within `timeout` (the caller's comparison says what is missing), and nothing beyond: a
    repeat would arrive with the rest."""
    from aiokafka import AIOKafkaConsumer

    reader = AIOKafkaConsumer(ctx.topic, bootstrap_servers=ctx.settings.kafka_bootstrap, auto_offset_reset="earliest")
    await reader.start()
    records: list = []
    try:
        async def enough():
            batch = await reader.getmany(timeout_ms=300)
            records.extend(r for part in batch.values() for r in part)
            return len(records) >= expected

        try:
            await eventually(enough, timeout=timeout)
        except AssertionError:
            pass
        records.extend(r for part in (await reader.getmany(timeout_ms=500)).values() for r in part)
    finally:
        await reader.stop()
    return records


@asynccontextmanager
async def served_over_http(app, port: int | None = None):
    """An app `run_services` started, served on a real port of this machine (`port`, or a free one)
    for a client that is not in-process (the `fangpin` CLI run in a thread, a browser); yields its
    base URL."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning",
                                           timeout_graceful_shutdown=2))
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(100):
            if server.started or serving.done():
                break
            await asyncio.sleep(0.1)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


@pytest_asyncio.fixture
async def service_context(service_settings):
    """A migrated ServiceContext of its own database, for testing the runtime without HTTP."""
    from runtime.db import make_engine, make_sessions, migrate
    from runtime.service import ServiceContext

    contexts = []

    async def make(service: str = "assistance", **overrides) -> ServiceContext:
        settings = service_settings(service, **overrides)
        await ensure_database(settings.database_url)
        engine = make_engine(settings)
        await migrate(engine, service)
        ctx = ServiceContext(service, settings, engine, make_sessions(engine), SystemClock())
        contexts.append(ctx)
        return ctx

    yield make
    for ctx in contexts:
        await ctx.engine.dispose()
