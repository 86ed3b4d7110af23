"""Exit cases (风险消除): the village's proposal, the four parties' consent, the seven blockers'
verdicts, the notice and its objections, the township's verification and the county's decision."""
from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from contracts.exit_review import BlockerVerdict, EvidenceItem, ExitFindings, Party, Satisfaction
from contracts.fields import Amount
from runtime.auth import Staff, command_metadata, region_scope, require_region
from runtime.eventstore import EventStore
from runtime.history import HistoryEntry, stream_history
from runtime.ids import new_id_str
from runtime.paging import Page, Paging, make_page
from runtime.problems import Problem
from runtime.service import Context, run_command
from services.exit_review import commands, store
from services.exit_review.domain import ladder

router = APIRouter()


class ExitView(BaseModel):
    exit_id: str
    household_id: str
    region_code: str
    step: str = Field(description="exit_consent, public_notice, township_verification, county_decision or closed")
    outcome: str | None = Field(description="approved, rejected or returned once closed")
    notice_ends: date | None
    due_date: date | None = Field(description="when the step it stands at is due (exit_step_due_days; a notice: its end)")
    passed: bool | None = Field(description="the blockers' assessment, once the four parties have answered")
    blockers: list[str] = Field(description="the blockers that failed or were unknown (exit_blocker codes)")
    decided_on: date | None = Field(description="the day the county approved it")
    look_back: str | None = Field(description="回头看: due, completed")
    flagged: bool | None = Field(description="the look-back found an income below the line or a risk raised since")
    rollback: str | None = Field(description="风险消除回退: pending, rolled_back, refused")
    proposed_at: datetime
    updated_at: datetime


class ConsentView(BaseModel):
    party: Party
    given: bool
    by: str
    recorded_by: str
    at: datetime


class AssessmentView(BaseModel):
    rule_version: str
    window_start: date
    window_end: date
    passed: bool
    verdicts: list[BlockerVerdict] = Field(description="each of the seven blockers 七不消: pass, fail or unknown, "
                                                        "the evidence it used, what is missing")


class LookBackView(BaseModel):
    rule_version: str
    window_start: date
    window_end: date
    flagged: bool
    flags: list[EvidenceItem] = Field(description="the incomes below the line and the risks raised since the exit")
    verdicts: list[BlockerVerdict] = Field(description="income, measures, sudden difficulties, monitoring, judged again")
    note: str


class ExitDetail(ExitView):
    findings: ExitFindings
    consents: list[ConsentView]
    assessment: AssessmentView | None
    look_back_result: LookBackView | None
    history: list[HistoryEntry] = Field(description="the case's events, oldest first: objections, the township's "
                                                    "verification and the county's decision among them")


def exit_view(row) -> ExitView:
    return ExitView.model_validate(row, from_attributes=True)


async def exit_detail(ctx, principal, exit_id: str) -> ExitDetail:
    async with ctx.sessions() as session:
        row = await store.exit_row(session, exit_id)
        if row is None:
            raise Problem(404, "Not found", f"no exit case {exit_id}", code="exit_not_found")
        require_region(principal, row.region_code)
        history = [entry for entry in await stream_history(EventStore(session, ctx.name, ctx.clock),
                                                            commands.exit_stream(row.household_id))
                   if entry.payload.get("exit_id") == exit_id]
    proposed = next(e for e in history if e.event_type == "ExitProposed")
    assessed = next((e for e in history if e.event_type == "ExitAssessed"), None)
    looked_back = next((e for e in history if e.event_type == "LookBackCompleted"), None)
    return ExitDetail(
        **exit_view(row).model_dump(), findings=ExitFindings.model_validate(proposed.payload["findings"]),
        consents=[ConsentView(**{k: e.payload[k] for k in ("party", "given", "by", "recorded_by")}, at=e.at)
                  for e in history if e.event_type == "ConsentRecorded"],
        assessment=AssessmentView.model_validate(assessed.payload) if assessed else None,
        look_back_result=LookBackView.model_validate(looked_back.payload) if looked_back else None, history=history)


class ConsentIn(BaseModel):
    household: bool = Field(False, description="the household's consent, signed by `household_member_id`")
    helper: bool = Field(False, description="given by the helper (POST .../consents): true here is refused")
    work_team: bool = Field(False, description="given by the work team (POST .../consents): true here is refused")
    village_committee: bool = Field(False, description="the village committee's, given by the proposing cadre")


