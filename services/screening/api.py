"""screening's HTTP surface: verification cases, the steps of the identification ladder, subjects."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from contracts.codes import text_zh
from contracts.fields import AS_OF_DESCRIPTION, Amount, AsOf
from runtime.auth import Principal, region_scope, require, require_region
from runtime.eventstore import EventStore
from runtime.paging import Page, PageRequest, make_page, page_request
from runtime.problems import Problem, field_error
from contracts.vocabulary import RiskType
from runtime.auth import command_metadata
from runtime.ids import new_id_str
from runtime.service import ServiceContext, UnitOfWork, get_context, run_command
from runtime.settings import Settings
from services.screening import store
from services.screening.domain import Eligibility, Findings, MissingMonitoringLine, MonitoringLines, ladder, recommend
from services.screening.domain import subjects
from services.screening.handlers import change_subject, take_step

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
    notice_ends: date | None = None
    outcome: str | None = Field(None, description="identified or rejected, once the case is closed")


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
    overdue: bool = False,
    as_of: AsOf | None = Query(None, description=f"with overdue=true: {AS_OF_DESCRIPTION}"),
    page: PageRequest = Depends(page_request),
    principal: Principal = Depends(STAFF),
    ctx: ServiceContext = Depends(get_context),
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
    return make_page(rows, page, key=lambda r: r.case_id, item=lambda r: CaseView.model_validate(r, from_attributes=True))


@router.get("/cases/{case_id}", response_model=CaseDetail)
async def get_case(case_id: str, principal: Principal = Depends(STAFF), ctx: ServiceContext = Depends(get_context)):
    async with ctx.sessions() as session:
        row = await store.case_row(session, case_id)
        if row is None:
            raise Problem(404, "Not found", f"no case {case_id}", code="case_not_found")
        require_region(principal, row.region_code)
        stream = await EventStore(session, ctx.name, ctx.clock).load(f"case-{case_id}")
    history = [
        HistoryEntry(event_type=e.event_type, at=e.recorded_at, actor=e.actor.model_dump(), payload=e.payload)
        for e in stream.events
    ]
    return CaseDetail(**CaseView.model_validate(row, from_attributes=True).model_dump(), history=history)


# --- the ladder ----------------------------------------------------------------------------------

@lru_cache(maxsize=4)
def monitoring_lines(path: str | None) -> MonitoringLines:
    return MonitoringLines.from_csv(Path(path) if path else Path(__file__).parent / "data" / "monitoring-lines-demo.csv")


def line_for(settings: Settings, region_code: str, year: int) -> Decimal:
    """The line of the findings' income year; a year without one is the caller's to correct (state
    another income_year) or the deployment's (add the row the problem names)."""
    try:
        return monitoring_lines(settings.monitoring_lines).line_for(region_code, year)
    except MissingMonitoringLine as exc:
        raise Problem(422, "Invalid request", f"income_year: {exc}", errors=[{"field": "income_year", "message": str(exc)}],
                      code="monitoring_line_missing", type_="https://fangpin.dev/problems/missing-monitoring-line") from exc


async def step(ctx: ServiceContext, principal: Principal, request: Request, case_id: str, make_command):
    """Take one ladder step for `principal`; refusals name the step the case expects and who may take it."""
    async def work(uow: UnitOfWork):
        try:
            await take_step(uow, case_id, principal.role, lambda region: require_region(principal, region), make_command)
        except ladder.LadderRefused as refused:
            raise Problem(refused.status, {403: "Forbidden", 404: "Not found", 409: "Out of order", 422: "Invalid request"}
                          .get(refused.status, "Refused"), str(refused), code=refused.code,
                          expected_step=refused.expected_step.value, expected_step_zh=text_zh(refused.expected_step),
                          allowed_roles=list(refused.allowed_roles)) from None

    await run_command(ctx, command_metadata(principal, request), work)
    async with ctx.sessions() as session:
        row = await store.case_row(session, case_id)
    return CaseView.model_validate(row, from_attributes=True)


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
                              principal: Principal = Depends(STAFF), ctx: ServiceContext = Depends(get_context)):
    """入户核查: the visit's findings, answered with the eligibility recommendation, its reasons and the
    monitoring line of the income year they were held to (the case's history records the same)."""
    findings = Findings(body.per_capita_net_income, body.rigid_expenditure, body.education_ok, body.medical_ok,
                        body.housing_safe, body.water_safe)
    this_year = ctx.clock.now().year
    year = this_year if body.income_year is None else body.income_year
    if year > this_year:
        raise field_error("income_year", f"must not be after the current year {this_year}: no income of {year} is known yet",
                          code="income_year_in_future")
    lines: list[Decimal] = []  # the line as looked up for the case's region (once per attempt of the unit of work)

    def command(state: ladder.CaseState) -> ladder.RecordVerification:
        lines.append(line_for(ctx.settings, state.region_code, year))
        return ladder.RecordVerification(findings, lines[-1], tuple(body.risk_types), income_year=year)

    case = await step(ctx, principal, request, case_id, command)
    advice = recommend(findings, lines[-1])  # the rule the ladder recorded, on the same findings and line
    return VerificationOut(**case.model_dump(), recommendation=advice.eligibility,
                           reasons=[ReasonView(code=r.code, text=r.text, text_zh=r.text_zh) for r in advice.reasons],
                           monitoring_line=MonitoringLineView(year=year, yuan=lines[-1]))


