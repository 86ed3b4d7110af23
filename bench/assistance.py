"""Identification at scale: 50,000 subjects identified at once (as after a county's annual review)
until assistance has opened a plan with a helper for every one of them.

    .venv/bin/python bench/assistance.py                    # 50,000 subjects, 300 helpers, fresh embedded system
    .venv/bin/python bench/assistance.py --subjects 5000 --helpers 60

It starts its own embedded system (PostgreSQL, Tansu, and the screening, notifier and assistance
processes) in a temporary folder on free ports, registers the helpers through notifier's API and waits
until assistance has mirrored them (not timed), then appends the SubjectIdentified events to
screening's store in one transaction, as the county's decisions would arrive, and times the relay,
the topic and assistance's consumer up to the last plan. It prints events per second and the time to
the last plan, and how many plans got a helper and how many helpers went over their limit.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("FANGPIN_ENVIRONMENT", "development")  # a throwaway system on the development keys
from contracts.envelope import Actor  # noqa: E402
from contracts.screening import SubjectIdentified  # noqa: E402
from contracts.topics import SERVICES  # noqa: E402
from contracts.vocabulary import RiskType  # noqa: E402
from runtime.auth import issue_token  # noqa: E402
from runtime.clock import SystemClock  # noqa: E402
from runtime.db import make_engine, make_sessions  # noqa: E402
from runtime.embedded import EmbeddedSystem, free_port  # noqa: E402
from runtime.eventstore import EventMetadata, EventStore, NewEvent, StreamHead  # noqa: E402
from runtime.settings import Settings  # noqa: E402

VILLAGES = [f"410721001{v:03d}" for v in range(1, 21)]
RISKS = [[RiskType.ILLNESS], [RiskType.INCOME_DROP, RiskType.SCHOOLING], [RiskType.HOUSING], [RiskType.UNSTABLE_EMPLOYMENT]]


def _dsn(system: EmbeddedSystem, service: str) -> str:
    return system.database_url(service).replace("postgresql+asyncpg", "postgresql")


async def _count(dsn: str, sql: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def register_helpers(system: EmbeddedSystem, helpers: int) -> None:
    settings = Settings()
    county = {"Authorization": "Bearer " + issue_token(settings, sub="bench", role="county_officer", region="410721")}
    notifier = f"http://127.0.0.1:{system.ports['notifier']}"
    async with aiohttp.ClientSession() as client:
        for n in range(helpers):
            staff = {"staff_id": f"helper-{n:04d}", "name": f"帮扶人{n}", "role": "helper",
                     "region_code": VILLAGES[n % len(VILLAGES)]}
            async with client.post(f"{notifier}/v1/staff", json=staff, headers=county) as answer:
                if answer.status not in (200, 201):
                    raise SystemExit(f"registering a helper failed: {answer.status} {await answer.text()}")
    started = time.perf_counter()
    while await _count(_dsn(system, "assistance"), "select count(*) from helpers where active") < helpers:
        if time.perf_counter() - started > 120:
            raise SystemExit("assistance did not mirror the helpers within 120 s")
        await asyncio.sleep(0.2)


async def identify(system: EmbeddedSystem, subjects: int) -> None:
    """screening's decisions, appended to its store in one transaction (its relay publishes them)."""
    engine = make_engine(Settings(database_url=system.database_url("screening")))
    meta = EventMetadata(actor=Actor(kind="staff", id="county-bench", role="county_officer", region="410721"))
    try:
        async with make_sessions(engine)() as session, session.begin():
            store = EventStore(session, "screening", SystemClock())
            await store.append_many([(StreamHead(f"case-bench-{i}"), [NewEvent(
                SubjectIdentified(case_id=f"bench-{i}", household_id=f"S{i:07d}", step="closed",
                                  category="sudden_hardship", risk_types=RISKS[i % len(RISKS)]),
                household_id=f"S{i:07d}", region_code=VILLAGES[i % len(VILLAGES)])]) for i in range(subjects)], meta)
    finally:
        await engine.dispose()


async def bench(system: EmbeddedSystem, subjects: int, helpers: int) -> None:
    print(f"setup: {helpers} helpers in {len(VILLAGES)} villages (not timed)", flush=True)
    await register_helpers(system, helpers)
    print(f"timed: {subjects:,} subjects identified in one transaction, until every plan is open", flush=True)
    started = time.perf_counter()
    await identify(system, subjects)
    appended = time.perf_counter() - started
    assistance = _dsn(system, "assistance")
    plans, last_report = 0, 0.0
    while plans < subjects:
        plans = await _count(assistance, "select count(*) from plans")
        elapsed = time.perf_counter() - started
        if elapsed - last_report > 5:
            print(f"  plans: {plans:,}/{subjects:,} after {elapsed:.0f}s ({plans / elapsed:,.0f}/s)", flush=True)
            last_report = elapsed
        if elapsed > 1800:
            raise SystemExit(f"gave up: {plans:,}/{subjects:,} plans after {elapsed:.0f}s")
        await asyncio.sleep(0.2)
    total = time.perf_counter() - started
    conn = await asyncpg.connect(assistance)
    try:
        helped = await conn.fetchval("select count(*) from plans where helper_id is not null")
        events = await conn.fetchval("select count(*) from events where stream_id like 'plan-%'")
        over = await conn.fetchval("select count(*) from events where event_type = 'HelperAssigned' "
                                   "and (payload->>'over_limit')::boolean")
    finally:
        await conn.close()
    print(f"cores: {os.cpu_count()}")
    print(f"subjects appended to screening's store: {appended:.1f}s")
    print(f"time to the last plan: {total:.1f}s for {subjects:,} subjects ({subjects / total:,.0f} subjects/s)")
    print(f"assistance events written: {events:,} ({events / total:,.0f} events/s: plan opened, helper, gaps)")
    print(f"plans with a helper: {helped:,}; helper assignments over the limit: {over:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=50_000)
    parser.add_argument("--helpers", type=int, default=300)
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder (logs) afterwards")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="fangpin-bench-"))
    system = EmbeddedSystem(data_dir, kafka_port=free_port(), ports={s: free_port() for s in SERVICES},
                            services=("screening", "notifier", "assistance"))
    try:
        system.start(say=lambda line: print(line, flush=True))
        asyncio.run(bench(system, args.subjects, args.helpers))
    except BaseException:
        print(f"service logs: {system.logs}", flush=True)
        args.keep = True
        raise
    finally:
        system.stop(say=lambda line: None)
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
