"""Grid-worker visits (网格员走访): weekly, with or without risk found; a visit with risks raises a clue."""
from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from contracts.fields import AS_OF_DESCRIPTION, AsOf, Moment, moment_problem
from contracts.intake import VisitRecorded
from contracts.vocabulary import ClueChannel, RiskType
from runtime.auth import Principal, command_metadata, region_scope, require, require_region
from runtime.eventstore import NewEvent, StreamHead
from runtime.ids import new_id_str
from runtime.paging import Page, PageRequest, make_page, page_request
from runtime.problems import Problem, field_error
from runtime.service import ServiceContext, UnitOfWork, get_context, run_command
from services.intake import store
from services.intake.api.clues import new_clue

router = APIRouter()
VISITORS = require("grid_worker", "village_cadre", "work_team", "township_officer")


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
async def record_visit(body: VisitIn, request: Request, principal: Principal = Depends(VISITORS),
                       ctx: ServiceContext = Depends(get_context)):
    if principal.role == "grid_worker" and body.worker_id != principal.sub:
        raise Problem(403, "Forbidden", f"a grid worker records their own visits (token is {principal.sub})",
                      code="worker_id_not_token_holder")
    now = ctx.clock.now()
    if problem := moment_problem(body.visited_at, now):  # the same rule again, by the service's clock
        raise field_error("visited_at", problem.message, code=problem.code)

    async def work(uow: UnitOfWork) -> VisitOut:
        household = await store.household_ref(uow.session, body.household_id)
        if household is None:
            raise Problem(404, "Not found", f"no household {body.household_id}; register it first (POST /v1/households)",
                          code="household_not_found")
        require_region(principal, household.region_code)
        if principal.role == "grid_worker" and await store.grid_worker_of(uow.session, household.household_id) != principal.sub:
            raise Problem(403, "Forbidden", f"household {household.household_id} is not one of grid worker "
                          f"{principal.sub}'s households; a grid worker visits their own households only",
                          code="household_not_assigned_to_grid_worker")
        visit_id = new_id_str()
        clue_id = new_id_str() if body.risk_types else None
        streams = [(StreamHead(f"visit-{visit_id}"), [NewEvent(
            VisitRecorded(visit_id=visit_id, household_id=household.household_id, worker_id=body.worker_id,
                          visited_at=body.visited_at, risk_types=body.risk_types, clue_id=clue_id),
            household_id=household.household_id, region_code=household.region_code, occurred_at=body.visited_at)])]
        if clue_id:
            stream, clue_row = new_clue(clue_id, household, ClueChannel.GRID_VISIT, now, list(body.risk_types),
                                        worker_id=body.worker_id, source_record_id=visit_id, observed_at=body.visited_at)
            streams.append(stream)
            await store.insert_clues(uow.session, [clue_row])
        await uow.append_many(streams)
        await store.record_visit(uow.session, {
            "visit_id": visit_id, "household_id": household.household_id, "worker_id": body.worker_id,
            "visited_at": body.visited_at, "risk_types": [r.value for r in body.risk_types], "notes": body.notes,
            "clue_id": clue_id, "recorded_at": now})
        return VisitOut(visit_id=visit_id, household_id=household.household_id, clue_id=clue_id)

    return await run_command(ctx, command_metadata(principal, request), work)


class OverdueView(BaseModel):
    household_id: str
    region_code: str
    grid_worker_id: str | None
    last_visited_at: datetime | None = Field(description="the last visit by as_of; null: never visited by then")


@router.get("/visits/overdue", response_model=Page[OverdueView])
async def overdue_visits(
    region: str | None = None,
    as_of: AsOf | None = Query(None, description=AS_OF_DESCRIPTION),
    page: PageRequest = Depends(page_request),
    principal: Principal = Depends(require()),
    ctx: ServiceContext = Depends(get_context),
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
