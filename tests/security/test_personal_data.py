"""Personal data of staff stays out of events, and database errors are logged and stored without
the values they quote (issue 13, item 7)."""
import logging
from datetime import date

import httpx
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts.base import decode_payload
from contracts.envelope import Actor, verify_chain
from contracts.notifier import StaffRegistered
from contracts.screening import VerificationCaseOpened
from contracts.topics import dead_letter_topic, events_topic
from runtime.bulk import copy_records
from runtime.db import describe_error
from runtime.eventstore import EventMetadata, EventStore, NewEvent
from runtime.kafka import ensure_topics
from runtime.tasks import Health
from tests.conftest import eventually, topic_records
from tests.factories import VILLAGE, envelope

pytestmark = pytest.mark.integration

COUNTY = VILLAGE[:6]
NAME, EMAIL = "Ouyang Xiaoqing PD7Q", "ouyang.pd7q@example.org"
ID_HASH = "HASH-PD7Q"  # not spelled out where a traceback would quote its line


def staff(staff_id: str, **extra) -> dict:
    return {"staff_id": staff_id, "name": NAME, "role": "village_cadre", "region_code": VILLAGE, "email": EMAIL,
            "webhook_url": "https://hooks.example.org/pd7q", **extra}


async def _rows(system, sql: str, **params) -> list:
    async with system.context("notifier").sessions() as session:
        return (await session.execute(sa.text(sql), params)).all()


async def test_a_staff_members_name_stays_in_the_directory_and_out_of_events_and_the_topic(run_services):
    async with run_services("notifier") as system:
        notifier = system.clients["notifier"]
        county = system.token("county_officer", COUNTY)
        r = await notifier.post("/v1/staff", headers=county, json=staff("cadre-pd-1"))
        assert r.status_code == 201, r.text

        assert await _rows(system, "select name, email from staff where staff_id = 'cadre-pd-1'") == [(NAME, EMAIL)]
        stored = await _rows(system, "select event_type, schema_version, payload::text from events")
        for _, _, payload in stored:
            assert NAME not in payload and EMAIL not in payload and "hooks.example.org" not in payload, payload
        assert [(t, v) for t, v, _ in stored] == [("StaffRegistered", 2)]

        on_topic = [r.value for r in await topic_records(system.context("notifier"), len(stored))]
        assert len(on_topic) == len(stored)
        for value in on_topic:
            assert b"cadre-pd-1" in value  # the pseudonymous id, and nothing else of the person
            assert NAME.encode() not in value and EMAIL.encode() not in value and b"hooks.example.org" not in value


class _StaffRegisteredV1:
    """A StaffRegistered as version 1 wrote it, name included (the store seals whatever it is given)."""

    event_type, schema_version = "StaffRegistered", 1

    def __init__(self, **fields) -> None:
        self.fields = fields

    def model_dump(self, mode: str = "json") -> dict:
        return dict(self.fields)


async def test_a_stored_v1_staff_registered_keeps_its_hash_and_reads_without_the_name(run_services):
    """Stored events are not rewritten (their hashes cover the payload): reading upcasts the name away."""
    async with run_services("notifier") as system:
        ctx = system.context("notifier")
        old = _StaffRegisteredV1(staff_id="cadre-pd-2", name=NAME, role="village_cadre", region_code=VILLAGE)
        async with ctx.sessions() as session, session.begin():
            await EventStore(session, ctx.name, ctx.clock).append(
                "staff-cadre-pd-2", 0, [NewEvent(old, region_code=VILLAGE)],
                EventMetadata(actor=Actor(kind="system", id="v1")))
        # The same member registered again by the new code: the stream goes on from the old event.
        r = await system.clients["notifier"].post("/v1/staff", headers=system.token("county_officer", COUNTY),
                                                  json=staff("cadre-pd-2"))
        assert r.status_code == 200 and r.json()["outcome"] == "updated", r.text

        async with ctx.sessions() as session:
            stream = await EventStore(session, ctx.name, ctx.clock).load("staff-cadre-pd-2")
        assert [e.schema_version for e in stream.events] == [1, 2]
        assert verify_chain(stream.events) == []
        expected = StaffRegistered(staff_id="cadre-pd-2", role="village_cadre", region_code=VILLAGE)
        assert [decode_payload(e) for e in stream.events] == [expected, expected]
        assert "name" not in decode_payload(stream.events[0]).model_dump()


