"""What exit_review does by the clock: close the exit notices whose five days have passed and that
no open objection holds, report the steps past their due dates, and say when an exit's look-back
falls due, and which monthly filings are overdue."""
from __future__ import annotations

from datetime import timedelta

from contracts.envelope import Actor
from contracts.exit_review import ExitStepOverdue
from runtime.eventstore import EventMetadata, NewEvent, StreamHead
from runtime.service import ServiceContext, UnitOfWork, run_command
from services.exit_review import commands, store
from services.exit_review.domain.statistics import parse_period

SCHEDULER = Actor(kind="system", id="exit_review-scheduler", role="scheduler")


async def close_due_notices(ctx: ServiceContext) -> None:
    async with ctx.sessions() as session:
        due = await store.notices_ended(session, ctx.clock.now().date())
    for household_id in due:
        await run_command(ctx, EventMetadata(actor=SCHEDULER),
                          lambda uow, household_id=household_id: commands.close_notice(uow, household_id))


async def mark_look_backs_due(ctx: ServiceContext) -> None:
    """回头看: LookBackDue for each approved exit whose look-back months have passed (once)."""
    today = ctx.clock.now().date()
    approved_before = today - timedelta(days=28 * ctx.settings.exit_look_back_after_months)  # the domain says which are due
    async with ctx.sessions() as session:
        candidates = await store.look_backs_to_check(session, approved_before)
    for household_id in candidates:
        await run_command(ctx, EventMetadata(actor=SCHEDULER),
                          lambda uow, household_id=household_id: commands.mark_look_back_due(uow, household_id))


async def report_overdue_steps(ctx: ServiceContext) -> None:
    """ExitStepOverdue once per case, step and due date, for the notifier to escalate."""
    today = ctx.clock.now().date()

    async def work(uow: UnitOfWork) -> None:
        overdue = await store.overdue_unreported(uow.session, today)
        await uow.append_many([(StreamHead(f"exit-overdue-{case.exit_id}-{case.step}-{case.due_date}"), [NewEvent(
            ExitStepOverdue(exit_id=case.exit_id, household_id=case.household_id, region_code=case.region_code,
                            step=case.step, due_date=case.due_date),
            household_id=case.household_id, region_code=case.region_code)]) for case in overdue])

    await run_command(ctx, EventMetadata(actor=SCHEDULER), work)


async def run_checks(ctx: ServiceContext) -> None:
    """Everything exit_review does by the clock, in order."""
    await close_due_notices(ctx)
    await report_overdue_steps(ctx)
    await mark_look_backs_due(ctx)
    await report_overdue_filings(ctx)


async def report_overdue_filings(ctx: ServiceContext) -> None:
    """FilingOverdue once for each township and county (with subjects) past its monthly filing's due
    date: this month's and last month's."""
    today = ctx.clock.now().date()
    last_month = today.replace(day=1) - timedelta(days=1)
    for label in (f"{last_month:%Y-%m}", f"{today:%Y-%m}"):
        period = parse_period(label, today)
        await run_command(ctx, EventMetadata(actor=SCHEDULER),
                          lambda uow, period=period: commands.report_overdue_filings(uow, period))
