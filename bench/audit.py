"""Audit benchmark: `fangpin audit verify`'s core (audit.verify.verify_service) and the rebuild of
intake's read tables from its event store (runtime.projections.rebuild), on an intake store of
1,000,000 events: events per second and peak memory (RSS), at two store sizes.

    .venv/bin/python bench/audit.py --data-dir /tmp/fangpin-audit-bench   # builds the stores (minutes), then measures
    .venv/bin/python bench/audit.py --data-dir /tmp/fangpin-audit-bench   # again: reuses the stores, measures only
    .venv/bin/python bench/audit.py --events 100000 --smaller 25000       # a quick one, in a temporary folder

It starts its own embedded PostgreSQL in the data folder (`--data-dir`, kept; without it a temporary
folder, removed unless `--keep`) and builds two intake stores, of `--smaller` and `--events` events
(the bigger one goes on from a copy of the smaller). The events are written as intake writes them:
made by intake's own domain and command helpers, appended through UnitOfWork.append_many (the
EventStore seals each with its hash and chain; intake's projections write its read tables in the
same transaction), about 5,000 events a transaction. Each transaction holds a household import
(HouseholdRegistered with members), updates of households (a few "hot" households updated in every
transaction: streams of many events), single department warnings (RiskClueRaised), visits
(VisitRecorded, some raising a RiskClueRaised), self-declarations, unmatched warnings, and every
other transaction a batch upload (RiskCluesRaised, one per topic partition); all but the import in
a shuffled order. Most streams hold one event. CheckpointWriter signs a checkpoint, as the service
does, every eighth of the store and at its end. Members, warnings and declarations (primary
records, never rebuilt) are not written.

It then measures, at each size and each in a fresh process (its peak RSS, the kernel's high-water
mark, is its own), with the CPU time it, PostgreSQL and any other work on the machine used:
- verify: verify_service over the whole store (hashes and checkpoints' Merkle roots in global
  order, then the chains in stream order);
- rebuild: intake's projected tables rebuilt into empty copies of them, as `fangpin audit rebuild`
  does (a scratch schema);
- rebuild in place: the live rows deleted first, as the scenario-end rebuild test does.
Both rebuilds run in a transaction that is rolled back, and must give the live tables' row counts.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from multiprocessing import get_context
from pathlib import Path

import asyncpg
import psutil
import sqlalchemy as sa
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("FANGPIN_ENVIRONMENT", "development")  # a throwaway store on the development keys
from audit.verify import verify_service  # noqa: E402
from bench.ingest import VILLAGES, head_id_number  # noqa: E402
from contracts.base import decode_payload  # noqa: E402
from contracts.envelope import Actor  # noqa: E402
from contracts.intake import VisitRecorded, WarningUnmatched  # noqa: E402
from contracts.vocabulary import ClueChannel, LaborCapacity, RiskType  # noqa: E402
from runtime.checkpoints import CheckpointWriter  # noqa: E402
from runtime.clock import FixedClock  # noqa: E402
from runtime.db import _asyncpg_dsn, make_engine, make_sessions, migrate  # noqa: E402
from runtime.embedded import EmbeddedPostgres  # noqa: E402
from runtime.eventstore import EventMetadata, NewEvent, StreamHead  # noqa: E402
from runtime.ids import new_id_str  # noqa: E402
from runtime.integrity import signing_key  # noqa: E402
from runtime.projections import rebuild  # noqa: E402
from runtime.service import ServiceContext, unit_of_work  # noqa: E402
from runtime.settings import Settings  # noqa: E402
from services.intake import domain  # noqa: E402
from services.intake.commands import clue_on_its_own, clues_together, new_clue, raise_clue  # noqa: E402
from services.intake.projections import PROJECTIONS  # noqa: E402
from services.intake.store import HouseholdRef, clues, households, visits  # noqa: E402
from services.intake.vault import IdentityVault  # noqa: E402

# One transaction of the store.
IMPORTED_HOUSEHOLDS = 1_000  # a household import
HOT_HOUSEHOLDS, HOT_UPDATES = 20, 5  # households 0-19, updated 5 times in every transaction
UPDATED_HOUSEHOLDS = 100  # others, updated once
BATCH_UPLOAD_ROWS = 1_000  # every other transaction: a department's batch upload (RiskCluesRaised per partition)
TRANSACTION_EVENTS = 5_000  # the rest: single requests, until the transaction holds this many events
SINGLES = {"warning": 50, "visit": 25, "visit with risks": 12, "declaration": 5, "unmatched warning": 8}  # weights
CHECKPOINTS = 8  # a checkpoint every eighth of the store, and one at its end
START = datetime(2026, 1, 5, 1, 0, tzinfo=timezone.utc)
HOURS_PER_TRANSACTION = 6
BUILT = "bench_audit_built"  # this bench's own table in each store: how far its building went

RELATIONS = ("head", "spouse", "child", "parent")
LABOUR = (LaborCapacity.FULL, LaborCapacity.WEAK, LaborCapacity.NONE)
WARNINGS = [("civil_affairs", "new_dibao"), ("civil_affairs", "new_tekun"), ("civil_affairs", "relief_application"),
            ("medical_insurance", "high_medical_expense"), ("rural_revitalization", "quarterly_income_fall"),
            ("health", "serious_illness"), ("emergency", "disaster_loss"), ("human_resources", "unemployment"),
            ("education", "school_dropout"), ("housing", "unsafe_housing")]
NOTES = (None, None, "家中无人，电话联系户主，情况稳定。", "户主务工收入减少，已登记。",
         "子女在校就读，医疗支出较大，建议纳入关注。")
ACTOR = Actor(kind="staff", id="bench-county", role="county_officer", region="410721")


def store_name(events: int) -> str:
    return f"bench_audit_{events}"


def bench_settings(url: str) -> Settings:
    return Settings(service="intake", database_url=url, environment="development")


class ProgressLine:
    """A line every few seconds: done, rate, time left."""

    def __init__(self, label: str, total: int, start_at: int = 0, every: float = 5.0) -> None:
        self.label, self.total, self.start_at, self.every = label, total, start_at, every
        self.started = self.said = time.perf_counter()

    def update(self, done: int, final: bool = False) -> None:
        now = time.perf_counter()
        if not final and now - self.said < self.every:
            return
        self.said = now
        rate = (done - self.start_at) / max(now - self.started, 1e-9)
        left = (self.total - done) / rate if rate else 0
        print(f"  {self.label}: {done:,}/{self.total:,} events, {rate:,.0f} events/s, "
              f"{'done' if final else f'{left:.0f} s left'}", flush=True)


# -- building a store ---------------------------------------------------------------------------

def household_ref(index: int) -> HouseholdRef:
    return HouseholdRef(f"H{index:08d}", VILLAGES[index % len(VILLAGES)], "out_of_poverty" if index % 3 == 0 else "ordinary")


def household_facts(index: int, version: int, vault: IdentityVault) -> domain.HouseholdFacts:
    """Household `index` as its `version`-th registration (0) or update says: its group moves on."""
    ref = household_ref(index)
    members = []
    for j in range(1 + index % 4):
        id_number = head_id_number(index * 4 + j)
        members.append(domain.Member(member_id=vault.member_id(id_number), relation=RELATIONS[j],
                                     birth_date=domain.parse_id_number(id_number), labor_capacity=LABOUR[(index + j) % 3],
                                     disabled=(index + j) % 17 == 0, in_school=j == 2))
    return domain.HouseholdFacts(ref.household_id, ref.region_code, f"第{(index + version) % 9 + 1}组", ref.poverty_status,
                                 f"gw-{index // 15}", tuple(members))


def warning_clue(rng: random.Random, household: HouseholdRef, now: datetime, source_record_id: str) -> dict:
    department, indicator = rng.choice(WARNINGS)
    thresholded = domain.indicator_of(department, indicator).thresholded
    return raise_clue(new_id_str(), household, ClueChannel.DEPARTMENT_WARNING, now,
                      list(domain.indicator_of(department, indicator).risk_types), department=department,
                      source_record_id=source_record_id, indicator=indicator,
                      observed_at=now - timedelta(days=rng.randrange(60)),
                      amount=Decimal(rng.randrange(20_000, 90_000)) if thresholded else None,
                      over_threshold=True if thresholded else None)


async def write_transaction(ctx: ServiceContext, vault: IdentityVault, number: int, registered: int) -> tuple[int, int]:
    """Transaction `number` of the store, `registered` households in it before: (events, households) written."""
    rng = random.Random(number)
    now = ctx.clock.now()
    today = now.date()
    imported = [(StreamHead(f"household-{household_ref(i).household_id}"),
                 [NewEvent(event, household_id=household_ref(i).household_id, region_code=household_ref(i).region_code)
                  for event in domain.register_or_update(None, household_facts(i, 0, vault), today)])
                for i in range(registered, registered + IMPORTED_HOUSEHOLDS)]
    requests: list[tuple[StreamHead, list[NewEvent]]] = []
    async with unit_of_work(ctx, EventMetadata(actor=ACTOR)) as uow:
        if registered > HOT_HOUSEHOLDS + UPDATED_HOUSEHOLDS:
            updated = {i: HOT_UPDATES for i in range(HOT_HOUSEHOLDS)}
            updated.update((i, 1) for i in rng.sample(range(HOT_HOUSEHOLDS, registered), UPDATED_HOUSEHOLDS))
            latest = await uow.events.last_events([f"household-{household_ref(i).household_id}" for i in updated])
            for i, times in updated.items():
                previous = latest[f"household-{household_ref(i).household_id}"]
                current, news = decode_payload(previous), []
                for version in range(previous.stream_position, previous.stream_position + times):
                    current = domain.register_or_update(current, household_facts(i, version, vault), today)[0]
                    news.append(NewEvent(current, household_id=current.household_id, region_code=current.region_code))
                requests.append((StreamHead(previous.stream_id, previous.stream_position, previous.hash), news))
        if number % 2:
            rows = [warning_clue(rng, household_ref(rng.randrange(registered)), now, f"BATCH-{number}-{n}")
                    for n in range(BATCH_UPLOAD_ROWS)]
            requests.extend(clues_together(rows, ctx.settings.kafka_partitions))
        kinds, weights = list(SINGLES), list(SINGLES.values())
        events = sum(len(news) for _, news in imported + requests)
        while events < TRANSACTION_EVENTS:
            index = rng.randrange(registered + IMPORTED_HOUSEHOLDS)  # those of this import too: they come first
            household = household_ref(index)
            kind = rng.choices(kinds, weights)[0]
            if kind == "warning":
                requests.append(clue_on_its_own(warning_clue(rng, household, now, f"W-{number}-{events}")))
            elif kind == "unmatched warning":
                department, indicator = rng.choice(WARNINGS)
                warning_id = new_id_str()
                requests.append((StreamHead(f"warning-{warning_id}"), [NewEvent(WarningUnmatched(
                    warning_id=warning_id, department=department, source_record_id=f"U-{number}-{events}",
                    indicator=indicator, observed_at=now - timedelta(days=3)), occurred_at=now - timedelta(days=3))]))
            elif kind == "declaration":
                requests.append(new_clue(new_id_str(), household, ClueChannel.SELF_DECLARATION, now,
                                         [rng.choice(list(RiskType))], source_record_id=new_id_str(), observed_at=now))
            else:
                visit_id, visited_at = new_id_str(), now - timedelta(hours=rng.randrange(1, 72))
                risks = sorted(rng.sample(list(RiskType), rng.randint(1, 2))) if kind == "visit with risks" else []
                clue_id = new_id_str() if risks else None
                requests.append((StreamHead(f"visit-{visit_id}"), [NewEvent(
                    VisitRecorded(visit_id=visit_id, household_id=household.household_id, worker_id=f"gw-{index // 15}",
                                  visited_at=visited_at, risk_types=risks, clue_id=clue_id, notes=rng.choice(NOTES)),
                    household_id=household.household_id, region_code=household.region_code, occurred_at=visited_at)]))
                if clue_id:
                    requests.append(new_clue(clue_id, household, ClueChannel.GRID_VISIT, now, risks,
                                             worker_id=f"gw-{index // 15}", source_record_id=visit_id,
                                             observed_at=visited_at))
                    events += 1
            events += 1
        rng.shuffle(requests)
        written = await uow.append_many(imported + requests)
        await uow.session.execute(sa.text(f"update {BUILT} set transactions = :n, households = :h"),
                                  {"n": number + 1, "h": registered + IMPORTED_HOUSEHOLDS})
    return len(written), IMPORTED_HOUSEHOLDS


async def event_count(connection: asyncpg.Connection) -> int:
    return await connection.fetchval("select count(*) from events")


async def build_store(url: str, target: int) -> None:
    """Append to the store at `url` until it holds `target` events (a checkpoint signed at the end)."""
    settings = bench_settings(url)
    engine = make_engine(settings)
    try:
        await migrate(engine, "intake")
        ctx = ServiceContext("intake", settings, engine, make_sessions(engine), FixedClock(START), PROJECTIONS)
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"create table if not exists {BUILT} (transactions int not null, households int not null)"))
            if (await conn.execute(sa.text(f"select count(*) from {BUILT}"))).scalar() == 0:
                await conn.execute(sa.text(f"insert into {BUILT} values (0, 0)"))
            number, registered = (await conn.execute(sa.text(f"select transactions, households from {BUILT}"))).one()
            done = (await conn.execute(sa.text("select count(*) from events"))).scalar()
        if done >= target:
            return
        writer, vault = CheckpointWriter(ctx), IdentityVault(settings)
        progress = ProgressLine(f"building {make_url(url).database}", target, start_at=done)
        every = max(target // CHECKPOINTS, TRANSACTION_EVENTS)
        while done < target:
            ctx.clock = FixedClock(START + timedelta(hours=HOURS_PER_TRANSACTION * number))
            written, imported = await write_transaction(ctx, vault, number, registered)
            if (done + written) // every > done // every and done + written < target:
                written += 1 if await writer.write() else 0
            done, number, registered = done + written, number + 1, registered + imported
            progress.update(done)
        written = 1 if await writer.write() else 0
        progress.update(done + written, final=True)
        async with engine.connect() as conn:
            await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(sa.text("vacuum analyze"))
    finally:
        await engine.dispose()


async def build_stores(postgres: EmbeddedPostgres, sizes: list[int]) -> dict[int, str]:
    """One store per size, each built (or found) in its own database; a bigger one starts as a copy
    of the one below it."""
    admin = await asyncpg.connect(_asyncpg_dsn(postgres.url("postgres")))
    urls: dict[int, str] = {}
    try:
        previous = None
        for size in sizes:
            name = store_name(size)
            if not await admin.fetchval("select 1 from pg_database where datname = $1", name):
                template = f" template {store_name(previous)}" if previous else ""
                await admin.execute(f'create database "{name}"{template}')
            urls[size] = postgres.url(name)
            await build_store(urls[size], size)
            previous = size
    finally:
        await admin.close()
    return urls


# -- measuring (each in a fresh process) --------------------------------------------------------

class Meter:
    """Time, CPU and memory of one measurement, in the process that makes it. Peak RSS is the
    kernel's high-water mark (VmHWM), reset as it starts (getrusage's ru_maxrss would still hold
    the bench's own RSS, of which this process was forked). PostgreSQL's CPU is read while the
    measurement's connection is open (an ended backend's time reaches its parent only once reaped)."""

    def __init__(self, postgres_pid: int) -> None:
        self.postmaster = psutil.Process(postgres_pid)
        self.own = psutil.Process()

    def _postgres_cpu(self) -> float:
        total = 0.0
        for process in [self.postmaster, *self.postmaster.children()]:
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def start(self) -> None:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the RSS of now
        self.rss_before = self.own.memory_info().rss
        self.machine, self.postgres = _machine_cpu(), self._postgres_cpu()
        self.cpu, self.wall = time.process_time(), time.perf_counter()

    def stop(self) -> dict:
        seconds, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        postgres = self._postgres_cpu() - self.postgres
        elsewhere = max(0.0, _machine_cpu() - self.machine - postgres - cpu)
        peak = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("VmHWM:"))
        return {"seconds": seconds, "cpu": cpu, "postgres_cpu": postgres, "elsewhere_cpu": elsewhere,
                "rss_before": self.rss_before, "peak": peak}


def _machine_cpu() -> float:
    times = psutil.cpu_times()
    return times.user + times.system


# What is measured: `fangpin audit verify`'s core; the rebuild into empty copies of the tables (as
# `fangpin audit rebuild` does, in a scratch schema); the rebuild in place, which first deletes the
# live rows (as the scenario-end test does). Each in a transaction rolled back.
MEASURES = ("verify", "rebuild", "rebuild in place")


def measured(kind: str, url: str, postgres_pid: int) -> dict:
    """Runs in a process of its own, so that its memory is this measurement's."""
    meter = Meter(postgres_pid)
    return asyncio.run(verify_measured(url, meter) if kind == "verify"
                       else rebuild_measured(url, meter, in_place=kind == "rebuild in place"))


