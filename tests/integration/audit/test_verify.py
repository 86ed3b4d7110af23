"""`fangpin audit verify` (issue 15, part 3): intake writes events and signs checkpoints as it runs;
then each kind of tampering is done with SQL on a copy of its database, and verify finds and names
it. The writer's own rules are tested on a bare store: a position held by a running transaction is
waited for, two writers race safely, and no checkpoint follows nothing but checkpoints."""
from __future__ import annotations

import asyncio
import tracemalloc
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import asyncpg
import orjson
import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from audit.verify import (
    ALTERED, CHECKPOINT, EVENTS_SQL, MISSING, OUT_OF_ORDER, ROOT_DIFFERS, WITNESS, recomputed_hash, verify_service,
)
from contracts.audit import CheckpointSigned
from contracts.base import EventPayload
from contracts.envelope import Actor, EventEnvelope, compute_hash
from runtime.checkpoints import CheckpointWriter
from runtime.cli import app as cli
from runtime.db import _asyncpg_dsn
from runtime.eventstore import EventMetadata, EventStore, NewEvent, StreamHead
from runtime.integrity import signing_key
from runtime.service import unit_of_work
from runtime.settings import Settings
from runtime.tables import ENVELOPE_COLUMNS
from tests.conftest import eventually, topic_records
from tests.factories import household, id_number, warning

pytestmark = pytest.mark.integration
PUBLIC_KEY = signing_key(Settings().audit_signing_key).public_key()  # the development key the tests run on
MEDICAL = dict(department="medical_insurance", indicator="high_medical_expense", detail="out-of-pocket costs this year")
runner = CliRunner()


class UnitTestAuditRoundTrip(EventPayload):
    """What the JSONB column must give back exactly for the hash to be recomputed from it."""

    producer = "assistance"
    amounts: list[Decimal]
    moments: list[datetime]
    nested: list[list[dict[str, list[int | str | None]]]]
    text: str
    big: int


@pytest.fixture(autouse=True)
def _no_keys_file(monkeypatch, tmp_path):
    """The CLI reads the keys of FANGPIN_DATA_DIR: none here, so the development key the services ran on."""
    monkeypatch.setattr("runtime.cli.DATA_DIR", tmp_path)


def ndjson(*rows) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


async def _covered(ctx) -> bool:
    """Whether a checkpoint covers every event but checkpoints."""
    async with ctx.sessions() as session:
        upto = await session.scalar(sa.text(
            "select max((payload->>'upto_position')::bigint) from events where stream_id = 'checkpoints'"))
        last = await session.scalar(sa.text(
            "select max(global_position) from events where event_type <> 'CheckpointSigned'"))
    return upto is not None and upto >= last


async def _write_rounds(system) -> None:
    """Three rounds of intake's work, each covered by a checkpoint before the next begins."""
    intake, ctx = system.clients["intake"], system.context("intake")
    county = system.token("township_officer", "410721001")
    nhsa = system.token("department_system", kind="system", department="medical_insurance", sub="nhsa")

    async def imported(*rows):
        r = await intake.post("/v1/households:import", headers=county, content=ndjson(*rows))
        assert r.status_code == 200 and not r.json()["invalid"], r.text

    await imported(household("A1", 1), household("A2", 2), household("A3", 3))
    await imported(household("A1", 1, grid_worker_id="gw-2"))  # A1 at stream position 2
    await eventually(lambda: _covered(ctx))
    await imported(household("A1", 1, grid_worker_id="gw-3"), household("B1", 4), household("B2", 5))
    for n, amount in ((2, "23000.50"), (3, "41000.00")):  # clues with amounts and moments
        r = await intake.post("/v1/warnings", headers=nhsa, json=warning(f"M-{n}", id_number(n), **MEDICAL, amount=amount))
        assert r.status_code == 201 and r.json()["clue_id"], r.text
    await eventually(lambda: _covered(ctx))
    await imported(household("C1", 6), household("B1", 4, grid_worker_id="gw-4"))
    await eventually(lambda: _covered(ctx))


