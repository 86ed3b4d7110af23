"""Monitoring subjects (监测对象): removal 清退 and the protected mark 整户无劳动能力兜底保障户."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from runtime.auth import Staff, command_metadata, region_scope, require_region
from runtime.paging import Page, Paging, make_page
from runtime.problems import Problem
from runtime.service import Context
from services.screening import commands, store

router = APIRouter()


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


def subject_view(row) -> SubjectView:
    return SubjectView.model_validate(row, from_attributes=True)


@router.get("/subjects", response_model=Page[SubjectView])
async def list_subjects(region: str | None = None, status: str | None = None, *, page: Paging, principal: Staff,
                        ctx: Context):
    scope = region_scope(principal, region)
    async with ctx.sessions() as session:
        rows = await store.subject_page(session, scope, status, page.after, page.limit + 1)
    return make_page(rows, page, key=lambda r: r.household_id, item=subject_view)


@router.get("/subjects/{household_id}", response_model=SubjectView)
async def get_subject(household_id: str, principal: Staff, ctx: Context):
    async with ctx.sessions() as session:
        row = await store.subject_row(session, household_id)
    if row is None:
        raise Problem(404, "Not found", f"household {household_id} is not a monitoring subject", code="subject_not_found")
    require_region(principal, row.region_code)
    return subject_view(row)


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
                          principal: Staff, ctx: Context):
    """清退 of a wrongly identified subject, proposed by the township; the county decides."""
    return subject_view(await commands.propose_removal(ctx, principal, command_metadata(principal, request), household_id,
                                                       body.reason))


@router.post("/subjects/{household_id}/removal/decision", response_model=SubjectView)
async def decide_removal(household_id: str, body: RemovalDecisionIn, request: Request,
                         principal: Staff, ctx: Context):
    return subject_view(await commands.decide_removal(ctx, principal, command_metadata(principal, request), household_id,
                                                      body.decision, body.comment))


@router.post("/subjects/{household_id}/protection", response_model=SubjectView)
async def propose_protection(household_id: str, body: ProtectionIn, request: Request,
                             principal: Staff, ctx: Context):
    """The protected mark 整户无劳动能力兜底保障户, proposed by the village where no member can work;
    the township confirms."""
    return subject_view(await commands.propose_protection(ctx, principal, command_metadata(principal, request), household_id,
                                                          body.note))


@router.post("/subjects/{household_id}/protection/decision", response_model=SubjectView)
async def decide_protection(household_id: str, body: ProtectionDecisionIn, request: Request,
                            principal: Staff, ctx: Context):
    return subject_view(await commands.decide_protection(ctx, principal, command_metadata(principal, request), household_id,
                                                         body.decision, body.comment))