async def test_a_failed_statement_is_logged_and_answered_without_its_values(run_services, caplog):
    """A unique violation quotes the key ("Key (email)=(...) already exists") and SQLAlchemy the
    statement's parameters: neither reaches the log nor the client."""
    async with run_services("notifier") as system:
        async with system.context("notifier").engine.begin() as conn:
            await conn.execute(sa.text("create unique index staff_email_unique on staff (email)"))
        county = system.token("county_officer", COUNTY)
        r = await system.clients["notifier"].post("/v1/staff", headers=county, json=staff("cadre-pd-3"))
        assert r.status_code == 201, r.text
        transport = httpx.ASGITransport(app=system.apps["notifier"], raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://notifier") as client:
            r = await client.post("/v1/staff", headers=county, json=staff("cadre-pd-4", name="Second PD7Q Person"))
        assert r.status_code == 500, r.text
        for text in (r.text, caplog.text):
            assert EMAIL not in text and "PD7Q" not in text and "cadre-pd-4" not in text, text
        assert "SQLSTATE 23505" in caplog.text and "constraint staff_email_unique" in caplog.text, caplog.text
        assert "Traceback (most recent call last)" in caplog.text, "the stack stays in the log"
        assert await _rows(system, "select staff_id from staff order by staff_id") == [("cadre-pd-3",)]


async def test_a_consumed_event_refused_by_the_database_is_dead_lettered_without_its_values(run_services, caplog):
    """A check violation quotes the whole row ("Failing row contains (...)"): the reason kept in the
    inbox and the dead letter's header, and the log, name the constraint only."""
    async with run_services("notifier", consumer_attempts_before_dlq=1) as system:
        ctx = system.context("notifier")
        assert (await system.clients["notifier"].post("/v1/staff", headers=system.token("county_officer", COUNTY),
                                                      json=staff("cadre-pd-5"))).status_code == 201
        async with ctx.engine.begin() as conn:
            await conn.execute(sa.text(
                "alter table notifications add constraint notifications_refused check (kind <> 'verify_household')"))
        case = VerificationCaseOpened(case_id="CASE-PD7Q", household_id="HH-PD7Q", region_code=VILLAGE,
                                      clue_id="CLUE-PD7Q", risk_types=["illness"], step="village",
                                      due_date=date(2026, 12, 1))
        opened = envelope("VerificationCaseOpened", case.model_dump(mode="json"), stream_id="case-PD7Q",
                          household_id="HH-PD7Q")
        topic = events_topic("screening", ctx.settings.topic_prefix)
        await ensure_topics(ctx.settings, [topic])
        producer = AIOKafkaProducer(bootstrap_servers=ctx.settings.kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topic, opened.to_json(), key=b"HH-PD7Q")
        finally:
            await producer.stop()

        async def dead_lettered():
            rows = await _rows(system, "select error from inbox where event_id = :id and outcome = 'dead_lettered'",
                               id=opened.event_id)
            return rows[0].error if rows else None

        reason = await eventually(dead_lettered, timeout=60)
        reader = AIOKafkaConsumer(dead_letter_topic(topic), bootstrap_servers=ctx.settings.kafka_bootstrap,
                                  auto_offset_reset="earliest")
        await reader.start()
        try:
            letters = []

            async def one_letter():
                batch = await reader.getmany(timeout_ms=500)
                letters.extend(r for records in batch.values() for r in records)
                return letters

            await eventually(one_letter, timeout=30)
        finally:
            await reader.stop()
        header = dict(letters[0].headers)["dlq_error"].decode()
        for text in (reason, header, caplog.text):
            assert "PD7Q" not in text and "cadre-pd-5" not in text and "Failing row" not in text, text
        assert "SQLSTATE 23514" in reason and "constraint notifications_refused" in reason, reason
        assert await _rows(system, "select count(*) from notifications") == [(0,)]


async def test_database_errors_of_every_path_are_described_without_the_values_they_quote(service_context, caplog):
    """SQLAlchemy statements, the driver's bulk COPY, values the server or the driver cannot take:
    logged (with their traceback), kept as a health error, or described, none quotes a value;
    an error that quotes none (an unknown column) keeps its message."""
    ctx = await service_context("notifier")
    async with ctx.engine.begin() as conn:
        await conn.execute(sa.text("create table held (id_hash text primary key)"))
        await conn.execute(sa.text("insert into held values (:h)"), {"h": ID_HASH})
    held = sa.table("held", sa.column("id_hash"))
    attempts = {
        "a statement's unique key": (sa.text("insert into held values (:h)"), {"h": ID_HASH}),
        "a value the server cannot read": (sa.text("select cast(cast(:v as text) as integer)"), {"v": "PD7Q-42"}),
        "a value the driver cannot send": (sa.text("select cast(:v as integer)"), {"v": "PD7Q-43"}),
        "an unknown column": (sa.text("select no_such_column from held"), {}),
    }
    errors = {}
    for what, (statement, params) in attempts.items():
        try:
            async with ctx.sessions() as session, session.begin():
                await session.execute(statement, params)
        except Exception as exc:
            errors[what] = exc
    try:
        async with ctx.sessions() as session, session.begin():
            await copy_records(session, held, ["id_hash"], [[ID_HASH]])
    except Exception as exc:
        errors["a bulk COPY's unique key"] = exc
    assert set(errors) == {*attempts, "a bulk COPY's unique key"}

    log = logging.getLogger("tests.security")
    health = Health()
    for what, exc in errors.items():
        try:
            raise RuntimeError(f"while trying {what}") from exc
        except RuntimeError:
            log.exception("%s failed: %s (%r)", what, exc, exc)
        health.set("retrying", exc)
        for text in (describe_error(exc), health.view()["error"]):
            assert "PD7Q" not in text and "DETAIL" not in text, (what, text)
    assert "PD7Q" not in caplog.text and "DETAIL" not in caplog.text, caplog.text
    assert caplog.text.count("Traceback (most recent call last)") >= len(errors)
    assert "SQLSTATE 23505" in describe_error(errors["a bulk COPY's unique key"])
    assert "SQLSTATE 22P02" in describe_error(errors["a value the server cannot read"])
    assert 'column "no_such_column" does not exist' in describe_error(errors["an unknown column"])