_TEMPLATE: dict[str, str] = {}  # the database intake wrote, copied for each test that tampers with it


@dataclass
class Store:
    url: str
    db: asyncpg.Connection

    async def verify(self, witnessed=None):
        return await verify_service(self.url, "intake", PUBLIC_KEY, witnessed=witnessed)

    async def positions(self, stream_id: str) -> list[int]:
        return [r[0] for r in await self.db.fetch(
            "select global_position from events where stream_id = $1 order by stream_position", stream_id)]

    async def checkpoints(self) -> list[dict]:
        return [orjson.loads(r[0]) for r in await self.db.fetch(
            "select payload::text from events where stream_id = 'checkpoints' order by stream_position")]


@pytest_asyncio.fixture
async def store(run_services, postgres):
    """A copy of an intake store with its checkpoints, written by the service as it ran."""
    if not _TEMPLATE:
        async with run_services("intake", checkpoint_interval_seconds=0.1) as system:
            await _write_rounds(system)
            _TEMPLATE["database"] = make_url(system.settings["intake"].database_url).database
    name = f"audit_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(_asyncpg_dsn(postgres.url("postgres")))
    try:
        await admin.execute(f'create database "{name}" template "{_TEMPLATE["database"]}"')
    finally:
        await admin.close()
    url = postgres.url(name)
    db = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        yield Store(url, db)
    finally:
        await db.close()


def _kinds(report) -> set[str]:
    return {finding.kind for finding in report.findings}


def _range_of(checkpoints: list[dict], position: int) -> tuple[dict, int]:
    """The checkpoint whose range (the one before's upto, its upto] holds `position`, and where that range begins."""
    since = 0
    for checkpoint in checkpoints:
        if since < position <= checkpoint["upto_position"]:
            return checkpoint, since + 1
        since = checkpoint["upto_position"]
    raise AssertionError(f"no checkpoint covers position {position}")


async def _cli(*args: str):
    """`fangpin audit ...` as an operator runs it (in a thread: it runs its own event loop)."""
    return await asyncio.to_thread(runner.invoke, cli, ["audit", *args])


async def test_an_intact_store_verifies_against_its_checkpoints_and_exits_0(store):
    report = await store.verify()
    checkpoints = await store.checkpoints()
    assert report.intact, [str(f) for f in report.findings]
    assert len(checkpoints) >= 3 and report.checkpoints == len(checkpoints)
    assert report.events == await store.db.fetchval("select count(*) from events")
    assert report.checked_upto == checkpoints[-1]["upto_position"] and not report.proven_per_stream_only
    # Each checkpoint after the first continues the one before it.
    assert [c["sequence"] for c in checkpoints] == list(range(1, len(checkpoints) + 1))
    assert all(c["previous_root"] == p["root"] for p, c in zip(checkpoints, checkpoints[1:]))

    result = await _cli("verify", "--service", "intake", "--database-url", store.url)
    assert result.exit_code == 0, result.output
    assert f"intake: {report.events:,} events checked in {report.streams:,} streams, {len(checkpoints)} checkpoints, " \
           "0 findings" in result.output


async def test_an_altered_payload_is_named_with_its_stream_and_positions_and_exits_2(store):
    [a2] = await store.positions("household-A2")
    await store.db.execute("update events set payload = jsonb_set(payload, '{grid_worker_id}', '\"gw-9\"')"
                           " where global_position = $1", a2)
    report = await store.verify()
    assert [(f.kind, f.stream_id, f.stream_position, f.global_position) for f in report.findings] == [
        (ALTERED, "household-A2", 1, a2)]

    result = await _cli("verify", "--service", "intake", "--database-url", store.url)
    assert result.exit_code == 2, result.output
    assert f"intake: stream household-A2 position 1, global position {a2}: altered" in result.output


