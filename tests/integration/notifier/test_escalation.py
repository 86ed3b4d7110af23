"""A task's chain on an injected clock (issue 18): reminded before it is due, escalated village →
township → county in working days, each step exactly once however often the scheduler looks, stopped
by an acknowledgement, and carried on after a restart from what the database holds."""
import asyncio
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from contracts.screening import HouseholdVerified, VerificationCaseOpened
from contracts.vocabulary import RiskType
from runtime.clock import FixedClock
from services.notifier import jobs
from tests.integration.notifier.routing_helpers import VILLAGE, consume, register_directory, token_of

pytestmark = pytest.mark.integration
CST = ZoneInfo("Asia/Shanghai")
QUIET = {"task_check_seconds": 3600, "delivery_poll_seconds": 3600}  # the test runs the jobs itself


def case_opened(due: date) -> VerificationCaseOpened:
    return VerificationCaseOpened(case_id="case-1", household_id="H-1", region_code=VILLAGE, clue_id="clue-1",
                                  risk_types=[RiskType.ILLNESS], step="verification_visit", due_date=due)


async def kinds_by_person(ctx) -> dict[str, list[str]]:
    async with ctx.sessions() as session:
        rows = (await session.execute(sa.text(
            "select staff_id, kind from notifications order by inbox_seq, staff_id"))).all()
    found: dict[str, list[str]] = {}
    for staff_id, kind in rows:
        found.setdefault(staff_id, []).append(kind)
    return found


async def chain_events(ctx) -> list[tuple[str, str | None]]:
    async with ctx.sessions() as session:
        rows = (await session.execute(sa.text(
            "select event_type, payload->>'level' from events where stream_id like 'task-%' "
            "order by global_position"))).all()
    return [tuple(r) for r in rows]


async def test_a_task_is_reminded_then_escalated_once_per_level_and_the_chain_survives_a_restart(run_services):
    # Tuesday 1 December 2026, 09:00 in the county; the visit is due by the end of Thursday the 3rd.
    clock = FixedClock(datetime(2026, 12, 1, 9, 0, tzinfo=CST))
    async with run_services("notifier", clock=clock, **QUIET) as system:
        ctx = system.context("notifier")
        await register_directory(system)
        await consume(ctx, case_opened(date(2026, 12, 3)))
        assert await kinds_by_person(ctx) == {"cadre-1": ["verify_household"], "cadre-2": ["verify_household"]}
        for _ in range(3):
            assert await jobs.take_task_steps(ctx) == 0, "nothing is due before the reminder's time"
        clock.advance(timedelta(days=1, hours=16))  # Thursday 01:00: a working day before the due time
        assert await jobs.take_task_steps(ctx) == 1
        assert await jobs.take_task_steps(ctx) == 0, "a reminder once"
        assert (await kinds_by_person(ctx))["cadre-1"] == ["verify_household", "reminder"]
        clock.advance(timedelta(days=2))  # Saturday 01:00: past due, but no working day has passed
        assert await jobs.take_task_steps(ctx) == 0
    # The service stops and starts again (same database): the chain goes on from its events. (Its
    # scheduler also looks when it starts: who takes a step does not matter, that it is taken once does.)
    clock.advance(timedelta(days=2))  # Monday 7th 01:00: one working day after the due time
    async with run_services("notifier", clock=clock, **QUIET) as system:
        ctx = system.context("notifier")
        await asyncio.gather(*(jobs.take_task_steps(ctx) for _ in range(3)))  # three schedulers race
        assert (await kinds_by_person(ctx))["township-1"] == ["escalation"], "the township is told once"
        assert "county-1" not in await kinds_by_person(ctx)
    clock.advance(timedelta(days=1))  # Tuesday 8th: two working days after
    async with run_services("notifier", clock=clock, **QUIET) as system:
        ctx = system.context("notifier")
        await jobs.take_task_steps(ctx)
        clock.advance(timedelta(days=30))
        assert await jobs.take_task_steps(ctx) == 0, "the county is the top: the chain has ended"
        assert (await kinds_by_person(ctx))["county-1"] == ["escalation"]
        assert await chain_events(ctx) == [("TaskOpened", "village"), ("TaskReminded", None),
                                           ("TaskEscalated", "township"), ("TaskEscalated", "county")]


async def test_acknowledging_stops_the_chain_and_the_next_step_completes_the_task(run_services):
    clock = FixedClock(datetime(2026, 12, 1, 9, 0, tzinfo=CST))
    async with run_services("notifier", clock=clock, **QUIET) as system:
        ctx, notifier = system.context("notifier"), system.clients["notifier"]
        await register_directory(system)
        await consume(ctx, case_opened(date(2026, 12, 3)))
        cadre = token_of(system, "cadre-1")
        [task] = (await notifier.get("/v1/inbox", headers=cadre)).json()["items"]
        acknowledged = await notifier.post(f"/v1/inbox/{task['notification_id']}/acknowledge", headers=cadre)
        assert acknowledged.status_code == 200 and acknowledged.json()["acknowledged_at"]
        clock.advance(timedelta(days=14))
        assert await jobs.take_task_steps(ctx) == 0, "acknowledged: no reminder, no escalation"
        assert set(await kinds_by_person(ctx)) == {"cadre-1", "cadre-2"}
        ledger = (await notifier.get(f"/v1/notifications/{task['notification_id']}/deliveries", headers=cadre)).json()
        assert [(d["channel"], d["status"]) for d in ledger] == [("inbox", "acknowledged")]
        other = await notifier.post(f"/v1/inbox/{task['notification_id']}/acknowledge", headers=token_of(system, "cadre-2"))
        assert other.status_code == 404, "someone else's notification is not in your inbox"

        # A second case: the visit's findings (the next step) complete its task before it is due.
        clock.advance(timedelta(days=1))
        opened = case_opened(date(2026, 12, 20)).model_copy(update={"case_id": "case-2", "household_id": "H-2"})
        await consume(ctx, opened, household_id="H-2")
        verified = HouseholdVerified(
            case_id="case-2", household_id="H-2", step="village_deliberation", due_date=date(2026, 12, 28),
            per_capita_net_income="5000", rigid_expenditure="0", education_ok=True, medical_ok=True, housing_safe=True,
            water_safe=True, monitoring_line="7000", eligible=True, reasons=[], risk_types=[RiskType.ILLNESS])
        await consume(ctx, verified, household_id="H-2")
        async with ctx.sessions() as session:
            states = dict((await session.execute(sa.text(
                "select kind || ':' || state, count(*) from tasks where reference = 'case:case-2' group by 1"))).all())
        assert states == {"verify_household:completed": 1, "ladder_step:open": 1}, states
        clock.advance(timedelta(days=60))
        await jobs.take_task_steps(ctx)
        kinds = await kinds_by_person(ctx)
        assert kinds["township-1"] == ["escalation"], "only the deliberation task, still open, escalates"
