"""`fangpin audit rebuild` and `fangpin audit replay --from-topics` (issue 15, part 3): a service's
views rebuilt from its store into a scratch schema, or from the topics alone into a fresh database,
equal the live tables; a row written behind the events' back is named with its key and the last event
naming it; a replay delivers nothing; a stored version-1 event is rebuilt through its upcaster."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from pathlib import Path

import asyncpg
import orjson
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from audit.rebuild import rebuild_and_compare
from audit.replay import replay_and_compare
from audit.verify import verify_service
from contracts.base import decode_payload
from contracts.envelope import EventEnvelope
from contracts.topics import events_topic
from runtime.cli import app as cli
from runtime.clock import FixedClock
from runtime.db import _asyncpg_dsn
from runtime.integrity import signing_key
from runtime.kafka import read_from_start
from runtime.settings import Settings
from tests.conftest import eventually
from tests.factories import VILLAGE, household, id_number, warning

pytestmark = pytest.mark.integration
runner = CliRunner()
START = datetime(2026, 11, 20, 1, 0, tzinfo=timezone.utc)
FIXTURE = Path(__file__).parents[2] / "fixtures" / "visit_recorded_v1.json"


@pytest.fixture(autouse=True)
def _no_keys_file(monkeypatch, tmp_path):
    monkeypatch.setattr("runtime.cli.DATA_DIR", tmp_path)


async def audit(*args: str):
    """The command as a user runs it (in a thread: it runs its own event loop)."""
    return await asyncio.to_thread(runner.invoke, cli, ["audit", *args])


async def _scenario(system) -> None:
    """A household through intake, a clue opening its case on screening, the village cadre's task on notifier."""
    intake, screening, notifier = system.clients["intake"], system.clients["screening"], system.clients["notifier"]
    county = system.token("county_officer", "410721", sub="county-1")
    staff = {"staff_id": "cadre-r1", "name": "村干部", "role": "village_cadre", "region_code": VILLAGE}
    assert (await notifier.post("/v1/staff", headers=county, json=staff)).status_code == 201
    department = system.token("department_system", kind="system", department="civil_affairs", sub="mca")
    for n, hid in enumerate(("R1", "R2"), start=1):
        assert (await intake.post("/v1/households", headers=county, json=household(hid, n))).status_code == 201
    assert (await intake.post("/v1/warnings", headers=department, json=warning("R-1", id_number(1)))).status_code == 201
    worker = system.token("grid_worker", VILLAGE, sub="gw-1")
    assert (await intake.post("/v1/visits", headers=worker, json={
        "household_id": "R2", "worker_id": "gw-1", "visited_at": "2026-11-19T09:00:00+08:00", "risk_types": [],
        "notes": "all well"})).status_code == 201
    cadre = system.token("village_cadre", VILLAGE, sub="cadre-r1")

    async def told():
        cases = (await screening.get("/v1/cases", headers=county)).json()["items"]
        inbox = (await notifier.get("/v1/inbox", headers=cadre)).json()["items"]
        return cases and inbox
    await eventually(told)


async def test_rebuild_equals_live_then_names_a_row_written_behind_the_events_back(run_services):
    async with run_services("intake", "screening", "notifier", clock=FixedClock(START)) as system:
        await _scenario(system)
        url = system.settings["intake"].database_url
        same = await audit("rebuild", "--service", "intake", "--database-url", url)
        assert same.exit_code == 0, same.output
        assert "equal to the live tables" in same.output and "households 2/2" in same.output, same.output
        for service in ("screening", "notifier"):
            answer = await audit("rebuild", "--service", service, "--database-url", system.settings[service].database_url)
            assert answer.exit_code == 0 and "equal to the live tables" in answer.output, answer.output

        async with system.context("intake").sessions() as session, session.begin():
            await session.execute(sa.text("update households set poverty_status = 'ordinary' where household_id = 'R2'"))
            await session.execute(sa.text("delete from visits"))
        found = await audit("rebuild", "--service", "intake", "--database-url", url)
        said = " ".join(found.output.split())
        assert found.exit_code == 2, found.output
        assert "households [household_id=R2]: differs in poverty_status; last event naming it: VisitRecorded" in said, said
        assert "visits [visit_id=" in said and "in the rebuild, missing from the live table" in said, said
        async with system.context("intake").sessions() as session, session.begin():  # as it was, for the scenario's end
            await session.execute(sa.text("update households set poverty_status = 'out_of_poverty' where household_id = 'R2'"))
            await session.execute(sa.text("delete from households"))
            await session.execute(sa.text("delete from clues"))
        restored = await audit("rebuild", "--service", "intake", "--database-url", url, "--keep")
        scratch = restored.output.split("kept in schema ")[-1].split()[0].strip(")")
        async with system.context("intake").sessions() as session, session.begin():
            for table in ("households", "clues", "visits"):
                await session.execute(sa.text(f'insert into {table} select * from "{scratch}".{table}'))
            await session.execute(sa.text(f'drop schema "{scratch}" cascade'))
        assert (await audit("rebuild", "--service", "intake", "--database-url", url)).exit_code == 0