async def test_a_missing_event_is_named_and_its_checkpoint_range_too(store):
    positions = await store.positions("household-A1")
    assert len(positions) == 3
    await store.db.execute("delete from events where global_position = $1", positions[1])
    report = await store.verify()
    [missing] = [f for f in report.findings if f.kind == MISSING]
    assert (missing.stream_id, missing.stream_position) == ("household-A1", 2)
    assert f"global position {positions[2]}" in missing.what
    checkpoint, since = _range_of(await store.checkpoints(), positions[1])
    [root] = [f for f in report.findings if f.kind == ROOT_DIFFERS and f.checkpoint == checkpoint["sequence"]]
    assert f"between global positions {since:,} and {checkpoint['upto_position']:,}" in root.what


async def test_two_events_swapped_are_named_out_of_order(store):
    _, second, third = await store.positions("household-A1")
    columns = ", ".join(c.name for c in ENVELOPE_COLUMNS) + ", txid, partition_key"
    async with store.db.transaction():
        rows = {r["global_position"]: r for r in await store.db.fetch(
            f"select global_position, {columns} from events where global_position = any($1)", [second, third])}
        await store.db.execute("delete from events where global_position = any($1)", [second, third])
        for position, row in ((second, rows[third]), (third, rows[second])):
            names = list(row.keys())[1:]
            await store.db.execute(
                f"insert into events (global_position, {columns}) overriding system value values "
                f"($1, {', '.join(f'${i + 2}' for i in range(len(names)))})", position, *[row[n] for n in names])
    report = await store.verify()
    swapped = [f for f in report.findings if f.kind == OUT_OF_ORDER]
    assert [(f.stream_id, f.stream_position, f.global_position) for f in swapped] == [("household-A1", 2, third)]
    assert f"stored after stream position 3 (global position {second})" in swapped[0].what
    assert _kinds(report) <= {OUT_OF_ORDER, ROOT_DIFFERS}  # no event's own content changed


async def test_a_whole_stream_deleted_is_found_by_the_checkpoint_alone_which_names_its_range(store):
    gone = await store.positions("household-B2")
    await store.db.execute("delete from events where stream_id = 'household-B2'")
    report = await store.verify()
    checkpoints = await store.checkpoints()
    checkpoint, since = _range_of(checkpoints, gone[0])
    # No chain sees it; the checkpoint covering it does, and only it: the next ranges are judged on their own.
    assert [(f.kind, f.checkpoint) for f in report.findings] == [(ROOT_DIFFERS, checkpoint["sequence"])]
    before = next((c["tree_size"] for c in checkpoints if c["sequence"] == checkpoint["sequence"] - 1), 0)
    signed = checkpoint["tree_size"] - before
    assert (f"an event between global positions {since:,} and {checkpoint['upto_position']:,} was deleted, added, "
            f"moved or rewritten ({signed:,} events signed there, {signed - len(gone):,} in the store)"
            ) in report.findings[0].what


async def test_an_edit_with_recomputed_hashes_passes_every_chain_and_is_caught_by_the_checkpoint_only(store):
    rows = await store.db.fetch(
        "select global_position, " + ", ".join(c.name for c in ENVELOPE_COLUMNS)
        + " from events where stream_id = 'household-A1' order by stream_position")
    previous_hash = None
    async with store.db.transaction():
        for i, row in enumerate(rows):
            fields = {c.name: row[c.name] for c in ENVELOPE_COLUMNS}
            fields["actor"], fields["payload"] = orjson.loads(fields["actor"]), orjson.loads(fields["payload"])
            if i == 0:
                fields["payload"]["poverty_status"] = "ordinary"  # the rewrite
            else:
                fields["prev_hash"] = previous_hash
            previous_hash = compute_hash(EventEnvelope.model_validate(fields).model_dump())
            await store.db.execute("update events set payload = $2::jsonb, prev_hash = $3, hash = $4 where global_position = $1",
                                   row["global_position"], orjson.dumps(fields["payload"]).decode(), fields["prev_hash"],
                                   previous_hash)
    report = await store.verify()
    assert report.findings and _kinds(report) == {ROOT_DIFFERS}, [str(f) for f in report.findings]
    checkpoints = await store.checkpoints()
    changed = {_range_of(checkpoints, row["global_position"])[0]["sequence"] for row in rows}
    assert {f.checkpoint for f in report.findings} == changed