class ProposalIn(BaseModel):
    household_id: str = Field(min_length=1, max_length=64)
    visited_on: date = Field(description="the village's visit before proposing")
    per_capita_net_income: Amount = Field(description="yuan per person per year, found at the visit")
    education_ok: bool
    medical_ok: bool
    housing_safe: bool
    water_safe: bool
    satisfaction: Satisfaction = Field(description="the household's satisfaction (家庭认可度)")
    attendees: int = Field(ge=1, le=1000, description="at the village deliberation (村级评议)")
    minutes: str = Field("", max_length=4000)
    consent: ConsentIn = Field(default_factory=ConsentIn)
    household_member_id: str | None = Field(None, max_length=64, description="the member who signs the household's consent")


@router.post("/exits", response_model=ExitDetail, status_code=201)
async def propose_exit(body: ProposalIn, request: Request, principal: Staff, ctx: Context):
    """村级评议 proposes the subject's risk eliminated (village cadre); consents given here are the
    proposer's own party's (village committee) and the household's (signed by one of its members)."""
    findings = ExitFindings(visited_on=body.visited_on, per_capita_net_income=body.per_capita_net_income,
                            education_ok=body.education_ok, medical_ok=body.medical_ok, housing_safe=body.housing_safe,
                            water_safe=body.water_safe, satisfaction=body.satisfaction)
    consents = [ladder.RecordConsent(party, True, member_id=body.household_member_id if party == "household" else None)
                for party in ("household", "village_committee", "helper", "work_team") if getattr(body.consent, party)]
    exit_id = await run_command(ctx, command_metadata(principal, request), lambda uow: commands.propose(
        uow, principal, body.household_id, findings, body.attendees, body.minutes, consents))
    return await exit_detail(ctx, principal, exit_id)


@router.get("/exits", response_model=Page[ExitView])
async def list_exits(region: str | None = None, step: str | None = None,
                     look_back: Literal["due", "completed"] | None = None, flagged: bool | None = None,
                     overdue: bool = False, *, page: Paging, principal: Staff, ctx: Context):
    """Exit cases of a region (default the caller's), by exit id; `step=` those at one step;
    `overdue=true` the open ones past their step's due date; `look_back=due` the approved exits whose
    look-back is due, `flagged=true` those it flagged."""
    scope = region_scope(principal, region)
    async with ctx.sessions() as session:
        rows = await store.exit_page(session, scope, step, page.after, page.limit + 1, look_back, flagged,
                                     overdue_on=ctx.clock.now().date() if overdue else None)
    return make_page(rows, page, key=lambda r: r.exit_id, item=exit_view)


@router.get("/exits/{exit_id}", response_model=ExitDetail)
async def get_exit(exit_id: str, principal: Staff, ctx: Context):
    """The case with each of the seven blockers' verdict and evidence, its consents and its history."""
    return await exit_detail(ctx, principal, exit_id)


async def _step(ctx, principal, request: Request, exit_id: str, command: ladder.Command) -> ExitDetail:
    await run_command(ctx, command_metadata(principal, request),
                      lambda uow: commands.take_step(uow, principal, exit_id, command))
    return await exit_detail(ctx, principal, exit_id)


class PartyConsentIn(BaseModel):
    party: Party
    given: bool = True
    member_id: str | None = Field(None, max_length=64, description="household: the member who signs")
    note: str = Field("", max_length=2000)


@router.post("/exits/{exit_id}/consents", response_model=ExitDetail)
async def record_consent(exit_id: str, body: PartyConsentIn, request: Request, principal: Staff, ctx: Context):
    """四方认可: one party's consent, given by that party (the household's recorded by village staff with
    the signing member). The last of the four sets the blockers to be judged: passed, the five-day
    notice is posted; else the case is rejected naming the blockers."""
    return await _step(ctx, principal, request, exit_id,
                       ladder.RecordConsent(body.party, body.given, member_id=body.member_id, note=body.note))


class ObjectionIn(BaseModel):
    by: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=4000)


@router.post("/exits/{exit_id}/objections", response_model=ExitDetail, status_code=201)
async def raise_objection(exit_id: str, body: ObjectionIn, request: Request, principal: Staff, ctx: Context):
    """An objection during the notice; it holds the notice open until the township resolves it."""
    return await _step(ctx, principal, request, exit_id, ladder.RaiseObjection(new_id_str(), body.by, body.reason))


