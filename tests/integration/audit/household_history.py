"""One household's whole history across intake, screening and notifier, made once per test session
for the timeline and bundle tests (they only read it): a department warning raises a clue, screening
opens a case, notifier sends the village cadre a task, a batch warning adds a clue, the cadre reads
the task, and the case climbs the ladder to a monitoring subject. Every service signs checkpoints
as it runs; when the services stop, every event is under one."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import orjson
import sqlalchemy as sa
from typer.testing import CliRunner

from runtime.cli import app as cli
from runtime.clock import FixedClock
from tests.conftest import eventually
from tests.factories import VILLAGE, household, id_number, warning

START = datetime(2026, 11, 20, 1, 0, tzinfo=timezone.utc)  # 09:00 in China
NOTICE_DAYS = timedelta(days=5)
POOR = {"per_capita_net_income": "6200.00", "rigid_expenditure": "0", "education_ok": True, "medical_ok": True,
        "housing_safe": True, "water_safe": True}
HOUSEHOLD, NEIGHBOUR = "TL1", "TL2"  # the household followed; another of its village, in the same batch
STORED_SERVICES = ("intake", "screening", "notifier")
runner = CliRunner()


@dataclass(frozen=True)
class History:
    database_url: str  # with {service} in it, for every service's store
    case_id: str
    notification_id: str


_MADE: list[History] = []


async def cli_run(*args: str):
    """`fangpin audit ...` as an operator runs it (in a thread: it runs its own event loop)."""
    return await asyncio.to_thread(runner.invoke, cli, ["audit", *args])


async def covered(ctx) -> bool:
    """Whether a checkpoint covers every event of the service's store but checkpoints."""
    async with ctx.sessions() as session:
        upto = await session.scalar(sa.text(
            "select max((payload->>'upto_position')::bigint) from events where stream_id = 'checkpoints'"))
        last = await session.scalar(sa.text(
            "select max(global_position) from events where event_type <> 'CheckpointSigned'"))
    return last is None or (upto is not None and upto >= last)


def ndjson(*rows) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


async def household_history(run_services, service_context) -> History:
    if _MADE:
        return _MADE[0]
    clock = FixedClock(START)
    async with run_services(*STORED_SERVICES, clock=clock, scheduler_seconds=0.2,
                            checkpoint_interval_seconds=0.1) as system:
        for other in ("assistance", "exit_review"):  # their stores, empty: the timeline reads all five
            await service_context(other)
        intake, screening, notifier = (system.clients[s] for s in STORED_SERVICES)
        county = system.token("county_officer", "410721", sub="county-1")
        township = system.token("township_officer", "410721001", sub="town-1")
        cadre = system.token("village_cadre", VILLAGE, sub="cadre-1")
        worker = system.token("grid_worker", VILLAGE, sub="gw-1")
        mca = system.token("department_system", kind="system", department="civil_affairs", sub="mca")

        staff = {"staff_id": "cadre-1", "name": "村干部", "role": "village_cadre", "region_code": VILLAGE}
        assert (await notifier.post("/v1/staff", headers=county, json=staff)).status_code == 201
        for n, name in enumerate((HOUSEHOLD, NEIGHBOUR), start=1):
            assert (await intake.post("/v1/households", headers=county, json=household(name, n))).status_code == 201
        r = await intake.post("/v1/warnings", headers=mca, json=warning("TL-1", id_number(1)))
        assert r.status_code == 201, r.text

        async def case_of(name: str):
            items = (await screening.get("/v1/cases", headers=county)).json()["items"]
            return next((c["case_id"] for c in items if c["household_id"] == name), None)

        case_id = await eventually(lambda: case_of(HOUSEHOLD))

        async def task():
            items = (await notifier.get("/v1/inbox", headers=cadre)).json()["items"]
            return next((t["notification_id"] for t in items if t["reference"] == f"case:{case_id}"), None)

        notification_id = await eventually(task)

        # A month's comparison names both households: one event, whose envelope names neither.
        r = await intake.post("/v1/warnings:batch", headers=mca, content=ndjson(
            warning("TLB-1", id_number(1), indicator="relief_application"),
            warning("TLB-2", id_number(2), indicator="relief_application")))
        assert r.status_code == 200 and r.json()["accepted"] == 2, r.text

        async def attached():
            history = (await screening.get(f"/v1/cases/{case_id}", headers=county)).json()["history"]
            return any(h["event_type"] == "ClueAttachedToCase" for h in history) and await case_of(NEIGHBOUR)

        await eventually(attached)
        assert (await notifier.post(f"/v1/inbox/{notification_id}/read", headers=cadre)).status_code == 200

        async def step(who, path, body):
            r = await screening.post(f"/v1/cases/{case_id}/{path}", headers=who, json=body)
            assert r.status_code == 200, r.text
            return r.json()

        await step(worker, "verification", POOR)
        await step(cadre, "village-deliberation", {"decision": "propose", "attendees": 12})
        clock.advance(NOTICE_DAYS)  # screening's scheduler closes the notice

        async def notice_closed():
            return (await screening.get(f"/v1/cases/{case_id}", headers=county)).json()["step"] == "township_review"

        await eventually(notice_closed)
        await step(township, "township-review", {"decision": "pass"})
        decided = await step(county, "county-decision", {
            "decision": "approve", "category": "sudden_hardship", "risk_types": ["income_drop"]})
        assert decided["outcome"] == "identified"

        async def notifier_took_the_ladder():
            """The notifier reacts to the ladder's last step too (it completes the county's task):
            the checkpoints are waited for once it has."""
            async with system.context("screening").sessions() as session:
                last = await session.scalar(sa.text(
                    "select event_id from events where stream_id = :s order by stream_position desc limit 1"),
                    {"s": f"case-{case_id}"})
            async with system.context("notifier").sessions() as session:
                return await session.scalar(sa.text("select count(*) from inbox where event_id = :e"), {"e": last})

        await eventually(notifier_took_the_ladder)

        async def all_covered():
            return all([await covered(system.context(s)) for s in STORED_SERVICES])

        await eventually(all_covered)
        url = system.settings["intake"].database_url.replace("_intake?", "_{service}?")
    _MADE.append(History(url, case_id, notification_id))
    return _MADE[0]
