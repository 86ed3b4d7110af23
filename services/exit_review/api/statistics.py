"""Statistics of a region and period (监测帮扶统计): subjects by category, flows, exit rate, plan
figures, overdue steps, and the regions one level below; JSON, or CSV for a spreadsheet."""
from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from runtime.auth import Staff, region_scope
from runtime.service import Context
from services.exit_review import store
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
    return figures.compose(region, period, stock, flows, plans, overdue, children)


def view(found: figures.Statistics) -> StatisticsView:
    return StatisticsView(
        region=found.region, period=found.period.label, start=found.period.start, end=found.period.end,
        monitored=found.monitored, monitored_by_category=found.monitored_by_category,
        risk_eliminated=found.risk_eliminated, protected=found.protected, exit_rate=found.exit_rate, flows=found.flows,
        measures_per_household=found.measures_per_household, developmental_share=found.developmental_share,
        policy_coverage=found.policy_coverage, households_with_gaps=found.households_with_gaps,
        overdue_steps=found.overdue_steps, by_region=[RegionFigures(**r) for r in found.by_region])


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
            *((f"overdue.{ladder}.{step}", n) for ladder, steps in found.overdue_steps.items() for step, n in steps.items())]
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