async def verify_measured(url: str, meter: Meter) -> dict:
    key = signing_key(bench_settings(url).audit_signing_key).public_key()
    connection = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        progress = ProgressLine("verify, two passes (each event counted twice)", 2 * await event_count(connection))
        meter.start()
        report = await verify_service(connection, "intake", key, lambda done, _: progress.update(done))
        measure = meter.stop()
    finally:
        await connection.close()
    print(f"  {report.summary()}", flush=True)
    if not report.intact:
        raise SystemExit(f"the bench's store does not verify: {report.summary()}; {[str(f) for f in report.findings[:5]]}")
    return {"events": report.events, "streams": report.streams, "checkpoints": report.checkpoints, **measure}


async def rebuild_measured(url: str, meter: Meter, in_place: bool) -> dict:
    engine = make_engine(bench_settings(url))
    tables = (households, clues, visits)
    try:
        async with make_sessions(engine)() as session:
            live = {t.name: await session.scalar(sa.select(sa.func.count()).select_from(t)) for t in tables}
            print(f"  rebuild{' in place' if in_place else ''}: "
                  f"{await session.scalar(sa.text('select count(*) from events')):,} events …", flush=True)
            if not in_place:  # the projections write unqualified names: they find the empty copies first
                await session.execute(sa.text("create schema bench_rebuild"))
                for table in PROJECTIONS.tables:
                    await session.execute(sa.text(
                        f'create table bench_rebuild."{table.name}" (like public."{table.name}" including all)'))
                await session.execute(sa.text("set local search_path to bench_rebuild, public"))
            meter.start()
            read = await rebuild(session, PROJECTIONS)
            measure = meter.stop()
            rebuilt = {t.name: await session.scalar(sa.select(sa.func.count()).select_from(t)) for t in tables}
            await session.rollback()
    finally:
        await engine.dispose()
    if rebuilt != live:
        raise SystemExit(f"the rebuild wrote other row counts than the live tables hold: {rebuilt} != {live}")
    return {"events": read, "rows": rebuilt, **measure}


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the bigger store")
    parser.add_argument("--smaller", type=int, default=None, help="events in the smaller store (default: a quarter)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where the embedded PostgreSQL keeps the stores: kept, and reused by the next run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder (with no --data-dir)")
    args = parser.parse_args()
    sizes = sorted({args.smaller if args.smaller is not None else args.events // 4, args.events} - {0})

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="fangpin-audit-bench-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    print(f"PostgreSQL starting (data in {data_dir / 'pg'})", flush=True)
    postgres = EmbeddedPostgres(data_dir / "pg")
    try:
        started = time.perf_counter()
        urls = asyncio.run(build_stores(postgres, sizes))
        print(f"stores ready in {time.perf_counter() - started:,.0f} s: {', '.join(f'{s:,} events' for s in sizes)}",
              flush=True)
        results: dict[tuple[int, str], dict] = {}
        for size in sizes:
            for kind in MEASURES:
                with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                    results[size, kind] = pool.submit(measured, kind, urls[size],
                                                      postgres.server.get_postmaster_info().pid).result()
        print(f"cores: {os.cpu_count()}; load average after: {os.getloadavg()[0]:.2f}")
        for size in sizes:
            for kind in MEASURES:
                r = results[size, kind]
                what = (f"{r['streams']:,} streams, {r['checkpoints']} checkpoints" if kind == "verify"
                        else ", ".join(f"{n} {c:,}" for n, c in r["rows"].items()) + " rows")
                print(f"{kind}, {size:,}-event store: {r['events'] / r['seconds']:,.0f} events/s ({r['events']:,} events "
                      f"in {r['seconds']:.1f} s; {what}); peak RSS {mib(r['peak'])} ({mib(r['rss_before'])} as it began); "
                      f"CPU meanwhile: this process {r['cpu']:.1f} s, PostgreSQL {r['postgres_cpu']:.1f} s, "
                      f"other work on the machine {r['elsewhere_cpu']:.1f} s")
        if len(sizes) == 2:
            small, big = sizes
            for kind in MEASURES:
                said = (f"memory, {kind}: peak RSS {mib(results[small, kind]['peak'])} at {small:,} events, "
                        f"{mib(results[big, kind]['peak'])} at {big:,}")
                if kind == "verify":  # pages of the store, read twice; nothing kept per stream
                    grew = results[big, kind]["peak"] - results[small, kind]["peak"]
                    streams = results[big, kind]["streams"] - results[small, kind]["streams"]
                    said += (f": {grew / 2**20:+.1f} MiB for the {streams:,} more streams (pages of "
                             "audit.verify.PAGE_EVENTS events)")
                else:
                    said += ": pages of the store (runtime.projections.REBUILD_BATCH events)"
                print(said)
    finally:
        postgres.stop()
        if args.data_dir is None and not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
        elif args.data_dir is None:
            print(f"data kept in {data_dir}")


if __name__ == "__main__":
    main()
