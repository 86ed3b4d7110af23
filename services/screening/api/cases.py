"""Verification cases and the steps of the identification ladder."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from contracts.fields import AS_OF_DESCRIPTION, Amount, AsOf
from contracts.vocabulary import RiskType
from runtime.auth import Staff, command_metadata, region_scope, require_region
from runtime.eventstore import EventStore
from runtime.history import HistoryEntry, stream_history
from runtime.paging import Page, Paging, make_page
from runtime.problems import Problem, field_error
from runtime.service import Context
from services.screening import commands, store
from services.screening.domain import Eligibility, Findings, ladder

router = APIRouter()


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
    notice_ends: date | None = None
    outcome: str | None = Field(None, description="identified or rejected, once the case is closed")


def case_view(row) -> CaseView:
    return CaseView.model_validate(row, from_attributes=True)


class CaseDetail(CaseView):
    history: list[HistoryEntry]


@router.get("/cases", response_model=Page[CaseView])
async def list_cases(
    region: str | None = None,
    status: str | None = None,
    overdue: bool = False,
    as_of: AsOf | None = Query(None, description=f"with overdue=true: {AS_OF_DESCRIPTION}"),
    *,
    page: Paging,
    principal: Staff,
    ctx: Context,
):
    """`overdue=true`: open cases whose current step is past its due date on today's date, or on
    `as_of`'s: the cases as they stand now, so a date ahead shows what will be overdue by then."""
    if as_of is not None and not overdue:
        raise field_error("as_of", "goes with overdue=true: it is the date the due dates are judged on",
                          code="as_of_without_overdue")
    scope = region_scope(principal, region)
    async with ctx.sessions() as session:
        rows = await store.case_page(session, scope, status, page.after, page.limit + 1,
                                     overdue_on=(as_of or ctx.clock.now()).date() if overdue else None)
    return make_page(rows, page, key=lambda r: r.case_id, item=case_view)


@router.get("/cases/{case_id}", response_model=CaseDetail)
async def get_case(case_id: str, principal: Staff, ctx: Context):
    async with ctx.sessions() as session:
        row = await store.case_row(session, case_id)
        if row is None:
            raise Problem(404, "Not found", f"no case {case_id}", code="case_not_found")
        require_region(principal, row.region_code)
        history = await stream_history(EventStore(session, ctx.name, ctx.clock), f"case-{case_id}")
    return CaseDetail(**case_view(row).model_dump(), history=history)


# --- the ladder ----------------------------------------------------------------------------------

class VerificationIn(BaseModel):
    per_capita_net_income: Amount = Field(description="yuan per person per year")
    rigid_expenditure: Amount = Field(Decimal(0), description="yuan per person per year the household cannot avoid")
    education_ok: bool
    medical_ok: bool
    housing_safe: bool
    water_safe: bool
    risk_types: list[RiskType] = Field(default_factory=list, description="empty: the clues' risk types")
    notes: str | None = Field(None, max_length=4000)
    income_year: int | None = Field(None, ge=2000, description=(
        "the year the income and expenditure are about, whose monitoring line they are held to (findings "
        "about 2025 recorded in January 2026 say 2025); not after the current year. Default: the year of "
        "the visit, i.e. of the service's clock (UTC) when the findings are recorded"))


class ReasonView(BaseModel):
    code: str = Field(description="stable snake_case code, e.g. income_under_line: match on this, not on the text")
    text: str = Field(description="the reason with the case's figures")
    text_zh: str = Field(description="the reason in Chinese, in the terms of the policy documents, e.g. 义务教育未保障")


class MonitoringLineView(BaseModel):
    year: int = Field(description="the income year the line is for")
    yuan: Decimal = Field(description="yuan per person per year")


class VerificationOut(CaseView):
    recommendation: Eligibility = Field(description="what the findings recommend to the village deliberation")
    reasons: list[ReasonView]
    monitoring_line: MonitoringLineView = Field(description="the line the findings were held to")


