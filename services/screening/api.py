"""screening's HTTP surface: verification cases."""
from __future__ import annotations

from datetime import date, datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from runtime.auth import Principal, region_scope, require, require_region
from runtime.eventstore import EventStore
from runtime.paging import Page, PageRequest, make_page, page_request
from runtime.problems import Problem
from runtime.service import ServiceContext, get_context
from services.screening import store

router = APIRouter(prefix="/v1", tags=["screening"])
STAFF = require(kinds=("staff",))


class CaseView(BaseModel):
    case_id: str
    household_id: str
    region_code: str
    status: str
    step: str
    due_date: date
    risk_types: list[str]
    clue_ids: list[str]
    opened_at: datetime
    updated_at: datetime


class HistoryEntry(BaseModel):
    event_type: str
    at: datetime
    actor: dict
    payload: dict


class CaseDetail(CaseView):
    history: list[HistoryEntry]


@router.get("/cases", response_model=Page[CaseView])
async def list_cases(
    region: str | None = None,
    status: str | None = None,
    page: PageRequest = Depends(page_request),
    principal: Principal = Depends(STAFF),
    ctx: ServiceContext = Depends(get_context),
):
    scope = region_scope(principal, region)
    async with ctx.sessions() as session:
        rows = await store.case_page(session, scope, status, page.after, page.limit + 1)
    return make_page(rows, page, key=lambda r: r.case_id, item=lambda r: CaseView.model_validate(r, from_attributes=True))


@router.get("/cases/{case_id}", response_model=CaseDetail)
async def get_case(case_id: str, principal: Principal = Depends(STAFF), ctx: ServiceContext = Depends(get_context)):
    async with ctx.sessions() as session:
        row = await store.case_row(session, case_id)
        if row is None:
            raise Problem(404, "Not found", f"no case {case_id}")
        require_region(principal, row.region_code)
        stream = await EventStore(session, ctx.name, ctx.clock).load(f"case-{case_id}")
    history = [
        HistoryEntry(event_type=e.event_type, at=e.recorded_at, actor=e.actor.model_dump(), payload=e.payload)
        for e in stream.events
    ]
    return CaseDetail(**CaseView.model_validate(row, from_attributes=True).model_dump(), history=history)