async def test_rebuild_refuses_bad_input_in_one_line(run_services):
    async with run_services("intake") as system:
        url = system.settings["intake"].database_url
        unknown = await audit("rebuild", "--service", "intakes", "--database-url", url)
        assert unknown.exit_code == 1 and "No service 'intakes'" in unknown.output, unknown.output
        beyond = await audit("rebuild", "--service", "intake", "--database-url", url, "--upto-position", "99")
        assert beyond.exit_code == 1 and "no global position 99" in beyond.output, beyond.output
        no_topics = await audit("replay", "--service", "intake", "--database-url", url)
        assert no_topics.exit_code == 1 and "give --from-topics" in no_topics.output, no_topics.output


async def _everything_on_the_topics(settings: Settings) -> list[bytes]:
    topics = [events_topic(s, settings.topic_prefix) for s in ("intake", "screening", "notifier")]  # those running
    return sorted(record.value for batch in [b async for b in read_from_start(settings, topics)] for record in batch)


async def test_replay_from_the_topics_equals_live_and_delivers_nothing(run_services):
    async with run_services("intake", "screening", "notifier", clock=FixedClock(START)) as system:
        await _scenario(system)
        any_settings = system.settings["intake"]

        async def published():  # every event of the three stores on its topic
            counts = {}
            for service in ("intake", "screening", "notifier"):
                async with system.context(service).sessions() as session:
                    counts[service] = await session.scalar(sa.text("select count(*) from events"))
            on_topics = await _everything_on_the_topics(any_settings)
            return sum(counts.values()) == len(on_topics) and counts
        stored = await eventually(published)
        before = await _everything_on_the_topics(any_settings)

        for service in ("intake", "screening", "notifier"):
            report = await replay_and_compare(system.settings[service].database_url, service,
                                              any_settings.kafka_bootstrap, any_settings.topic_prefix)
            assert report.equal, [str(d) for t in report.tables for d in t.shown]
            assert report.events == stored[service] and all(t.rows_live == t.rows_rebuilt > 0 for t in report.tables
                                                            if t.table in ("households", "cases", "notifications"))
            if service == "screening":
                assert report.consumed > 0 and {t.table for t in report.tables} >= {"household_labour", "allowance_watch"}

        # Nothing was sent: no topic holds a record more, no store an event more, no inbox a task more.
        assert await _everything_on_the_topics(any_settings) == before
        for service, count in stored.items():
            async with system.context(service).sessions() as session:
                assert await session.scalar(sa.text("select count(*) from events")) == count
        async with system.context("notifier").sessions() as session:
            assert await session.scalar(sa.text("select count(*) from notifications")) == 1

        async with system.context("notifier").sessions() as session, session.begin():
            await session.execute(sa.text("update notifications set read_at = now()"))
        changed = await replay_and_compare(system.settings["notifier"].database_url, "notifier",
                                           any_settings.kafka_bootstrap, any_settings.topic_prefix)
        assert not changed.equal and changed.tables[0].shown[0].columns == ("read_at",)
        async with system.context("notifier").sessions() as session, session.begin():
            await session.execute(sa.text("update notifications set read_at = null"))


async def test_a_version_1_event_is_rebuilt_through_its_upcaster(service_context):
    """A VisitRecorded stored as version 1 (before visits carried their notes) still verifies, decodes
    with no notes and is rebuilt into the visits view."""
    ctx = await service_context("intake")
    stored = orjson.loads(FIXTURE.read_bytes())
    assert stored["schema_version"] == 1 and "notes" not in stored["payload"]
    envelope = EventEnvelope.model_validate(stored)
    assert decode_payload(envelope).notes is None
    db = await asyncpg.connect(_asyncpg_dsn(ctx.settings.database_url))
    try:
        columns = list(stored)
        await db.execute(
            f"insert into events ({', '.join(columns)}) select {', '.join(columns)} "
            f"from json_populate_record(null::events, $1::json)", json.dumps(stored))
    finally:
        await db.close()
    report = await verify_service(ctx.settings.database_url, "intake", signing_key(Settings().audit_signing_key).public_key())
    assert report.intact, [str(f) for f in report.findings]
    shown = []  # what a long rebuild shows as it goes: events done of the total
    await rebuild_and_compare(ctx.settings.database_url, "intake", progress=lambda done, total: shown.append((done, total)))
    assert shown and shown[-1] == (1, 1), shown
    kept = await audit("rebuild", "--service", "intake", "--database-url", ctx.settings.database_url, "--keep")
    assert kept.exit_code == 2 and "visits [visit_id=V1-OLD]: in the rebuild, missing from the live table" in kept.output
    scratch = kept.output.split("kept in schema ")[-1].split()[0].strip(")")
    async with ctx.sessions() as session:
        visit = (await session.execute(sa.text(f'select visit_id, notes, risk_types from "{scratch}".visits'))).one()
    assert tuple(visit) == ("V1-OLD", None, ["illness"])