async def test_a_deleted_checkpoint_is_a_gap_in_the_sequence(store):
    await store.db.execute("delete from events where stream_id = 'checkpoints' and stream_position = 2")
    report = await store.verify()
    [gap] = [f for f in report.findings if f.kind == CHECKPOINT]
    assert gap.checkpoint == 3 and "sequence goes from 1 to 3: checkpoint 2 is missing" in gap.what
    assert ("checkpoints", 2) in {(f.stream_id, f.stream_position) for f in report.findings if f.kind == MISSING}


async def test_the_last_checkpoint_deleted_is_seen_by_the_witness_that_kept_it(store, tmp_path):
    witness = tmp_path / "intake.checkpoints.jsonl"
    exported = await _cli("checkpoints", "--service", "intake", "--out", str(witness), "--database-url", store.url)
    assert exported.exit_code == 0, exported.output
    kept = [orjson.loads(line) for line in witness.read_bytes().splitlines()]
    assert kept == await store.checkpoints()
    last = kept[-1]["sequence"]

    # Cut from the end, the checkpoints leave no gap and every chain whole: only the witness can tell.
    await store.db.execute("delete from events where stream_id = 'checkpoints' and stream_position = $1", last)
    assert (await store.verify()).intact
    result = await _cli("verify", "--service", "intake", "--database-url", store.url, "--witness", str(witness))
    assert result.exit_code == 2, result.output
    assert f"intake: checkpoint {last}: witness: witnessed, but not in the store" in result.output
    report = await store.verify({c["sequence"]: c for c in kept})
    assert [(f.kind, f.checkpoint) for f in report.findings] == [(WITNESS, last)]  # the others are as witnessed

    # A stored checkpoint unlike the witness's copy (here: its signature spoilt) is named too.
    await store.db.execute("update events set payload = jsonb_set(payload, '{signature}', to_jsonb(repeat('0', 128)))"
                           " where stream_id = 'checkpoints' and stream_position = 1")
    report = await store.verify({c["sequence"]: c for c in kept})
    assert {(f.kind, f.checkpoint) for f in report.findings} >= {(WITNESS, 1), (CHECKPOINT, 1), (WITNESS, last)}
    assert any(f.kind == WITNESS and f.checkpoint == 1 and "differs from the witness's copy" in f.what
               for f in report.findings)


async def test_a_store_without_checkpoints_is_proven_per_stream_only(run_services):
    async with run_services("intake") as system:  # checkpoint_interval_seconds=0: none written
        county = system.token("county_officer", "410721")
        assert (await system.clients["intake"].post("/v1/households", headers=county,
                                                    json=household("N1", 1))).status_code == 201
        url = system.settings["intake"].database_url
    result = await _cli("verify", "--service", "intake", "--database-url", url)
    assert result.exit_code == 0, result.output
    assert "no checkpoints yet: integrity is proven only per stream" in result.output


async def test_an_unknown_service_or_an_unreachable_database_is_one_line_and_exit_1(tmp_path, postgres):
    unknown = await _cli("verify", "--service", "nosuch", "--database-url", "postgresql://nobody@/x")
    assert unknown.exit_code == 1 and "No service 'nosuch'" in unknown.output
    no_system = await _cli("verify", "--data-dir", str(tmp_path))
    assert no_system.exit_code == 1 and "No Fangpin system is running" in no_system.output
    absent = await _cli("verify", "--service", "intake", "--database-url", postgres.url("no_such_database_here"))
    assert absent.exit_code == 1 and "intake: its database does not answer" in absent.output
    assert len(absent.output.strip().splitlines()) == 1


