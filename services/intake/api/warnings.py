"""Department warnings (部门筛查预警): single, streamed batch, and the lists reported back to the
departments (unmatched, below their indicator's threshold)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from contracts.fields import Amount, FieldProblem, Moment, amount_problem, refusal
from contracts.intake import WarningUnmatched
from contracts.vocabulary import ClueChannel
from runtime.auth import Principal, command_metadata, require
from runtime.eventstore import NewEvent, StreamHead
from runtime.ids import new_id_str
from runtime.paging import Page, PageRequest, make_page, page_request
from runtime.problems import Problem, field_error
from runtime.service import ServiceContext, UnitOfWork, get_context, run_command
from services.intake import domain, store
from services.intake.api.clues import clue_on_its_own, clues_together, raise_clue
from services.intake.api.fields import IdNumber
from services.intake.api.ndjson import ndjson_body, run_ndjson_batch, tally

router = APIRouter()


class WarningIn(BaseModel):
    department: str = Field(min_length=1, max_length=64)
    source_record_id: str = Field(min_length=1, max_length=128, description="unique per department")
    id_number: IdNumber | None = None
    household_id: str | None = None
    indicator: str = Field(min_length=1, max_length=64)
    amount: Amount | None = None
    observed_at: Moment
    detail: str | None = Field(None, max_length=2000)
    over_threshold: bool | None = Field(None, description=(
        "the department's own judgement that the amount is over its indicator's threshold, taken as given "
        "(false: recorded as below_threshold, no clue); left out, intake holds the amount to the threshold of "
        "the household's region and the year observed"))

    @field_validator("amount")
    @classmethod
    def _within_the_indicators_maximum(cls, amount: Decimal | None, info: ValidationInfo) -> Decimal | None:
        # a field validator, not a model one, so that the error names the field "amount"
        indicator = info.data.get("indicator")  # validated before amount, absent if it failed
        if amount is not None and indicator:
            if problem := amount_problem(amount, domain.amount_maximum(indicator)):
                raise refusal(FieldProblem(problem.code, f"{problem.message} for the indicator {indicator}"))
        return amount

    @model_validator(mode="after")
    def _someone(self) -> "WarningIn":
        if not self.id_number and not self.household_id:
            raise refusal(FieldProblem("household_or_id_number_missing", "give id_number or household_id"))
        return self


class WarningOut(BaseModel):
    outcome: Literal["accepted", "duplicate", "unmatched", "below_threshold"]
    warning_id: str
    clue_id: str | None = None
    household_id: str | None = None
    threshold: Decimal | None = Field(None, description="below_threshold: the threshold the amount was held to "
                                                        "(none when the department judged it itself)")
    code: str | None = Field(None, description="below_threshold: why, a stable code (GET /v1/codes)")
    reason: str | None = None


@dataclass(slots=True)
class RowOutcome:
    """A plain dataclass: a million-row batch makes one per row, and a pydantic model costs more."""

    line: int
    outcome: Literal["accepted", "duplicate", "unmatched", "below_threshold", "invalid"]
    warning_id: str | None = None
    clue_id: str | None = None
    household_id: str | None = None
    field: str | None = None
    code: str | None = None  # invalid, below_threshold, repeated: the rule (contracts/codes.py) or pydantic's error type
    reason: str | None = None
    department: str | None = None  # the row's identifiers, also when it is invalid
    source_record_id: str | None = None
    threshold: Decimal | None = None  # below_threshold: what the amount was held to


def below_threshold_reason(row: WarningIn, threshold: Decimal | None) -> tuple[str, str]:
    """Why a warning raised no clue, as (code, reason)."""
    if threshold is None:
        return "department_judged_under_threshold", (
            f"{row.department} judged it under the threshold of {row.indicator} (over_threshold false); no clue raised")
    return "amount_under_threshold", (
        f"{row.amount} is under the threshold of {threshold} for {row.indicator} in {row.observed_at.year}; no clue raised")


def clue_of_warning(clue_id: str, household: store.HouseholdRef, now: datetime, risk_types: list, warning):
    """The clue a warning raises, whether it arrives matched or is re-matched later (`warning`: the
    request row or the stored one; both carry the same fields), and its row."""
    return raise_clue(clue_id, household, ClueChannel.DEPARTMENT_WARNING, now, risk_types,
                      department=warning.department, source_record_id=warning.source_record_id,
                      indicator=warning.indicator, amount=warning.amount, observed_at=warning.observed_at,
                      detail=warning.detail, over_threshold=warning.over_threshold)


_DEPARTMENT_ROLES = require("department_system", "department_liaison", kinds=("system", "staff"))


async def warning_sender(principal: Principal = Depends(_DEPARTMENT_ROLES)) -> Principal:
    """A department system or liaison, acting for exactly the one department its token names: a
    token without one could otherwise post any department's warnings."""
    if not principal.department:
        raise Problem(403, "Forbidden", "this token names no department; a department's token carries its "
                      "department (fangpin token --kind system --role department_system --department civil_affairs)",
                      code="department_missing_in_token", errors=[{"field": "department", "message": "the token has no department claim"}])
    return principal


