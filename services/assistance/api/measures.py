"""Measures (帮扶措施): their progress, and the catalogue they are chosen from."""
from __future__ import annotations

from datetime import date
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from runtime.auth import Staff, StaffOrSystem, command_metadata
from runtime.service import Context, run_command
from services.assistance import commands, reference
from services.assistance.api.plans import _readable_plan
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
    return await _readable_plan(ctx, principal, household_id)


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