async def test_verify_keeps_nothing_per_stream_ten_times_the_streams_take_no_more_memory(service_context, monkeypatch):
    """Most streams of a store hold one event (a clue, a visit): memory flat in the number of
    events means none kept per stream. Python's own count of what verify allocates (tracemalloc's
    peak; pages of 100 events) on 2,000 such streams, then on 20,000."""
    monkeypatch.setattr("audit.verify.PAGE_EVENTS", 100)
    ctx = await service_context("assistance")
    meta, peaks = EventMetadata(actor=Actor(kind="system", id="test")), []
    for first, last in ((0, 2_000), (2_000, 20_000)):
        async with unit_of_work(ctx, meta) as uow:
            await uow.append_many([(StreamHead(f"one-{n:05d}"), [NewEvent(_round_trip_payload(n))])
                                   for n in range(first, last)])
        tracemalloc.start()
        try:
            report = await verify_service(ctx.settings.database_url, ctx.name, PUBLIC_KEY)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert report.intact and report.streams == last, [str(f) for f in report.findings[:3]]
    assert peaks[1] < peaks[0] + 500_000, f"peaks {peaks[0]:,} and {peaks[1]:,} bytes"


# -- the writer -----------------------------------------------------------------------------------

def _round_trip_payload(n: int) -> UnitTestAuditRoundTrip:
    china = timezone(timedelta(hours=8))
    return UnitTestAuditRoundTrip(
        amounts=[Decimal("12345.67"), Decimal("0.10"), Decimal("100000000"), Decimal(n)],
        moments=[datetime(2026, 3, 1, 9, 30, tzinfo=china), datetime(2026, 3, 1, 1, 30, 0, 5, tzinfo=timezone.utc)],
        nested=[[{"a": [1, "二", None]}], [], [{"z": [], "b": [2 ** 62, "引号\"\\\n😀"]}]],
        text=f"张三 {n}\t\"quoted\" \\ back", big=2 ** 63 - 1)


async def _append(ctx, stream: str, count: int = 1) -> None:
    meta = EventMetadata(actor=Actor(kind="system", id="test"))
    async with unit_of_work(ctx, meta) as uow:
        await uow.append(stream, 0, [NewEvent(_round_trip_payload(n), household_id=stream) for n in range(count)])


async def test_hashes_recomputed_from_the_stored_rows_match_for_decimals_moments_nested_lists_and_text(service_context):
    ctx = await service_context("assistance")
    for stream in ("rt-1", "rt-2"):
        await _append(ctx, stream, 3)
    db = await asyncpg.connect(_asyncpg_dsn(ctx.settings.database_url))
    try:
        rows = await db.fetch(EVENTS_SQL)
        assert len(rows) == 6 and all(recomputed_hash(row) == row["hash"] for row in rows)
        report = await verify_service(db, "assistance", PUBLIC_KEY)
    finally:
        await db.close()
    assert report.intact and report.events == 6 and report.streams == 2 and report.proven_per_stream_only


async def test_a_position_held_by_a_running_transaction_is_waited_for_not_stepped_over(service_context):
    """A transaction that took its id first (a table write) appends after a younger one that is
    still running, and commits: "below the oldest running transaction" would read its event and step
    over the younger one's lower position for good; the writer waits for it."""
    ctx = await service_context("assistance")
    writer = CheckpointWriter(ctx)
    meta = EventMetadata(actor=Actor(kind="system", id="test"))
    async with ctx.sessions() as older, ctx.sessions() as younger:
        await older.execute(sa.text("select pg_current_xact_id()"))  # its id first
        await EventStore(younger, ctx.name, ctx.clock).append("held", 0, [NewEvent(_round_trip_payload(1))], meta)
        await EventStore(older, ctx.name, ctx.clock).append("early", 0, [NewEvent(_round_trip_payload(2))], meta)
        await older.commit()
        assert await writer.write() is None  # the younger one's position may still be filled
        await younger.commit()
    checkpoint = await writer.write()
    assert checkpoint is not None and checkpoint["tree_size"] == 2
    report = await verify_service(ctx.settings.database_url, ctx.name, PUBLIC_KEY)
    assert report.intact and report.checkpoints == 1, [str(f) for f in report.findings]