async def ingest_warnings(uow: UnitOfWork, principal: Principal, rows: list[tuple[int, WarningIn | RowOutcome]],
                          together: bool = False) -> list[RowOutcome]:
    """Set-based ingestion of department warnings (部门筛查预警): a handful of queries per call,
    whatever the number of rows. A single POST is a batch of one. `together`: the clues go out in
    a few RiskCluesRaised events (batch uploads), not one RiskClueRaised each.

    A matched warning is judged against its household's region (domain.judge_warning): a clue, or
    `below_threshold` (stored, no clue). An unmatched one is stored as it came and judged when its
    person is registered (rematch_warnings): without a household there is no region whose
    threshold applies. A region and year the thresholds table lacks raise MissingRegionYearValue,
    and nothing of the call is stored."""
    vault = store.IdentityVault(uow.ctx.settings)
    thresholds = store.load_indicator_thresholds(uow.ctx.settings.indicator_thresholds)
    now = uow.ctx.clock.now()
    outcomes: dict[int, RowOutcome] = {}
    candidates: list[tuple[int, WarningIn]] = []
    seen: set[tuple[str, str]] = set()

    def outcome(line: int, row: WarningIn, kind: str, **facts) -> RowOutcome:
        return RowOutcome(line=line, outcome=kind, department=row.department, source_record_id=row.source_record_id,
                          **facts)

    for line, row in rows:
        if type(row) is RowOutcome:  # invalid already
            outcomes[line] = row
            continue
        key = (row.department, row.source_record_id)
        if principal.department and principal.department != row.department:
            outcomes[line] = outcome(line, row, "invalid", household_id=row.household_id, field="department",
                                     code="department_mismatch",
                                     reason=f"this token posts for {principal.department}, not {row.department}")
            continue
        if problem := domain.warning_problem(row.department, row.indicator, row.amount, row.over_threshold):
            field, code, reason = problem
            outcomes[line] = outcome(line, row, "invalid", household_id=row.household_id, field=field, code=code,
                                     reason=reason)
            continue
        if key in seen:
            outcomes[line] = outcome(line, row, "duplicate", code="warning_repeated_in_request",
                                     reason="repeated earlier in this request")
            continue
        seen.add(key)
        candidates.append((line, row))

    hashes = {line: vault.id_hash(row.id_number) for line, row in candidates if row.id_number and not row.household_id}
    by_person = await store.households_of_people(uow.session, list(set(hashes.values())))
    by_id = await store.households_by_id(uow.session, [row.household_id for _, row in candidates if row.household_id])

    def household_of(line: int, row: WarningIn) -> store.HouseholdRef | None:
        return by_id.get(row.household_id) if row.household_id else by_person.get(hashes[line])

    planned = []
    for line, row in candidates:
        household = household_of(line, row)
        judgement = domain.judge_warning(row.department, row.indicator, row.amount, row.over_threshold,
                                         household.region_code, row.observed_at.year, thresholds) if household else None
        status = "unmatched" if not household else "below_threshold" if judgement.below_threshold else "accepted"
        planned.append((line, row, household, judgement, status, new_id_str(),
                        new_id_str() if status == "accepted" else None))
    claimed = await store.claim_warnings(uow.session, [
        {"department": row.department, "source_record_id": row.source_record_id, "warning_id": warning_id,
         "status": status, "household_id": household.household_id if household else None,
         "id_hash": hashes.get(line), "clue_id": clue_id, "indicator": row.indicator, "amount": row.amount,
         "observed_at": row.observed_at, "detail": row.detail, "received_at": now,
         "over_threshold": row.over_threshold, "threshold": judgement.threshold if judgement else None}
        for line, row, household, judgement, status, warning_id, clue_id in planned
    ])
    duplicates = [(line, row) for line, row, *_ in planned if (row.department, row.source_record_id) not in claimed]
    earlier = await store.earlier_warnings(uow.session, [(r.department, r.source_record_id) for _, r in duplicates])
    for line, row in duplicates:
        before = earlier[(row.department, row.source_record_id)]
        outcomes[line] = outcome(line, row, "duplicate", warning_id=before.warning_id, clue_id=before.clue_id,
                                 household_id=before.household_id)

    new_streams, clues, clue_rows = [], [], []
    for line, row, household, judgement, status, warning_id, clue_id in planned:
        if (row.department, row.source_record_id) not in claimed:
            continue
        if status == "unmatched":
            new_streams.append((StreamHead(f"warning-{warning_id}"), [NewEvent(WarningUnmatched(
                warning_id=warning_id, department=row.department, source_record_id=row.source_record_id,
                indicator=row.indicator, observed_at=row.observed_at), occurred_at=row.observed_at)]))
            outcomes[line] = outcome(line, row, "unmatched", warning_id=warning_id)
        elif status == "below_threshold":
            code, reason = below_threshold_reason(row, judgement.threshold)
            outcomes[line] = outcome(line, row, "below_threshold", warning_id=warning_id,
                                     household_id=household.household_id, threshold=judgement.threshold,
                                     code=code, reason=reason)
        else:
            clue, clue_row = clue_of_warning(clue_id, household, now, list(judgement.risk_types), row)
            clues.append(clue)
            clue_rows.append(clue_row)
            outcomes[line] = outcome(line, row, "accepted", warning_id=warning_id, clue_id=clue_id,
                                     household_id=household.household_id)
    if together:
        new_streams.extend(clues_together(clues, uow.ctx.settings.kafka_partitions))
    else:
        new_streams.extend(clue_on_its_own(clue) for clue in clues)
    await uow.append_many(new_streams)
    await store.insert_clues(uow.session, clue_rows)
    return [outcomes[line] for line, _ in rows]