class DeliberationIn(BaseModel):
    decision: Literal["propose", "not_propose"]
    attendees: int = Field(ge=1, le=1000)
    minutes: str = Field("", max_length=4000)


@router.post("/cases/{case_id}/village-deliberation", response_model=CaseView)
async def village_deliberation(case_id: str, body: DeliberationIn, request: Request,
                               principal: Principal = Depends(STAFF), ctx: ServiceContext = Depends(get_context)):
    """村级评议: `propose` posts the five-day public notice; `not_propose` closes the case."""
    return await step(ctx, principal, request, case_id,
                      lambda state: ladder.Deliberate(body.decision, body.attendees, body.minutes))


class ObjectionIn(BaseModel):
    by: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=4000)


class ObjectionOut(BaseModel):
    objection_id: str = Field(description="resolve it at .../objections/{objection_id}/resolution")
    case: CaseView


@router.post("/cases/{case_id}/objections", response_model=ObjectionOut, status_code=201)
async def raise_objection(case_id: str, body: ObjectionIn, request: Request,
                          principal: Principal = Depends(STAFF), ctx: ServiceContext = Depends(get_context)):
    """An objection during the public notice; it holds the notice open until resolved."""
    objection_id = new_id_str()
    case = await step(ctx, principal, request, case_id,
                      lambda state: ladder.RaiseObjection(objection_id, body.by, body.reason))
    return ObjectionOut(objection_id=objection_id, case=case)


class ResolutionIn(BaseModel):
    upheld: bool
    note: str = Field("", max_length=4000)


@router.post("/cases/{case_id}/objections/{objection_id}/resolution", response_model=CaseView)
async def resolve_objection(case_id: str, objection_id: str, body: ResolutionIn, request: Request,
                            principal: Principal = Depends(STAFF), ctx: ServiceContext = Depends(get_context)):
    """An upheld objection returns the case to the village deliberation."""
    return await step(ctx, principal, request, case_id,
                      lambda state: ladder.ResolveObjection(objection_id, body.upheld, body.note))


class TownshipReviewIn(BaseModel):
    decision: Literal["pass", "return"]
    comment: str = Field("", max_length=4000)


@router.post("/cases/{case_id}/township-review", response_model=CaseView)
async def township_review(case_id: str, body: TownshipReviewIn, request: Request,
                          principal: Principal = Depends(STAFF), ctx: ServiceContext = Depends(get_context)):
    """乡镇初审: `return` sends the case back to a new verification visit."""
    return await step(ctx, principal, request, case_id, lambda state: ladder.TownshipReview(body.decision, body.comment))


class CountyDecisionIn(BaseModel):
    decision: Literal["approve", "reject"]
    category: ladder.Category | None = None
    risk_types: list[RiskType] = Field(default_factory=list)
    reason: str = Field("", max_length=4000)


@router.post("/cases/{case_id}/county-decision", response_model=CaseView)
async def county_decision(case_id: str, body: CountyDecisionIn, request: Request,
                          principal: Principal = Depends(STAFF), ctx: ServiceContext = Depends(get_context)):
    """县级审定: approve with category and risk types (the household becomes a monitoring subject), or reject with a reason."""
    return await step(ctx, principal, request, case_id, lambda state: ladder.CountyDecision(
        body.decision, body.category, tuple(body.risk_types), body.reason))


class SubjectView(BaseModel):
    household_id: str
    region_code: str
    case_id: str
    category: str
    risk_types: list[str]
    status: str = Field(description="monitored, risk_eliminated or removed")
    protected: bool = Field(description="整户无劳动能力兜底保障户")
    removal_pending: bool
    protection_pending: bool
    identified_at: datetime
    updated_at: datetime


