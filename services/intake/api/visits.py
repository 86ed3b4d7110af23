"""Grid-worker visits (网格员走访): weekly, with or without risk found; a visit with risks raises a clue."""
from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from contracts.fields import AS_OF_DESCRIPTION, AsOf, Moment, moment_problem
from contracts.vocabulary import RiskType
from runtime.auth import Staff, command_metadata, region_scope
from runtime.paging import Page, Paging, make_page
from runtime.problems import field_error
from runtime.service import Context
from services.intake import commands, store
from services.intake.api.deps import Visitor

router = APIRouter()


class VisitIn(BaseModel):
    household_id: str = Field(min_length=1, max_length=64)
    worker_id: str = Field(min_length=1, max_length=64)
    visited_at: Moment
    risk_types: list[RiskType] = Field(default_factory=list, description="empty: no risk found")
    notes: str | None = Field(None, max_length=2000)


class VisitOut(BaseModel):
    visit_id: str
    household_id: str
    clue_id: str | None = Field(None, description="the clue the risks raised, if any")


@router.post("/visits", status_code=201, response_model=VisitOut)
async def record_visit(body: VisitIn, request: Request, principal: Visitor, ctx: Context):
    if problem := moment_problem(body.visited_at, ctx.clock.now()):  # the same rule again, by the service's clock
        raise field_error("visited_at", problem.message, code=problem.code)
    visit = await commands.record_visit(ctx, command_metadata(principal, request), principal, body)
    return VisitOut(visit_id=visit.visit_id, household_id=visit.household_id, clue_id=visit.clue_id)


class OverdueView(BaseModel):
    household_id: str
    region_code: str
    grid_worker_id: str | None
    last_visited_at: datetime | None = Field(description="the last visit by as_of; null: never visited by then")


@router.get("/visits/overdue", response_model=Page[OverdueView])
async def overdue_visits(
    *,
    region: str | None = None,
    as_of: AsOf | None = Query(None, description=AS_OF_DESCRIPTION),
    page: Paging,
    principal: Staff,
    ctx: Context,
):
    """Households not visited in the `visit_interval_days` (7: weekly visits are the rule) before now
    or `as_of`. Only visits made by `as_of` count, so a past `as_of` gives the list as it stood then
    (with the households registered now) and one ahead the households due by then."""
    scope = region_scope(principal, region)
    before = (as_of or ctx.clock.now()) - timedelta(days=ctx.settings.visit_interval_days)
    async with ctx.sessions() as session:
        rows = await store.overdue_visits_page(session, scope, as_of, before, page.after, page.limit + 1)
    return make_page(rows, page, key=lambda r: r.household_id,
                     item=lambda r: OverdueView.model_validate(r, from_attributes=True))
