"""The fault suite (issue 12 §5): load through the whole embedded system, one fault at a time, then
the checker (tests/faults/checker.py) until the system has healed by itself; the time to heal is
printed (`pytest -s`) and attached as the `heal_seconds` property (`--junitxml`).

    .venv/bin/python -m pytest tests/faults -m faults -s
"""
from __future__ import annotations

import asyncio
import time

import pytest

from services.intake.api.warnings import BATCH_CHUNK_ROWS
from tests.faults.checker import collect, evaluate, report
from tests.faults.harness import Run, run_scenario

pytestmark = [pytest.mark.faults, pytest.mark.integration]

QUIET_SECONDS = 6.0  # the baseline's "fault": as long as the batch upload takes, and a little more
PG_DOWN_SECONDS = 5.0
BROKER_PAUSE_SECONDS = 45.0
SLOW_BATCH_SECONDS = 15.0  # how long the inbox stays locked: longer than the poll interval below
SLOW_POLL_INTERVAL_MS = 6000
CATCH_SECONDS = 10.0  # how long to look for screening in the middle of a consumer transaction


async def wait_for(event: asyncio.Event, seconds: float = 20.0) -> None:
    await asyncio.wait_for(event.wait(), seconds)


async def no_fault(run: Run) -> None:
    await asyncio.sleep(QUIET_SECONDS)


async def damage_and_check(run: Run) -> None:
    """The checker sees real damage: a clue row deleted in intake's store and a task doubled in notifier's."""
    intake, notifier = await run.connect("intake"), await run.connect("notifier")
    try:
        lost = await intake.fetchval("delete from clues where clue_id = (select clue_id from warnings"
                                     " where source_record_id = 'B-00007') returning clue_id")
        doubled = await notifier.fetchrow(
            "insert into notifications (notification_id, staff_id, kind, subject, reference, created_at)"
            " select 'twin-' || notification_id, staff_id, kind, subject, reference, created_at"
            " from notifications order by notification_id limit 1 returning staff_id, reference")
    finally:
        await intake.close()
        await notifier.close()
    findings = evaluate(await collect(run.view), run.load.ledger, run.view.prefix, run.view.partitions)
    print("   the checker on deliberate damage:\n" + report(findings))
    assert any(f.check == "intake" and "B-00007: 0 clues" in f.message for f in findings), findings
    assert any(f.check == "intake" and lost in f.message and "no clue row" in f.message for f in findings), findings
    assert any(f.check == "notifier" and "doubled" in f.message and f"{doubled['reference']} for {doubled['staff_id']}"
               in f.message for f in findings), findings


async def test_no_fault(tmp_path, postgres, broker, record_property):
    await run_scenario("no fault", tmp_path, postgres, broker, no_fault, record_property, after_healed=damage_and_check)


@pytest.mark.parametrize("outage", [1.0, 20.0], ids=["1s", "20s"])
async def test_broker_killed_and_back_empty(tmp_path, postgres, own_broker, record_property, outage):
    async def fault(run: Run) -> None:
        await wait_for(run.load.batch_half_sent)
        await asyncio.to_thread(run.broker.kill)
        run.note(f"broker killed -9 (half the batch uploaded); back in {outage:.0f}s, empty")
        await asyncio.sleep(outage)
        await asyncio.to_thread(run.broker.start)
        run.note(f"broker listening again on {run.broker.bootstrap}")

    await run_scenario(f"broker kill -9, {outage:.0f}s outage", tmp_path, postgres, own_broker, fault, record_property,
                       republishes_allowed=1)


async def test_consumer_killed_mid_batch(tmp_path, postgres, broker, record_property):
    """screening killed -9 while its consumer is inside a batch transaction (seen in pg_stat_activity),
    then started again."""

    async def fault(run: Run) -> None:
        await wait_for(run.load.batch_half_sent)
        conn = await run.connect("screening")
        try:
            caught = None
            deadline = time.monotonic() + CATCH_SECONDS
            while caught is None and time.monotonic() < deadline:
                caught = await conn.fetchrow(
                    "select pid, state, left(regexp_replace(query, '\\s+', ' ', 'g'), 100) as query from pg_stat_activity"
                    " where datname = current_database() and pid <> pg_backend_pid() and xact_start is not null"
                    " and state in ('active', 'idle in transaction')"
                    " and query ~* '(inbox|cases|household_labour|allowance_watch)'")
                if caught is None:
                    await asyncio.sleep(0.005)
        finally:
            await conn.close()
        await run.kill("screening")
        run.note("... in a consumer transaction: " + (f"{caught['state']}: {caught['query']}" if caught else
                                                     f"NONE caught within {CATCH_SECONDS:.0f}s (killed anyway)"))
        await asyncio.sleep(1.0)
        await run.restart("screening")

    await run_scenario("screening killed -9 mid-batch", tmp_path, postgres, broker, fault, record_property)