@router.get("/subjects", response_model=Page[SubjectView])
async def list_subjects(region: str | None = None, status: str | None = None, page: PageRequest = Depends(page_request),
                        principal: Principal = Depends(STAFF), ctx: ServiceContext = Depends(get_context)):
    scope = region_scope(principal, region)
    async with ctx.sessions() as session:
        rows = await store.subject_page(session, scope, status, page.after, page.limit + 1)
    return make_page(rows, page, key=lambda r: r.household_id,
                     item=lambda r: SubjectView.model_validate(r, from_attributes=True))


@router.get("/subjects/{household_id}", response_model=SubjectView)
async def get_subject(household_id: str, principal: Principal = Depends(STAFF), ctx: ServiceContext = Depends(get_context)):
    async with ctx.sessions() as session:
        row = await store.subject_row(session, household_id)
    if row is None:
        raise Problem(404, "Not found", f"household {household_id} is not a monitoring subject", code="subject_not_found")
    require_region(principal, row.region_code)
    return SubjectView.model_validate(row, from_attributes=True)


async def subject_change(ctx: ServiceContext, principal: Principal, request: Request, household_id: str, decide):
    async def work(uow: UnitOfWork):
        try:
            await change_subject(uow, household_id, lambda region: require_region(principal, region),
                                 lambda state: decide(uow, state))
        except subjects.SubjectRefused as refused:
            raise Problem(refused.status, {403: "Forbidden", 409: "Conflict", 422: "Invalid request"}[refused.status],
                          str(refused), code=refused.code, allowed_roles=list(refused.allowed_roles)) from None

    await run_command(ctx, command_metadata(principal, request), work)
    async with ctx.sessions() as session:
        return SubjectView.model_validate(await store.subject_row(session, household_id), from_attributes=True)


class RemovalIn(BaseModel):
    reason: str = Field(min_length=1, max_length=4000)


class DecisionIn(BaseModel):
    comment: str = Field("", max_length=4000)


class RemovalDecisionIn(DecisionIn):
    decision: Literal["approve", "reject"]


class ProtectionIn(BaseModel):
    note: str = Field("", max_length=4000)


class ProtectionDecisionIn(DecisionIn):
    decision: Literal["confirm", "decline"]


@router.post("/subjects/{household_id}/removal", response_model=SubjectView)
async def propose_removal(household_id: str, body: RemovalIn, request: Request,
                          principal: Principal = Depends(STAFF), ctx: ServiceContext = Depends(get_context)):
    """清退 of a wrongly identified subject, proposed by the township; the county decides."""
    async def decide(uow, state):
        return subjects.propose_removal(state, body.reason, principal.role)
    return await subject_change(ctx, principal, request, household_id, decide)


@router.post("/subjects/{household_id}/removal/decision", response_model=SubjectView)
async def decide_removal(household_id: str, body: RemovalDecisionIn, request: Request,
                         principal: Principal = Depends(STAFF), ctx: ServiceContext = Depends(get_context)):
    async def decide(uow, state):
        return subjects.decide_removal(state, body.decision, body.comment, principal.role)
    return await subject_change(ctx, principal, request, household_id, decide)


@router.post("/subjects/{household_id}/protection", response_model=SubjectView)
async def propose_protection(household_id: str, body: ProtectionIn, request: Request,
                             principal: Principal = Depends(STAFF), ctx: ServiceContext = Depends(get_context)):
    """The protected mark 整户无劳动能力兜底保障户, proposed by the village where no member can work;
    the township confirms."""
    async def decide(uow, state):
        can_work = await store.any_member_can_work(uow.session, household_id)
        return subjects.propose_protection(state, can_work, body.note, principal.role)
    return await subject_change(ctx, principal, request, household_id, decide)


@router.post("/subjects/{household_id}/protection/decision", response_model=SubjectView)
async def decide_protection(household_id: str, body: ProtectionDecisionIn, request: Request,
                            principal: Principal = Depends(STAFF), ctx: ServiceContext = Depends(get_context)):
    async def decide(uow, state):
        return subjects.decide_protection(state, body.decision, body.comment, principal.role)
    return await subject_change(ctx, principal, request, household_id, decide)


class QualityIssueView(BaseModel):
    issue_id: str
    household_id: str
    region_code: str
    kind: str
    detail: str
    raised_at: datetime


@router.get("/quality-issues", response_model=Page[QualityIssueView])
async def list_quality_issues(region: str | None = None, page: PageRequest = Depends(page_request),
                              principal: Principal = Depends(STAFF), ctx: ServiceContext = Depends(get_context)):
    """What the checks caught, e.g. out_of_loop (体外循环)."""
    scope = region_scope(principal, region)
    async with ctx.sessions() as session:
        rows = await store.quality_issue_page(session, scope, page.after, page.limit + 1)
    return make_page(rows, page, key=lambda r: r.issue_id,
                     item=lambda r: QualityIssueView.model_validate(r, from_attributes=True))