async def test_two_writers_race_to_one_checkpoint_and_nothing_new_signs_nothing(service_context):
    ctx = await service_context("assistance")
    await _append(ctx, "race", 2)
    first, second = CheckpointWriter(ctx), CheckpointWriter(ctx)
    signed = [c for c in await asyncio.gather(first.write(), second.write()) if c]
    assert len(signed) == 1 and signed[0]["sequence"] == 1
    # Only a checkpoint since: no checkpoint storm.
    assert await first.write() is None and await second.write() is None
    await _append(ctx, "race-2")
    assert (await second.write())["sequence"] == 2
    report = await verify_service(ctx.settings.database_url, ctx.name, PUBLIC_KEY)
    assert report.intact and report.checkpoints == 2


async def test_checkpoints_are_published_on_the_services_topic_and_other_services_ignore_them(run_services):
    async with run_services("intake", "screening", checkpoint_interval_seconds=0.1) as system:
        county = system.token("county_officer", "410721")
        assert (await system.clients["intake"].post("/v1/households", headers=county,
                                                    json=household("P1", 1))).status_code == 201
        await eventually(lambda: _covered(system.context("intake")))
        async with system.context("intake").sessions() as session:
            event_id = await session.scalar(sa.text(
                "select event_id::text from events where event_type = 'CheckpointSigned' order by global_position limit 1"))
        published = await topic_records(system.context("intake"), 2)
        assert event_id in {dict(r.headers)["event_id"].decode() for r in published}

        async def ignored_by_screening():
            async with system.context("screening").sessions() as session:
                return await session.scalar(sa.text("select outcome from inbox where event_id = :id"), {"id": event_id})

        assert await eventually(ignored_by_screening) == "ignored"
        assert CheckpointSigned.event_type not in system.apps["screening"].state.consumer.handlers


async def test_verify_finds_the_databases_of_the_system_running_from_its_data_folder(store, postgres, tmp_path):
    """As `./fangpin up` lays it out: its PostgreSQL in DATA_DIR/pg, one database per service."""
    folder = tmp_path / "system"
    folder.mkdir()
    (folder / "pg").symlink_to(postgres.server.pgdata)
    admin = await asyncpg.connect(_asyncpg_dsn(postgres.url("postgres")))
    try:
        await admin.execute('drop database if exists "fangpin_intake"')
        await admin.execute(f'create database "fangpin_intake" template "{_TEMPLATE["database"]}"')
        result = await _cli("verify", "--service", "intake", "--data-dir", str(folder))
        assert result.exit_code == 0, result.output
        assert "intake: " in result.output and ", 0 findings" in result.output
    finally:
        await admin.execute('drop database if exists "fangpin_intake"')
        await admin.close()


async def test_the_writer_signs_nothing_on_top_of_an_altered_checkpoint_and_says_so(service_context, caplog):
    ctx = await service_context("assistance")
    writer = CheckpointWriter(ctx)
    await _append(ctx, "w-1")
    assert (await writer.write())["sequence"] == 1
    async with ctx.sessions() as session, session.begin():
        await session.execute(sa.text("update events set payload = jsonb_set(payload, '{root}', to_jsonb(repeat('0', 64)))"
                                      " where stream_id = 'checkpoints'"))
    await _append(ctx, "w-2")
    assert await writer.write() is None
    assert "no checkpoint is signed while the last checkpoint, 1: its signature does not verify" in caplog.text
    report = await verify_service(ctx.settings.database_url, ctx.name, PUBLIC_KEY)
    assert {f.kind for f in report.findings} == {ALTERED, CHECKPOINT}
