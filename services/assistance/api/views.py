"""What assistance answers: a plan with its helper, measures, gaps and incomes."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from services.assistance import store


class MeasureView(BaseModel):
    measure_id: str
    kind: str
    nature: str = Field(description="developmental (开发式) or safety_net (兜底)")
    answers: list[str]
    department: str
    member_id: str | None
    description: str | None
    amount: Decimal | None
    quantity: int | None
    starts_on: date
    planned_end: date | None
    status: str = Field(description="active, completed or cancelled")
    note: str | None = Field(description="the last progress note, what was delivered, or why it was cancelled")
    completed_on: date | None
    confirmed_by: str | None
    assigned_by: str


class GapView(BaseModel):
    gap: str
    risk_type: str | None
    detail: str
    found_at: datetime


class IncomeView(BaseModel):
    period: str
    net_income_per_person: Decimal
    rigid_expenditure: Decimal
    sources: list[dict[str, Any]]
    recorded_by: str


class VisitView(BaseModel):
    visit_id: str
    helper_id: str
    visited_on: date
    findings: str


class PlanSummary(BaseModel):
    household_id: str
    region_code: str
    status: str = Field(description="open or closed")
    risk_types: list[str]
    identified_on: date
    helper_id: str | None
    unassigned: bool = Field(description="no helper in the village or township when one was looked for")
    closed_reason: str | None


class PlanView(PlanSummary):
    case_id: str | None
    category: str | None
    measures: list[MeasureView]
    gaps: list[GapView]
    incomes: list[IncomeView]
    visits: list[VisitView]


def summary(row) -> PlanSummary:
    return PlanSummary.model_validate(row, from_attributes=True)


async def plan_view(session, row) -> PlanView:
    household_id = row.household_id
    return PlanView(
        **summary(row).model_dump(), case_id=row.case_id, category=row.category,
        measures=[MeasureView.model_validate(m, from_attributes=True) for m in await store.measures_of(session, household_id)],
        gaps=[GapView(gap=g.gap, risk_type=g.risk_type or None, detail=g.detail, found_at=g.found_at)
              for g in await store.gaps_of(session, household_id)],
        incomes=[IncomeView.model_validate(i, from_attributes=True) for i in await store.incomes_of(session, household_id)],
        visits=[VisitView.model_validate(v, from_attributes=True) for v in await store.visits_of(session, household_id)])
