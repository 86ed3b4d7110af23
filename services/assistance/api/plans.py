"""Plans (一户一案): one household's plan, the plans of a region or helper, its helper, its incomes."""
from __future__ import annotations

from datetime import date, timedelta

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from contracts.assistance import IncomeSource
from contracts.fields import Amount
from runtime.auth import Staff, command_metadata, region_scope, require_region
from runtime.eventstore import EventStore
from runtime.history import HistoryEntry, stream_history
from runtime.paging import Page, Paging, make_page
from runtime.problems import Problem
from runtime.ndjson import ndjson_body, run_ndjson_batch, tally
from runtime.service import Context, UnitOfWork, run_command
from services.assistance import commands, store
from services.assistance.commands import IncomeRow
from services.assistance.api.views import PlanSummary, PlanView, plan_view, summary

router = APIRouter()
PERIOD = r"^\d{4}-(Q[1-4]|0[1-9]|1[0-2])$"


async def _readable_row(session, principal, household_id: str):
    row = await store.plan_row(session, household_id)
    if row is None:
        raise Problem(404, "Not found", f"household {household_id} has no plan: it is not a monitoring subject",
                      code="plan_not_found")
    require_region(principal, row.region_code)
    if principal.role == "helper" and row.helper_id != principal.sub:
        raise Problem(403, "Forbidden", "a helper sees the households they help only", code="not_your_household")
    return row


async def readable_plan(ctx, principal, household_id: str):
    async with ctx.sessions() as session:
        return await plan_view(session, await _readable_row(session, principal, household_id))


@router.get("/plans/{household_id}", response_model=PlanView)
async def get_plan(household_id: str, principal: Staff, ctx: Context):
    """The plan: its helper, measures, incomes and the gaps open now."""
    return await readable_plan(ctx, principal, household_id)


@router.get("/plans/{household_id}/history", response_model=list[HistoryEntry])
async def plan_history(household_id: str, principal: Staff, ctx: Context):
    """Everything that happened to the plan, oldest first: openings and closings (a reopened plan keeps
    its earlier life), helpers, measures and their progress, incomes, visits, gaps found and mended."""
    async with ctx.sessions() as session:
        await _readable_row(session, principal, household_id)
        return await stream_history(EventStore(session, ctx.name, ctx.clock), commands.plan_stream(household_id))


@router.get("/plans", response_model=Page[PlanSummary])
async def list_plans(region: str | None = None, gaps: bool = False, helper_id: str | None = None,
                     unassigned: bool = False, *, page: Paging, principal: Staff, ctx: Context):
    """Plans of a region (by household id); `gaps=true`: those with a gap open; `unassigned=true`: the
    open ones without a helper (none in reach), for the township to find one; a helper sees their own."""
    scope = region_scope(principal, region)
    if principal.role == "helper":
        helper_id = principal.sub
    async with ctx.sessions() as session:
        rows = await store.plan_page(session, scope, gaps, helper_id, page.after, page.limit + 1, unassigned)
    return make_page(rows, page, key=lambda r: r.household_id, item=summary)


class HelperIn(BaseModel):
    helper_id: str = Field(min_length=1, max_length=200, description="a helper of the staff directory (notifier)")
    reason: str = Field("", max_length=2000)
    # Taken for the callers written against the published API; the person's details are the staff directory's
    # (notifier's primary record), so assistance keeps none of them.
    name: str | None = Field(None, max_length=200, description="not kept: the staff directory holds the person")
    organisation: str | None = Field(None, max_length=200, description="not kept")
    phone: str | None = Field(None, max_length=50, description="not kept")


@router.post("/plans/{household_id}/helper", response_model=PlanView)
async def reassign_helper(household_id: str, body: HelperIn, request: Request, principal: Staff, ctx: Context):
    """Another helper (帮扶责任人) for the household (township or county)."""
    await run_command(ctx, command_metadata(principal, request), lambda uow: commands.reassign_helper(
        uow, principal, household_id, body.helper_id, body.reason))
    return await readable_plan(ctx, principal, household_id)


class IncomeIn(BaseModel):
    period: str = Field(pattern=PERIOD, description="a quarter (2026-Q3) or a month (2026-07)")
    per_capita_net_income: Amount
    rigid_expenditure: Amount = 0
    sources: list[IncomeSource] = Field(default_factory=list, max_length=20)


@router.post("/plans/{household_id}/incomes", response_model=PlanView, status_code=201)
async def record_income(household_id: str, body: IncomeIn, request: Request, principal: Staff, ctx: Context):
    """The household's income of a period (what exit review's look-back reads); a period recorded again
    replaces the earlier record."""
    await run_command(ctx, command_metadata(principal, request), lambda uow: commands.record_income(
        uow, principal, household_id, body.period, body.per_capita_net_income, body.rigid_expenditure, body.sources))
    return await readable_plan(ctx, principal, household_id)


INCOME_CHUNK_ROWS = 1000


class IncomeLine(IncomeIn):
    household_id: str = Field(min_length=1, max_length=64)


class IncomeImportOutcome(BaseModel):
    rows: int = 0
    recorded: int = 0
    unchanged: int = 0
    invalid: int = 0
    rejected: list[IncomeRow] = Field(default_factory=list, description=(
        "the invalid rows, with line, field, code and reason, and the row's household_id and period"))


