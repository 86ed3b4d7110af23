"""Measures (帮扶措施): their progress, and the catalogue they are chosen from."""
from __future__ import annotations

from datetime import date
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from runtime.auth import Department, Staff, StaffOrSystem, command_metadata
from runtime.ndjson import ndjson_body, run_ndjson_batch, tally
from runtime.service import Context, UnitOfWork, run_command
from services.assistance import commands, reference
from services.assistance.commands import ConfirmationRow
from services.assistance.api.plans import readable_plan
from services.assistance.api.views import PlanView

router = APIRouter()


class ProgressIn(BaseModel):
    status: Literal["in_progress", "completed", "cancelled"]
    note: str = Field("", max_length=4000, description="what was done, what was delivered, or why it was cancelled")
    completed_on: date | None = Field(None, description="completed: the day (default today)")


@router.post("/measures/{measure_id}/progress", response_model=PlanView)
async def record_progress(measure_id: str, body: ProgressIn, request: Request, principal: Staff, ctx: Context):
    household_id = await run_command(ctx, command_metadata(principal, request), lambda uow: commands.record_progress(
        uow, principal, measure_id, body.status, body.note, body.completed_on))
    return await readable_plan(ctx, principal, household_id)


class MeasureKindView(BaseModel):
    kind: str
    name_zh: str
    nature: str
    answers: list[str]
    department: str


@router.get("/measures/catalogue", response_model=list[MeasureKindView])
async def catalogue(principal: StaffOrSystem, ctx: Context):
    """The measures a plan is made of (data/measures.csv, or the deployment's FANGPIN_MEASURES_CATALOGUE)."""
    kinds = reference.measures_catalogue(ctx.settings.measures_catalogue).kinds.values()
    return [MeasureKindView(kind=k.kind, name_zh=k.name_zh, nature=k.nature, answers=sorted(k.answers),
                            department=k.department) for k in kinds]


CONFIRMATION_CHUNK_ROWS = 1000


class ConfirmationIn(BaseModel):
    measure_id: str = Field(min_length=1, max_length=200)
    completed_on: date
    delivered: str = Field("", max_length=2000, description="what was delivered")
    source_record_id: str | None = Field(None, max_length=128, description="the department's own record")


class ConfirmationOutcome(BaseModel):
    rows: int = 0
    completed: int = 0
    duplicate: int = 0
    invalid: int = 0
    rejected: list[ConfirmationRow] = Field(default_factory=list, description=(
        "the invalid rows, with line, field, code and reason, and the row's measure_id and source_record_id"))


EXAMPLE_CONFIRMATION = {"measure_id": "01a2…", "completed_on": "2026-11-20", "delivered": "低保 granted from December",
                        "source_record_id": "MCA-2026-11-0001"}


@router.post("/measures/completions:batch", response_model=ConfirmationOutcome,
             openapi_extra=ndjson_body(ConfirmationIn, EXAMPLE_CONFIRMATION))
async def confirm_deliveries(request: Request, principal: Department, ctx: Context):
    """NDJSON, one delivered measure a line, from the department responsible for it: each completes its
    measure once (`completed`); a measure completed already is a `duplicate`; the others are `invalid`,
    naming the field and the rule. Committed every CONFIRMATION_CHUNK_ROWS rows."""
    summary = ConfirmationOutcome()

    async def ingest(uow: UnitOfWork, chunk):
        return await commands.confirm_deliveries(uow, principal, chunk)

    async for results in run_ndjson_batch(request, ctx, principal, ConfirmationIn, ingest, CONFIRMATION_CHUNK_ROWS,
                                          lambda line, **why: ConfirmationRow(line=line, outcome="invalid", **why),
                                          identifiers=("measure_id", "source_record_id")):
        tally(summary, results)
    return summary
