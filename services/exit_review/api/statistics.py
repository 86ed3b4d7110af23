"""Statistics of a region and period (监测帮扶统计): subjects by category, flows, exit rate, plan
figures, overdue steps, and the regions one level below; JSON, or CSV for a spreadsheet."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from runtime.auth import Staff, command_metadata, region_scope
from runtime.service import Context, run_command
from services.exit_review import commands, store
from services.exit_review.domain import filings
from services.exit_review.domain import statistics as figures
from services.exit_review.domain.statistics import PlanSums, Stock

router = APIRouter()


class RegionFigures(BaseModel):
    region: str
    monitored: int
    risk_eliminated: int
    exit_rate: Decimal | None


class StatisticsView(BaseModel):
    region: str
    period: str
    start: date
    end: date
    monitored: int = Field(description="subjects monitored at the period's end")
    monitored_by_category: dict[str, int] = Field(description="脱贫不稳定户 unstable_formerly_poor, 边缘易致贫户 "
                                                               "marginal_at_risk, 突发严重困难户 sudden_hardship")
    risk_eliminated: int = Field(description="subjects whose risk stands eliminated at the period's end")
    protected: int = Field(description="整户无劳动能力兜底保障户 at the period's end")
    exit_rate: Decimal | None = Field(description="risk-eliminated among monitored + risk-eliminated (风险消除占比)")
    flows: dict[str, int] = Field(description="in the period: identified, risk_eliminated, rolled_back, removed")
    measures_per_household: Decimal | None = Field(description="of the subjects monitored now")
    developmental_share: Decimal | None = Field(description="developmental (开发式) among their measures")
    policy_coverage: Decimal | None = Field(description="their households with at least one measure")
    households_with_gaps: int = Field(description="their households with a plan gap open")
    overdue_steps: dict[str, dict[str, int]] = Field(description="per ladder, the steps due in the period and overdue")
    average_days: dict[str, dict[str, Decimal]] = Field(description="per ladder (identification, exit), the average "
                                                                    "days each step took, of the steps left in the period")
    by_region: list[RegionFigures] = Field(description="the regions one level below (a county's townships …)")


async def statistics_of(ctx, region: str, period: figures.Period) -> figures.Statistics:
    child = figures.child_length(region)
    async with ctx.sessions() as session:
        stock = {row.key: Stock(row.monitored, row.risk_eliminated, row.protected)
                 for row in await store.subject_stock(session, region, period.end)}
        children = {row.key: Stock(row.monitored, row.risk_eliminated, row.protected)
                    for row in await store.subject_stock(session, region, period.end, child)} if child else {}
        flows = await store.subject_flows(session, region, period.start, period.end)
        plans = PlanSums(*await store.plan_sums(session, region))
        overdue = await store.overdue_steps(session, region, period.start, period.end)
        step_days = await store.average_step_days(session, region, period.start, period.end)
    return figures.compose(region, period, stock, flows, plans, overdue, children, step_days)


def view(found: figures.Statistics) -> StatisticsView:
    return StatisticsView(
        region=found.region, period=found.period.label, start=found.period.start, end=found.period.end,
        monitored=found.monitored, monitored_by_category=found.monitored_by_category,
        risk_eliminated=found.risk_eliminated, protected=found.protected, exit_rate=found.exit_rate, flows=found.flows,
        measures_per_household=found.measures_per_household, developmental_share=found.developmental_share,
        policy_coverage=found.policy_coverage, households_with_gaps=found.households_with_gaps,
        overdue_steps=found.overdue_steps, average_days=found.average_days, by_region=[RegionFigures(**r) for r in found.by_region])


def as_csv(found: StatisticsView) -> str:
    """One figure a row (`figure,region,value`): the region's, then each region's one level below."""
    out = io.StringIO()
    write = csv.writer(out, lineterminator="\n").writerow
    write(["figure", "region", "period", "value"])
    rows = [("monitored", found.monitored), *((f"monitored.{c}", n) for c, n in found.monitored_by_category.items()),
            ("risk_eliminated", found.risk_eliminated), ("protected", found.protected), ("exit_rate", found.exit_rate),
            *((f"flows.{f}", n) for f, n in found.flows.items()),
            ("measures_per_household", found.measures_per_household), ("developmental_share", found.developmental_share),
            ("policy_coverage", found.policy_coverage), ("households_with_gaps", found.households_with_gaps),
            *((f"overdue.{ladder}.{step}", n) for ladder, steps in found.overdue_steps.items() for step, n in steps.items()),
            *((f"average_days.{ladder}.{step}", d) for ladder, steps in found.average_days.items() for step, d in steps.items())]
    for name, value in rows:
        write([name, found.region, found.period, "" if value is None else value])
    for child in found.by_region:
        for name in ("monitored", "risk_eliminated", "exit_rate"):
            value = getattr(child, name)
            write([name, child.region, found.period, "" if value is None else value])
    return out.getvalue()


@router.get("/statistics", response_model=StatisticsView)
async def get_statistics(principal: Staff, ctx: Context, region: str | None = None,
                         period: str | None = Query(None, description="a month 2026-10 (default: this month), a "
                                                    "quarter 2026-Q4, a year 2026 or an ISO week 2026-W42"),
                         format: Literal["json", "csv"] = "json"):
    """The region's figures (default the caller's) for the period; `format=csv` as CSV. 422
    `statistics_period_invalid`, `statistics_period_in_future` (field `period`)."""
    scope = region_scope(principal, region)
    today = ctx.clock.now().date()
    found = view(await statistics_of(ctx, scope, figures.parse_period(period or f"{today:%Y-%m}", today)))
    if format == "csv":
        return Response(as_csv(found), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="statistics-{found.region}-{found.period}.csv"'})
    return found


class FilingIn(BaseModel):
    period: str = Field(description="the month filed, e.g. 2026-10")


class FilingView(BaseModel):
    region: str
    period: str
    level: Literal["township", "county"]
    due_on: date = Field(description="a township's the 25th of the month, a county's the 5th of the next")
    status: Literal["filed", "filed_late", "overdue", "pending"]
    filed_at: datetime | None


@router.post("/statistics/filings", response_model=FilingView, status_code=201)
async def file_statistics(body: FilingIn, request: Request, principal: Staff, ctx: Context):
    """The caller's township (township_officer) or county (county_officer) files its month's figures,
    as GET /v1/statistics gives them now; once. 422 `statistics_period_invalid` (not a month),
    `filing_region_not_own_level`; 409 `statistics_already_filed`."""
    today = ctx.clock.now().date()
    period = figures.parse_period(body.period, today)
    found = view(await statistics_of(ctx, principal.region, period)).model_dump(mode="json")
    await run_command(ctx, command_metadata(principal, request),
                      lambda uow: commands.file_statistics(uow, principal, period, found))
    level = "township" if principal.role == "township_officer" else "county"
    async with ctx.sessions() as session:
        [row] = await store.filing_rows(session, principal.region, period.label, level)
    return filing_view(row)


def filing_view(row) -> FilingView:
    status = ("filed_late" if row.late else "filed") if row.filed_at else ("overdue" if row.overdue else "pending")
    return FilingView(region=row.region_code, period=row.period, level=row.level, due_on=row.due_on, status=status,
                      filed_at=row.filed_at)


@router.get("/statistics/filings", response_model=list[FilingView])
async def list_filings(principal: Staff, ctx: Context, period: str, region: str | None = None):
    """Each township and county under `region` with subjects, and its filing of `period`: filed,
    filed late, overdue (past its due date) or pending."""
    scope = region_scope(principal, region)
    today = ctx.clock.now().date()
    month = figures.parse_period(period, today)
    async with ctx.sessions() as session:
        rows = {(r.level, r.region_code): r for r in await store.filing_rows(session, scope, month.label)}
        expected = [("county", code) for code in await store.regions_with_subjects(session, 6) if code.startswith(scope)]
        expected += [("township", code) for code in await store.regions_with_subjects(session, 9) if code.startswith(scope)]
    views = []
    for level, code in expected:
        row = rows.get((level, code))
        if row is not None:
            views.append(filing_view(row))
            continue
        due = filings.due_on(level, month)
        views.append(FilingView(region=code, period=month.label, level=level, due_on=due,
                                status="overdue" if today > due else "pending", filed_at=None))
    return views