async def test_intake_killed_mid_upload(tmp_path, postgres, broker, record_property):
    """intake killed -9 after the batch's first chunk is committed and before the upload ends; the
    clients send the same file and the same single warnings (same Idempotency-Keys) again."""
    batch_rows = BATCH_CHUNK_ROWS + 400

    def prepare(load) -> None:
        load.batch_hold_after = BATCH_CHUNK_ROWS + 200  # the upload stops there until intake is killed

    async def fault(run: Run) -> None:
        await wait_for(run.load.batch_held, 30)
        conn = await run.connect("intake")
        try:
            committed = 0
            deadline = time.monotonic() + 15
            while committed < BATCH_CHUNK_ROWS and time.monotonic() < deadline:
                committed = await conn.fetchval("select count(*) from warnings where source_record_id like 'B-%'")
                await asyncio.sleep(0.05)
        finally:
            await conn.close()
        await run.kill("intake")
        run.note(f"... with the upload held after {run.load.batch_rows_sent} of {batch_rows} rows, "
                 f"{committed} of them committed")
        run.load.batch_release.set()
        await asyncio.sleep(1.0)
        await run.restart("intake")

    await run_scenario("intake killed -9 mid-upload", tmp_path, postgres, broker, fault, record_property,
                       batch_rows=batch_rows, prepare=prepare)


async def test_database_stopped_immediately(tmp_path, own_postgres, broker, record_property):
    """`pg_ctl stop -m immediate` of the system's PostgreSQL (a server of the test's own), started
    again after PG_DOWN_SECONDS."""

    async def fault(run: Run) -> None:
        await wait_for(run.load.batch_half_sent)
        await asyncio.to_thread(run.postgres.stop_immediately)
        run.note(f"PostgreSQL stopped (immediate); back in {PG_DOWN_SECONDS:.0f}s")
        await asyncio.sleep(PG_DOWN_SECONDS)
        await asyncio.to_thread(run.postgres.start_again)
        run.note("PostgreSQL accepting connections again")

    await run_scenario("PostgreSQL stopped immediately", tmp_path, own_postgres, broker, fault, record_property)


async def test_broker_paused(tmp_path, postgres, own_broker, record_property):
    async def fault(run: Run) -> None:
        await wait_for(run.load.batch_half_sent)
        run.broker.pause()
        run.note(f"broker paused (SIGSTOP) for {BROKER_PAUSE_SECONDS:.0f}s")
        await asyncio.sleep(BROKER_PAUSE_SECONDS)
        run.broker.resume()
        run.note("broker resumed (SIGCONT)")

    await run_scenario("broker paused", tmp_path, postgres, own_broker, fault, record_property)


async def test_consumer_batch_slower_than_max_poll_interval(tmp_path, postgres, broker, record_property):
    """screening runs with a max_poll_interval of SLOW_POLL_INTERVAL_MS, and its consumer's batch
    transaction waits SLOW_BATCH_SECONDS on a lock a test connection holds on its inbox."""

    async def fault(run: Run) -> None:
        await wait_for(run.load.batch_half_sent)
        conn = await run.connect("screening")
        try:
            async with conn.transaction():
                await conn.execute("lock table inbox in access exclusive mode")
                run.note(f"screening's inbox locked (access exclusive) for {SLOW_BATCH_SECONDS:.0f}s")
                await asyncio.sleep(SLOW_BATCH_SECONDS)
                waiting = await conn.fetchval(
                    "select count(*) from pg_stat_activity where datname = current_database()"
                    " and wait_event_type = 'Lock'")
        finally:
            await conn.close()
        run.note(f"inbox lock released ({waiting} sessions were waiting on a lock)")

    await run_scenario("consumer batch slower than max_poll_interval", tmp_path, postgres, broker, fault,
                       record_property,
                       env={"screening": {"FANGPIN_CONSUMER_MAX_POLL_INTERVAL_MS": str(SLOW_POLL_INTERVAL_MS)}})