@router.post("/cases/{case_id}/verification", response_model=VerificationOut)
async def record_verification(case_id: str, body: VerificationIn, request: Request,
                              principal: Staff, ctx: Context):
    """入户核查: the visit's findings, answered with the eligibility recommendation, its reasons and the
    monitoring line of the income year they were held to (the case's history records the same)."""
    findings = Findings(body.per_capita_net_income, body.rigid_expenditure, body.education_ok, body.medical_ok,
                        body.housing_safe, body.water_safe)
    verified = await commands.record_verification(ctx, principal, command_metadata(principal, request), case_id, findings,
                                                  body.risk_types, body.income_year)
    advice = verified.recommendation
    return VerificationOut(**case_view(verified.case).model_dump(), recommendation=advice.eligibility,
                           reasons=[ReasonView(code=r.code, text=r.text, text_zh=r.text_zh) for r in advice.reasons],
                           monitoring_line=MonitoringLineView(year=verified.income_year, yuan=verified.monitoring_line))


class DeliberationIn(BaseModel):
    decision: Literal["propose", "not_propose"]
    attendees: int = Field(ge=1, le=1000)
    minutes: str = Field("", max_length=4000)


@router.post("/cases/{case_id}/village-deliberation", response_model=CaseView)
async def village_deliberation(case_id: str, body: DeliberationIn, request: Request,
                               principal: Staff, ctx: Context):
    """村级评议: `propose` posts the five-day public notice; `not_propose` closes the case."""
    return case_view(await commands.deliberate(ctx, principal, command_metadata(principal, request), case_id,
                                               body.decision, body.attendees, body.minutes))


class ObjectionIn(BaseModel):
    by: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=4000)


class ObjectionOut(BaseModel):
    objection_id: str = Field(description="resolve it at .../objections/{objection_id}/resolution")
    case: CaseView


@router.post("/cases/{case_id}/objections", response_model=ObjectionOut, status_code=201)
async def raise_objection(case_id: str, body: ObjectionIn, request: Request,
                          principal: Staff, ctx: Context):
    """An objection during the public notice; it holds the notice open until resolved."""
    objection_id, case = await commands.raise_objection(ctx, principal, command_metadata(principal, request), case_id,
                                                        body.by, body.reason)
    return ObjectionOut(objection_id=objection_id, case=case_view(case))


class ResolutionIn(BaseModel):
    upheld: bool
    note: str = Field("", max_length=4000)


@router.post("/cases/{case_id}/objections/{objection_id}/resolution", response_model=CaseView)
async def resolve_objection(case_id: str, objection_id: str, body: ResolutionIn, request: Request,
                            principal: Staff, ctx: Context):
    """An upheld objection returns the case to the village deliberation."""
    return case_view(await commands.resolve_objection(ctx, principal, command_metadata(principal, request), case_id,
                                                      objection_id, body.upheld, body.note))


class TownshipReviewIn(BaseModel):
    decision: Literal["pass", "return"]
    comment: str = Field("", max_length=4000)


@router.post("/cases/{case_id}/township-review", response_model=CaseView)
async def township_review(case_id: str, body: TownshipReviewIn, request: Request,
                          principal: Staff, ctx: Context):
    """乡镇初审: `return` sends the case back to a new verification visit."""
    return case_view(await commands.review_at_township(ctx, principal, command_metadata(principal, request), case_id,
                                                       body.decision, body.comment))


class CountyDecisionIn(BaseModel):
    decision: Literal["approve", "reject"]
    category: ladder.Category | None = None
    risk_types: list[RiskType] = Field(default_factory=list)
    reason: str = Field("", max_length=4000)


@router.post("/cases/{case_id}/county-decision", response_model=CaseView)
async def county_decision(case_id: str, body: CountyDecisionIn, request: Request,
                          principal: Staff, ctx: Context):
    """县级审定: approve with category and risk types (the household becomes a monitoring subject), or reject with a reason."""
    return case_view(await commands.decide_at_county(ctx, principal, command_metadata(principal, request), case_id,
                                                     body.decision, body.category, body.risk_types, body.reason))