@router.post("/warnings", status_code=201, response_model=WarningOut)
async def post_warning(
    body: WarningIn,
    request: Request,
    principal: Principal = Depends(warning_sender),
    ctx: ServiceContext = Depends(get_context),
):
    [result] = await run_command(ctx, command_metadata(principal, request),
                                 lambda uow: ingest_warnings(uow, principal, [(1, body)]))
    if result.outcome == "invalid":
        if result.field == "department":
            raise Problem(403, "Forbidden", result.reason, code=result.code)
        raise field_error(result.field, result.reason, code=result.code)
    status = {"accepted": 201, "duplicate": 200, "unmatched": 202, "below_threshold": 200}[result.outcome]
    return JSONResponse(WarningOut.model_validate(asdict(result)).model_dump(mode="json"), status_code=status)


class BatchOutcome(BaseModel):
    rows: int = 0
    accepted: int = 0
    duplicate: int = 0
    unmatched: int = 0
    below_threshold: int = 0
    invalid: int = 0
    rejected: list[RowOutcome] = Field(default_factory=list, description=(
        "the invalid rows, with line, field, code and reason, and the row's department, source_record_id and "
        "household_id as far as it gave them"))
    below_threshold_rows: list[RowOutcome] = Field(default_factory=list, description=(
        "the rows under their indicator's threshold (stored, no clue raised), with line, department, "
        "source_record_id, household_id, the threshold the amount was held to, code and reason"))


BATCH_CHUNK_ROWS = 2000


EXAMPLE_WARNING = {
    "department": "civil_affairs", "source_record_id": "MZ-2026-000001", "id_number": "41072119800101001X",
    "indicator": "new_dibao", "observed_at": "2026-11-01T08:00:00+08:00", "detail": "new minimum-allowance case",
}