class ResolutionIn(BaseModel):
    upheld: bool
    note: str = Field("", max_length=4000)


@router.post("/exits/{exit_id}/objections/{objection_id}/resolution", response_model=ExitDetail)
async def resolve_objection(exit_id: str, objection_id: str, body: ResolutionIn, request: Request, principal: Staff,
                            ctx: Context):
    """The township resolves an objection; upheld, the case returns to the village (closed)."""
    return await _step(ctx, principal, request, exit_id, ladder.ResolveObjection(objection_id, body.upheld, body.note))


class VerificationIn(BaseModel):
    decision: Literal["pass", "return"]
    comment: str = Field("", max_length=4000)


@router.post("/exits/{exit_id}/township-verification", response_model=ExitDetail)
async def township_verification(exit_id: str, body: VerificationIn, request: Request, principal: Staff, ctx: Context):
    """乡镇核实: `return` (with the reason) sends the case back to the village."""
    return await _step(ctx, principal, request, exit_id, ladder.TownshipVerification(body.decision, body.comment))


class CountyDecisionIn(BaseModel):
    decision: Literal["approve", "reject"]
    spot_checked: bool = Field(False, description="the county spot-checked this household (抽查)")
    department_comparison: str = Field("", max_length=4000, description="what the departments' data comparison showed")
    reason: str = Field("", max_length=4000, description="required to reject")


@router.post("/exits/{exit_id}/county-decision", response_model=ExitDetail)
async def county_decision(exit_id: str, body: CountyDecisionIn, request: Request, principal: Staff, ctx: Context):
    """县级审定: approve (ExitApproved: screening marks the subject risk-eliminated, assistance closes the
    plan) or reject with the reason."""
    return await _step(ctx, principal, request, exit_id, ladder.CountyDecision(
        body.decision, body.spot_checked, body.department_comparison, body.reason))


# --- after the exit ----------------------------------------------------------------------------------

class LookBackIn(BaseModel):
    note: str = Field("", max_length=4000, description="what the township found on its own look-back visit")


@router.post("/exits/{exit_id}/look-back", response_model=ExitDetail)
async def complete_look_back(exit_id: str, body: LookBackIn, request: Request, principal: Staff, ctx: Context):
    """回头看 (township or county, once due): income, measures, sudden difficulties and monitoring judged
    again on what happened since; flagged when an income fell below the line or a risk was raised
    since the exit. 409 `look_back_not_due`, `look_back_already_done`."""
    await run_command(ctx, command_metadata(principal, request),
                      lambda uow: commands.complete_look_back(uow, principal, exit_id, body.note))
    return await exit_detail(ctx, principal, exit_id)


class RollbackIn(BaseModel):
    reason: str = Field(max_length=4000, description="why the exit was not right")


async def _standing_exit(ctx, principal, household_id: str) -> ExitDetail:
    async with ctx.sessions() as session:
        exit_id = await store.last_approved_exit(session, household_id)
    return await exit_detail(ctx, principal, exit_id)


@router.post("/subjects/{household_id}/exit-rollback", response_model=ExitDetail)
async def request_rollback(household_id: str, body: RollbackIn, request: Request, principal: Staff, ctx: Context):
    """风险消除回退 requested by the township, with the reason; the county decides. 422
    `exit_never_approved` (field `household_id`), `rollback_without_reason`; 409 `rollback_already_pending`."""
    await run_command(ctx, command_metadata(principal, request),
                      lambda uow: commands.request_rollback(uow, principal, household_id, body.reason))
    return await _standing_exit(ctx, principal, household_id)


class RollbackDecisionIn(BaseModel):
    decision: Literal["approve", "refuse"]
    comment: str = Field("", max_length=4000, description="required to refuse")


@router.post("/subjects/{household_id}/exit-rollback/decision", response_model=ExitDetail)
async def decide_rollback(household_id: str, body: RollbackDecisionIn, request: Request, principal: Staff,
                          ctx: Context):
    """The county: `approve` (ExitRolledBack: screening monitors the subject again, assistance reopens
    the plan) or `refuse` with a comment. 409 `no_rollback_pending`."""
    await run_command(ctx, command_metadata(principal, request),
                      lambda uow: commands.decide_rollback(uow, principal, household_id, body.decision, body.comment))
    return await _standing_exit(ctx, principal, household_id)
