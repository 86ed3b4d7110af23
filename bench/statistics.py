"""Statistics at scale: GET /v1/statistics's work (services.exit_review.api.statistics.statistics_of)
over 1,000,000 monitoring subjects, per region query at each level (province, city, county,
township, village), for a month and a year.

    .venv/bin/python bench/statistics.py --data-dir /tmp/fangpin-stats-bench   # builds the tables (minutes), then measures
    .venv/bin/python bench/statistics.py --data-dir /tmp/fangpin-stats-bench   # again: reuses them, measures only
    .venv/bin/python bench/statistics.py --subjects 100000                     # a quick one, in a temporary folder

It starts its own embedded PostgreSQL, migrates an exit_review database and fills the tables the
statistics read the way exit_review fills them: screening's, assistance's events (made as envelopes)
through exit_review's own mirrors (PROJECTIONS.mirror), in batches of 5,000: every subject identified
(a third of each category) over the year before, then 30 % risk-eliminated, 3 % removed, 5 %
protected, 1 % rolled back; two measures a subject (one developmental), an open gap for one in ten,
an overdue step for one in fifty, and every subject's identification case step by step (six ladder
events over the two weeks before its identification). Regions: 5 cities of 2 counties of 10 townships of 10 villages.
It prints, per level, the rows under the region and the median and slowest of five queries.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("FANGPIN_ENVIRONMENT", "development")
import contracts.catalog  # noqa: E402,F401  (every event type known, as in a service)
from contracts.envelope import Actor, EventEnvelope  # noqa: E402
from runtime.db import ensure_database, make_engine, make_sessions, migrate  # noqa: E402
from runtime.embedded import EmbeddedPostgres  # noqa: E402
from runtime.settings import Settings  # noqa: E402
from services.exit_review.api.statistics import statistics_of  # noqa: E402
from services.exit_review.domain.statistics import parse_period  # noqa: E402
from services.exit_review.projections import PROJECTIONS  # noqa: E402

BATCH = 5000
TODAY = date(2026, 11, 20)
CATEGORIES = ("unstable_formerly_poor", "marginal_at_risk", "sudden_hardship")
ACTOR = Actor(kind="system", id="bench", role="service")
MEASURES = (("employment", "developmental", ["unstable_employment", "income_drop"]),
            ("minimum_allowance", "safety_net", ["income_drop", "illness"]))


def villages() -> list[str]:
    return [f"41{c:02d}{k:02d}{t:03d}{v:03d}" for c in range(1, 6) for k in range(21, 23) for t in range(1, 11)
            for v in range(1, 11)]


def envelope(event_type: str, household_id: str, region: str, on: date, payload: dict) -> EventEnvelope:
    moment = datetime(on.year, on.month, on.day, 10, tzinfo=timezone.utc)
    return EventEnvelope.model_construct(
        event_id=uuid.uuid4(), event_type=event_type, schema_version=1, stream_id=f"bench-{household_id}",
        stream_position=1, household_id=household_id, region_code=region, occurred_at=moment, recorded_at=moment,
        producer="bench", actor=ACTOR, correlation_id=uuid.uuid4(), causation_id=None, traceparent=None,
        prev_hash="", hash="", payload=payload)


def homes(subjects: int) -> list[tuple[str, str, date]]:
    """Each subject's household, village and day of identification (over the year before TODAY)."""
    places = villages()
    return [(f"B{n:07d}", places[n % len(places)], TODAY - timedelta(days=365 - n * 300 // subjects)) for n in range(subjects)]


LADDER = (("VerificationCaseOpened", "verification_visit", -14), ("HouseholdVerified", "village_deliberation", -12),
          ("VillageDeliberated", "public_notice", -9), ("PublicNoticeClosed", "township_review", -4),
          ("TownshipReviewed", "county_decision", -2), ("CountyDecided", "closed", 0))


def ladder_events(subjects: int):
    """Each subject's identification case, step by step over the two weeks before it was identified."""
    for event_type, step, days in LADDER:
        everyone = homes(subjects)
        for start in range(0, subjects, BATCH):
            yield [envelope(event_type, h, r, on + timedelta(days=days),
                            {"case_id": f"c-{h}", "household_id": h, "region_code": r, "step": step})
                   for h, r, on in everyone[start:start + BATCH]]


def events(subjects: int):
    """The events in the order the mirrors take them, in batches of one type."""
    homes_ = homes(subjects)
    for start in range(0, subjects, BATCH):
        yield [envelope("SubjectIdentified", h, r, on, {"household_id": h, "case_id": f"c-{h}", "step": "closed",
                                                       "category": CATEGORIES[n % 3], "risk_types": ["income_drop"]})
               for n, (h, r, on) in enumerate(homes_[start:start + BATCH], start=start)]
    later = TODAY - timedelta(days=40)
    changes = (("SubjectRiskEliminated", lambda n: n % 10 in (1, 2, 3), {"exit_id": "x"}),  # 30 %
               ("SubjectProtected", lambda n: n % 20 == 0, {}),  # 5 %
               ("SubjectRemoved", lambda n: n % 33 == 4, {"comment": "bench"}),  # 3 %
               ("SubjectMonitoredAgain", lambda n: n % 100 == 1, {"exit_id": "x"}))  # 1 %, all risk-eliminated first
    for event_type, chosen_if, payload in changes:
        chosen = [(h, r) for n, (h, r, _) in enumerate(homes_) if chosen_if(n)]
        for start in range(0, len(chosen), BATCH):
            yield [envelope(event_type, h, r, later, {"household_id": h, **payload}) for h, r in chosen[start:start + BATCH]]
    for start in range(0, subjects, BATCH // 2):
        batch = []
        for n, (h, r, on) in enumerate(homes_[start:start + BATCH // 2], start=start):
            for k, (kind, nature, answers) in enumerate(MEASURES):
                batch.append(envelope("MeasureAssigned", h, r, on, {
                    "measure_id": f"m-{h}-{k}", "household_id": h, "kind": kind, "nature": nature, "answers": answers,
                    "department": "bench", "starts_on": on.isoformat(), "planned_end": None, "assigned_by": "bench"}))
        yield batch
    gaps = [(h, r, on) for n, (h, r, on) in enumerate(homes_) if n % 10 == 5]
    for start in range(0, len(gaps), BATCH):
        yield [envelope("PlanGapFound", h, r, on, {"household_id": h, "gap": "risk_unanswered", "risk_type": "illness",
                                                   "detail": "bench"}) for h, r, on in gaps[start:start + BATCH]]
    overdue = [(h, r) for n, (h, r, _) in enumerate(homes_) if n % 50 == 7]
    for start in range(0, len(overdue), BATCH):
        yield [envelope("CaseStepOverdue", h, r, TODAY - timedelta(days=10), {
            "case_id": f"c-{h}", "household_id": h, "region_code": r, "step": "county_decision",
            "due_date": (TODAY - timedelta(days=12)).isoformat()}) for h, r in overdue[start:start + BATCH]]


async def fill(sessions, batches) -> None:
    started, done = time.perf_counter(), 0
    for batch in batches:
        async with sessions() as session, session.begin():
            await PROJECTIONS.mirror(session, batch)
        done += len(batch)
        print(f"\r  filled: {done:,} events, {time.perf_counter() - started:.0f} s", end="", flush=True)
    print()


async def measure(sessions, settings) -> None:
    ctx = SimpleNamespace(sessions=sessions, settings=settings)
    place = villages()[0]
    async with sessions() as session:
        for level, region in (("province", place[:2]), ("city", place[:4]), ("county", place[:6]),
                              ("township", place[:9]), ("village", place)):
            under = await session.scalar(sa.text("select count(*) from subjects where region_code like :p"),
                                         {"p": region + "%"})
            for label in ("2026-11", "2026"):
                period = parse_period(label, TODAY)
                times = []
                for _ in range(5):
                    started = time.perf_counter()
                    found = await statistics_of(ctx, region, period)
                    times.append(time.perf_counter() - started)
                print(f"  {level:<9} {region:<13} {under:>9,} subjects  {label:<8} median {sorted(times)[len(times) // 2] * 1000:7.0f} ms"
                      f"  slowest {max(times) * 1000:7.0f} ms   (monitored {found.monitored:,}, exit rate {found.exit_rate})")


async def main(args) -> None:
    folder = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="fangpin-stats-"))
    folder.mkdir(parents=True, exist_ok=True)
    postgres = EmbeddedPostgres(folder / "pg")
    try:
        url = postgres.url(f"stats_{args.subjects}")
        settings = Settings(database_url=url, service="exit_review")
        await ensure_database(url)
        engine = make_engine(settings)
        await migrate(engine, "exit_review")
        sessions = make_sessions(engine)
        async with sessions() as session:
            have = await session.scalar(sa.text("select count(*) from subjects"))
        if have != args.subjects:
            print(f"Filling exit_review's tables for {args.subjects:,} subjects (once per data folder)")
            async with sessions() as session, session.begin():
                for table in ("subjects", "subject_changes", "measure_evidence", "gap_evidence", "case_overdue"):
                    await session.execute(sa.text(f"truncate {table}"))
            await fill(sessions, events(args.subjects))
        async with sessions() as session:
            cases = await session.scalar(sa.text("select count(*) from case_progress"))
        if cases != args.subjects:
            print(f"Filling the identification ladder's steps of {args.subjects:,} cases (once per data folder)")
            async with sessions() as session, session.begin():
                for table in ("case_progress", "case_step_days"):
                    await session.execute(sa.text(f"truncate {table}"))
            await fill(sessions, ladder_events(args.subjects))
            async with sessions() as session:
                await session.execute(sa.text("analyze"))
        print(f"Statistics over {args.subjects:,} subjects (PostgreSQL in {folder}):")
        await measure(sessions, settings)
        await engine.dispose()
    finally:
        postgres.stop()
        if not args.data_dir and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=1_000_000)
    parser.add_argument("--data-dir", help="keep PostgreSQL and the filled tables here, to measure again")
    parser.add_argument("--keep", action="store_true")
    asyncio.run(main(parser.parse_args()))