EXAMPLE_INCOME = {"household_id": "H-0001", "period": "2026-Q3", "per_capita_net_income": "2350.00",
                  "rigid_expenditure": "300.00", "sources": [{"source": "wages", "amount": "2100.00"}]}


@router.post("/incomes:batch", response_model=IncomeImportOutcome, openapi_extra=ndjson_body(IncomeLine, EXAMPLE_INCOME))
async def import_incomes(request: Request, principal: Staff, ctx: Context):
    """收入信息采集 in bulk: NDJSON, one household's income of a period a line, by staff who may record
    it one by one (a helper their own households, others their region's). Each row is `recorded`, or
    `unchanged` when the same figures stand already (a file sent twice changes nothing), or `invalid`
    naming the field and the rule. Committed every INCOME_CHUNK_ROWS rows."""
    summary = IncomeImportOutcome()

    async def ingest(uow: UnitOfWork, chunk):
        return await commands.import_incomes(uow, principal, chunk)

    async for results in run_ndjson_batch(request, ctx, principal, IncomeLine, ingest, INCOME_CHUNK_ROWS,
                                          lambda line, **why: IncomeRow(line=line, outcome="invalid", **why),
                                          identifiers=("household_id", "period")):
        tally(summary, results)
    return summary


class MeasureIn(BaseModel):
    measure_type: str = Field(min_length=1, max_length=100, description="a kind of the catalogue (GET /v1/measures/catalogue)")
    member: str | None = Field(None, max_length=200, description="the member it is for (their member id), if one")
    description: str = Field("", max_length=4000)
    department: str | None = Field(None, max_length=100, description="default: the catalogue's")
    start_date: date
    planned_end: date | None = None
    amount: Amount | None = None
    quantity: int | None = Field(None, ge=0, le=1_000_000)


class MeasureCreated(BaseModel):
    measure_id: str
    plan: PlanView


@router.post("/plans/{household_id}/measures", response_model=MeasureCreated, status_code=201)
async def assign_measure(household_id: str, body: MeasureIn, request: Request, principal: Staff, ctx: Context):
    """A measure (帮扶措施) of the catalogue on the plan: by its helper, or staff of its region."""
    measure_id = await run_command(ctx, command_metadata(principal, request), lambda uow: commands.assign_measure(
        uow, principal, household_id, body.measure_type, body.member, body.description, body.department,
        body.start_date, body.planned_end, body.amount, body.quantity))
    return MeasureCreated(measure_id=measure_id, plan=await readable_plan(ctx, principal, household_id))


class VisitIn(BaseModel):
    visited_on: date
    findings: str = Field("", max_length=4000)


class VisitCreated(BaseModel):
    visit_id: str
    plan: PlanView


@router.post("/plans/{household_id}/visits", response_model=VisitCreated, status_code=201)
async def record_visit(household_id: str, body: VisitIn, request: Request, principal: Staff, ctx: Context):
    """A helper's visit (走访) to a household they help."""
    visit_id = await run_command(ctx, command_metadata(principal, request), lambda uow: commands.record_visit(
        uow, principal, household_id, body.visited_on, body.findings))
    return VisitCreated(visit_id=visit_id, plan=await readable_plan(ctx, principal, household_id))


class OverdueVisit(BaseModel):
    household_id: str
    region_code: str
    helper_id: str | None
    last_visited_on: date | None


@router.get("/helper-visits/overdue", response_model=Page[OverdueVisit])
async def overdue_visits(region: str | None = None, helper_id: str | None = None, *, page: Paging, principal: Staff,
                         ctx: Context):
    """Open plans whose helper has not visited within helper_visit_interval_days, or never."""
    scope = region_scope(principal, region)
    if principal.role == "helper":
        helper_id = principal.sub
    before = ctx.clock.now().date() - timedelta(days=ctx.settings.helper_visit_interval_days)
    async with ctx.sessions() as session:
        rows = await store.overdue_visits_page(session, scope, helper_id, before, page.after, page.limit + 1)
    return make_page(rows, page, key=lambda r: r.household_id,
                     item=lambda r: OverdueVisit.model_validate(r, from_attributes=True))


class HelperLoad(BaseModel):
    helper_id: str
    region_code: str
    households: int = Field(description="open plans they help")
    over_limit: bool = Field(description="more than helper_max_households")


@router.get("/helpers", response_model=Page[HelperLoad])
async def helper_loads(region: str | None = None, over_limit: bool = False, *, page: Paging, principal: Staff,
                       ctx: Context):
    """The helpers of a region (notifier's directory, role helper) with their households; `over_limit=true`
    keeps those past helper_max_households."""
    scope = region_scope(principal, region)
    limit = ctx.settings.helper_max_households
    async with ctx.sessions() as session:
        rows = await store.helper_page(session, scope, limit if over_limit else None, page.after, page.limit + 1)
    return make_page(rows, page, key=lambda r: r.helper_id, item=lambda r: HelperLoad(
        helper_id=r.helper_id, region_code=r.region_code, households=r.households, over_limit=r.households > limit))
