"""What screening does by the clock: close the public notices whose days have run out, report the
steps past their due dates, and catch the households that slipped out of the loop."""
from __future__ import annotations

from datetime import timedelta

from contracts.envelope import Actor
from contracts.screening import AllowanceWatchesChecked, CaseStepOverdue, QualityIssueRaised
from runtime.eventstore import EventMetadata, NewEvent, StreamHead
from runtime.ids import new_id_str
from runtime.service import ServiceContext, UnitOfWork, run_command
from services.screening import commands, store
from services.screening.domain import ladder

SCHEDULER = Actor(kind="system", id="screening-scheduler", role="scheduler")


async def close_due_notices(ctx: ServiceContext) -> None:
    """Close every public notice whose five days have passed and that no open objection holds."""
    async with ctx.sessions() as session:
        due = await store.notices_due(session, ctx.clock.now().date())
    for case_id in due:
        await run_command(ctx, EventMetadata(actor=SCHEDULER), lambda uow, case_id=case_id: commands.take_step(
            uow, case_id, "scheduler", lambda region: None, lambda state: ladder.CloseNotice()))


async def check_out_of_loop(ctx: ServiceContext) -> None:
    """体外循环: a new minimum-allowance or extreme-poverty household that, `out_of_loop_days` later,
    is neither a subject nor in an open case raises a quality issue (once)."""
    now = ctx.clock.now()

    async def work(uow: UnitOfWork) -> None:
        due = await store.allowance_watches_due(uow.session, now - timedelta(days=ctx.settings.out_of_loop_days))
        issues = [QualityIssueRaised(
            issue_id=new_id_str(), household_id=watch.household_id, region_code=watch.region_code,
            kind="out_of_loop", detail=f"{watch.indicator} since {watch.observed_at.date()}, but after "
            f"{ctx.settings.out_of_loop_days} days neither a monitoring subject nor in an open case",
        ) for watch in due if not watch.in_loop]
        checked = [(StreamHead(f"allowance-checks-{new_id_str()}"), [
            NewEvent(AllowanceWatchesChecked(clue_ids=[w.clue_id for w in due]))])] if due else []
        await uow.append_many([*checked, *((StreamHead(f"quality-{issue.issue_id}"), [
            NewEvent(issue, household_id=issue.household_id, region_code=issue.region_code)]) for issue in issues)])

    await run_command(ctx, EventMetadata(actor=SCHEDULER), work)


async def report_overdue_steps(ctx: ServiceContext) -> None:
    """Publish CaseStepOverdue once per case, step and due date, for the notifier to escalate."""
    today = ctx.clock.now().date()

    async def work(uow: UnitOfWork) -> None:
        overdue = await store.overdue_unreported(uow.session, today)
        await uow.append_many([(StreamHead(f"overdue-{case.case_id}-{case.step}-{case.due_date}"), [NewEvent(
            CaseStepOverdue(case_id=case.case_id, household_id=case.household_id, region_code=case.region_code,
                            step=case.step, due_date=case.due_date),
            household_id=case.household_id, region_code=case.region_code)]) for case in overdue])

    await run_command(ctx, EventMetadata(actor=SCHEDULER), work)


async def run_checks(ctx: ServiceContext) -> None:
    """Everything screening does by the clock, in order."""
    await close_due_notices(ctx)
    await report_overdue_steps(ctx)
    await check_out_of_loop(ctx)
