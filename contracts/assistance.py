"""Events published by assistance on `fangpin.assistance.events`: one household, one plan (一户一案),
its helper (帮扶责任人), its measures, its income records, and the gaps the plan rules find.

Every event is about one household: its stream is `plan-{household_id}` (a plan reopened after a
rollback keeps its history), so its events keep their order on the household's topic partition."""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

from contracts.base import EventPayload
from contracts.vocabulary import RiskType

MeasureNature = Literal["developmental", "safety_net"]  # 开发式 / 兜底
PlanGapKind = Literal["risk_unanswered", "allowance_only", "protected_without_safety_net", "no_first_measure",
                      "income_not_recorded"]


class _AssistanceEvent(EventPayload):
    producer = "assistance"


class PlanOpened(_AssistanceEvent):
    """screening identified the household as a monitoring subject: its plan opens (or reopens, with
    `reopened`, after an exit was rolled back or the household was identified again)."""

    household_id: str
    region_code: str
    case_id: str | None = None
    category: str | None = None
    risk_types: list[RiskType]
    identified_on: date
    reopened: bool = False


class PlanRiskAdded(_AssistanceEvent):
    """screening took a new risk of the subject (SubjectRiskAdded): the plan must answer it too."""

    household_id: str
    clue_id: str
    risk_types: list[RiskType]


class PlanClosed(_AssistanceEvent):
    """The subject was removed (清退) or its exit approved (风险消除): the plan closes; measures in
    progress stay recorded."""

    household_id: str
    reason: Literal["subject_removed", "exit_approved"]


class HelperAssigned(_AssistanceEvent):
    """A helper (帮扶责任人) for the household, chosen in its village (else township) with the fewest
    households; `over_limit` reports a helper past the limit (reported, not refused)."""

    household_id: str
    helper_id: str
    households_after: int
    over_limit: bool = False


class HelperNotFound(_AssistanceEvent):
    """No helper in the household's village or township: listed as unassigned, reported to the township."""

    household_id: str
    region_code: str


class HelperReassigned(_AssistanceEvent):
    household_id: str
    from_helper_id: str | None = None
    to_helper_id: str
    reason: str
    households_after: int
    over_limit: bool = False


class MeasureAssigned(_AssistanceEvent):
    """A measure (帮扶措施) of the catalogue on the household's plan."""

    measure_id: str
    household_id: str
    kind: str
    nature: MeasureNature
    answers: list[RiskType]
    department: str
    member_id: str | None = None  # the member it is for (pseudonymous, as intake names members), if one
    description: str = ""
    amount: Decimal | None = None
    quantity: int | None = None
    starts_on: date
    planned_end: date | None = None
    assigned_by: str


class MeasureProgressNoted(_AssistanceEvent):
    """A measure under way: what has been done so far."""

    measure_id: str
    household_id: str
    note: str


class MeasureCompleted(_AssistanceEvent):
    measure_id: str
    household_id: str
    completed_on: date
    delivered: str = ""
    confirmed_by: str
    source_record_id: str | None = None  # a department's own record, when it confirmed in bulk


class MeasureCancelled(_AssistanceEvent):
    measure_id: str
    household_id: str
    reason: str


class IncomeSource(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str  # wages, business, property, transfers, …
    amount: Decimal


class IncomeRecorded(_AssistanceEvent):
    """The household's income of a period (a quarter `2026-Q3` or a month `2026-07`): what exit
    review's look-back reads."""

    household_id: str
    period: str
    net_income_per_person: Decimal
    rigid_expenditure: Decimal = Decimal("0")
    sources: list[IncomeSource] = []
    recorded_by: str


class HelperVisitRecorded(_AssistanceEvent):
    """A helper's visit (走访) and what they found."""

    visit_id: str
    household_id: str
    helper_id: str
    visited_on: date
    findings: str = ""


class PlanGapFound(_AssistanceEvent):
    """A plan rule found a gap; `risk_type` names the risk a `risk_unanswered` gap is about."""

    household_id: str
    gap: PlanGapKind
    risk_type: RiskType | None = None
    detail: str


class PlanGapClosed(_AssistanceEvent):
    """A gap found before is mended."""

    household_id: str
    gap: PlanGapKind
    risk_type: RiskType | None = None
