"""Department warnings (部门筛查预警): single, streamed batch, and the lists reported back to the
departments (unmatched, below their indicator's threshold)."""
from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from contracts.fields import Amount, FieldProblem, Moment, amount_problem, refusal
from runtime.auth import Principal, command_metadata
from runtime.ndjson import ndjson_body, run_ndjson_batch, tally
from runtime.paging import Page, PageRequest, Paging, make_page
from runtime.problems import Problem, field_error
from runtime.service import Context, ServiceContext, UnitOfWork, run_command
from services.intake import commands, domain, store
from services.intake.api.deps import WarningReader, WarningSender
from services.intake.api.fields import IdNumber
from services.intake.commands import RowOutcome

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


@router.post("/warnings", status_code=201, response_model=WarningOut)
async def post_warning(body: WarningIn, request: Request, principal: WarningSender, ctx: Context):
    [result] = await run_command(ctx, command_metadata(principal, request),
                                 lambda uow: commands.post_warnings(uow, principal, [(1, body)]))
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
async def post_warning_batch(request: Request, principal: WarningSender, ctx: Context):
    """NDJSON, one warning a line, up to a million lines; read as a stream and committed every
    BATCH_CHUNK_ROWS rows, so a cut-off upload keeps what was accepted and its retry adds nothing twice."""
    summary = BatchOutcome()

    async def ingest(uow: UnitOfWork, chunk):
        return await commands.post_warnings(uow, principal, chunk, together=True)

    async for results in run_ndjson_batch(request, ctx, principal, WarningIn, ingest, BATCH_CHUNK_ROWS,
                                          lambda line, **why: RowOutcome(line=line, outcome="invalid", **why),
                                          identifiers=("department", "source_record_id", "household_id")):
        tally(summary, results, listed=(("invalid", "rejected"), ("below_threshold", "below_threshold_rows")))
    return summary



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
    *,
    department: str | None = None,
    page: Paging,
    principal: WarningReader,
    ctx: Context,
):
    """Warnings about people the registry does not know, reported back to their department.
    A department system sees only its own."""
    return await _warnings_page(ctx, "unmatched", _own_department(principal, department), page, UnmatchedView)


@router.get("/warnings/below-threshold", response_model=Page[BelowThresholdView])
async def list_below_threshold(
    page: Paging,
    principal: WarningSender,
    ctx: Context,
):
    """Warnings under their indicator's threshold: kept, no clue raised, reported back to their
    department (the token's own)."""
    return await _warnings_page(ctx, "below_threshold", principal.department, page, BelowThresholdView)