@router.post("/warnings:batch", response_model=BatchOutcome, openapi_extra=ndjson_body(WarningIn, EXAMPLE_WARNING))
async def post_warning_batch(
    request: Request,
    principal: Principal = Depends(warning_sender),
    ctx: ServiceContext = Depends(get_context),
):
    """NDJSON, one warning a line, up to a million lines; read as a stream and committed every
    BATCH_CHUNK_ROWS rows, so a cut-off upload keeps what was accepted and its retry adds nothing twice."""
    summary = BatchOutcome()

    async def ingest(uow: UnitOfWork, chunk):
        return await ingest_warnings(uow, principal, chunk, together=True)

    async for results in run_ndjson_batch(request, ctx, principal, WarningIn, ingest, BATCH_CHUNK_ROWS,
                                          lambda line, **why: RowOutcome(line=line, outcome="invalid", **why),
                                          identifiers=("department", "source_record_id", "household_id")):
        tally(summary, results, listed=(("invalid", "rejected"), ("below_threshold", "below_threshold_rows")))
    return summary



async def rematch_warnings(uow: UnitOfWork, people: dict[str, store.HouseholdRef], now: datetime) -> None:
    """Warnings kept as unmatched are judged once their person is registered, against the threshold
    of the household's region: a clue each, or below_threshold. A region and year the thresholds
    table lacks raise MissingRegionYearValue (the registration is refused until the row is added)."""
    waiting = await store.unmatched_warnings_of(uow.session, list(people))
    thresholds = store.load_indicator_thresholds(uow.ctx.settings.indicator_thresholds)
    streams, clue_rows, matched = [], [], []
    for w in waiting:
        household = people[w.id_hash]
        judgement = domain.judge_warning(w.department, w.indicator, w.amount, w.over_threshold,
                                         household.region_code, (w.observed_at or now).year, thresholds)
        clue_id = None
        if not judgement.below_threshold:
            clue_id = new_id_str()
            clue, clue_row = clue_of_warning(clue_id, household, now, list(judgement.risk_types), w)
            streams.append(clue_on_its_own(clue))
            clue_rows.append(clue_row)
        matched.append({"department": w.department, "source_record_id": w.source_record_id,
                        "status": "below_threshold" if judgement.below_threshold else "accepted",
                        "household_id": household.household_id, "clue_id": clue_id, "threshold": judgement.threshold})
    await uow.append_many(streams)
    await store.insert_clues(uow.session, clue_rows)
    await store.mark_matched(uow.session, matched)


class UnmatchedView(BaseModel):
    warning_id: str
    department: str
    source_record_id: str
    indicator: str
    observed_at: datetime | None
    received_at: datetime


class BelowThresholdView(UnmatchedView):
    household_id: str
    amount: Decimal | None
    threshold: Decimal | None = Field(description="what the amount was held to; none when the department judged it")
    over_threshold: bool | None = Field(description="the department's own judgement, when it sent one")


def _own_department(principal: Principal, department: str | None) -> str | None:
    """A department's token reads its own department's warnings only."""
    if principal.department:
        if department and department != principal.department:
            raise Problem(403, "Forbidden", f"this token reads {principal.department}'s warnings only",
                          code="department_mismatch")
        return principal.department
    return department


async def _warnings_page(ctx: ServiceContext, status: str, department: str | None, page: PageRequest, view):
    after = tuple(page.after.split("\x1f", 1)) if page.after else None
    if after is not None and len(after) != 2:
        raise field_error("cursor", "not a cursor this API gave out", code="cursor_invalid")
    async with ctx.sessions() as session:
        rows = await store.warnings_page(session, status, department, after, page.limit + 1)
    return make_page(rows, page, key=lambda r: f"{r.department}\x1f{r.source_record_id}",
                     item=lambda r: view.model_validate(r, from_attributes=True))


@router.get("/warnings/unmatched", response_model=Page[UnmatchedView])
async def list_unmatched(
    department: str | None = None,
    page: PageRequest = Depends(page_request),
    principal: Principal = Depends(require("department_system", "department_liaison", "county_officer",
                                           kinds=("system", "staff"))),
    ctx: ServiceContext = Depends(get_context),
):
    """Warnings about people the registry does not know, reported back to their department.
    A department system sees only its own."""
    return await _warnings_page(ctx, "unmatched", _own_department(principal, department), page, UnmatchedView)


@router.get("/warnings/below-threshold", response_model=Page[BelowThresholdView])
async def list_below_threshold(
    page: PageRequest = Depends(page_request),
    principal: Principal = Depends(warning_sender),
    ctx: ServiceContext = Depends(get_context),
):
    """Warnings under their indicator's threshold: kept, no clue raised, reported back to their
    department (the token's own)."""
    return await _warnings_page(ctx, "below_threshold", principal.department, page, BelowThresholdView)
