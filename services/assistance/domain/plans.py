"""One household, one plan (一户一案): its state folded from its events, and the plan rules, each
returning every gap it finds. A gap found is a PlanGapFound; a gap mended closes itself (PlanGapClosed).

The rules (seeds 000, 003):
- every risk type of the subject is answered by at least one active or completed measure;
- a household that can work has a developmental measure (开发式): allowances alone (一兜了之) are a gap;
- a protected household (整户无劳动能力) has a safety-net measure (兜底);
- the first measure is set within `first_measure_days` of identification;
- income is recorded at least each quarter (the last complete quarter, once the subject was
  identified before it ended).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta

from contracts.assistance import (
    HelperAssigned, HelperReassigned, IncomeRecorded, MeasureAssigned, MeasureCancelled, MeasureCompleted, PlanClosed,
    PlanGapClosed, PlanGapFound, PlanOpened, PlanRiskAdded,
)
from contracts.base import EventPayload
from contracts.vocabulary import RiskType

ACTIVE, COMPLETED, CANCELLED = "active", "completed", "cancelled"
GapKey = tuple[str, RiskType | None]


@dataclass(frozen=True)
class Measure:
    measure_id: str
    kind: str
    nature: str  # developmental | safety_net
    answers: frozenset[RiskType]
    status: str = ACTIVE


@dataclass(frozen=True)
class PlanState:
    household_id: str
    region_code: str
    risk_types: tuple[RiskType, ...]
    identified_on: date
    open: bool = True
    helper_id: str | None = None
    labour_capable: bool | None = None  # None: not known, the developmental rule waits for it
    protected: bool = False
    measures: tuple[Measure, ...] = ()
    income_periods: frozenset[str] = frozenset()
    open_gaps: frozenset[GapKey] = frozenset()
    closed_reason: str | None = None  # subject_removed, exit_approved


@dataclass(frozen=True)
class PlanRules:
    first_measure_days: int = 30


@dataclass(frozen=True)
class Gap:
    kind: str
    risk_type: RiskType | None
    detail: str

    @property
    def key(self) -> GapKey:
        return self.kind, self.risk_type


def period_bounds(period: str) -> tuple[date, date]:
    """The first and last day of a period: a quarter `2026-Q3` or a month `2026-07`."""
    year, part = period.split("-")
    if part.startswith("Q"):
        first_month = 3 * (int(part[1:]) - 1) + 1
        start, months = date(int(year), first_month, 1), 3
    else:
        start, months = date(int(year), int(part), 1), 1
    month = start.month - 1 + months
    return start, date(start.year + month // 12, month % 12 + 1, 1) - timedelta(days=1)


def last_complete_quarter(today: date) -> tuple[date, date]:
    quarter_start = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    previous_end = quarter_start - timedelta(days=1)
    return date(previous_end.year, 3 * ((previous_end.month - 1) // 3) + 1, 1), previous_end


def plan_gaps(plan: PlanState, today: date, rules: PlanRules) -> list[Gap]:
    """Every gap of an open plan, in a stable order."""
    if not plan.open:
        return []
    standing = [m for m in plan.measures if m.status != CANCELLED]
    gaps: list[Gap] = []
    answered = set().union(*(m.answers for m in standing)) if standing else set()
    for risk in plan.risk_types:
        if risk not in answered:
            gaps.append(Gap("risk_unanswered", risk, f"no active or completed measure answers {risk.value}"))
    if plan.labour_capable and not any(m.nature == "developmental" for m in standing):
        gaps.append(Gap("allowance_only", None, "a member can work, but the plan has no developmental measure "
                                                "(一兜了之: allowances alone)"))
    if plan.protected and not any(m.nature == "safety_net" for m in standing):
        gaps.append(Gap("protected_without_safety_net", None, "no member can work, but the plan has no safety-net measure"))
    if not standing and today > plan.identified_on + timedelta(days=rules.first_measure_days):
        gaps.append(Gap("no_first_measure", None, f"no measure {rules.first_measure_days} days after identification "
                                                  f"on {plan.identified_on}"))
    quarter_start, quarter_end = last_complete_quarter(today)
    if plan.identified_on <= quarter_end and not any(period_bounds(p)[1] >= quarter_start for p in plan.income_periods):
        gaps.append(Gap("income_not_recorded", None, f"no income recorded for the quarter {quarter_start} to {quarter_end}"))
    return gaps


def check_plan(plan: PlanState, today: date, rules: PlanRules) -> list[EventPayload]:
    """The gaps newly found and those mended since the plan's last check."""
    found = plan_gaps(plan, today, rules)
    keys = {gap.key for gap in found}
    events: list[EventPayload] = [
        PlanGapFound(household_id=plan.household_id, gap=gap.kind, risk_type=gap.risk_type, detail=gap.detail)
        for gap in found if gap.key not in plan.open_gaps]
    events += [PlanGapClosed(household_id=plan.household_id, gap=kind, risk_type=risk)
               for kind, risk in sorted(plan.open_gaps - keys, key=lambda key: (key[0], key[1] or ""))]
    return events


def apply(plan: PlanState | None, event: EventPayload) -> PlanState | None:
    """The plan after one of its events (None before it opened)."""
    match event:
        case PlanOpened():
            if plan is None:
                return PlanState(event.household_id, event.region_code, tuple(event.risk_types), event.identified_on)
            return replace(plan, open=True, region_code=event.region_code, risk_types=tuple(event.risk_types),
                           identified_on=event.identified_on, closed_reason=None)
        case PlanRiskAdded():
            return replace(plan, risk_types=tuple(dict.fromkeys([*plan.risk_types, *event.risk_types])))
        case PlanClosed():
            return replace(plan, open=False, closed_reason=event.reason)
        case HelperAssigned():
            return replace(plan, helper_id=event.helper_id)
        case HelperReassigned():
            return replace(plan, helper_id=event.to_helper_id)
        case MeasureAssigned():
            measure = Measure(event.measure_id, event.kind, event.nature, frozenset(event.answers))
            return replace(plan, measures=(*plan.measures, measure))
        case MeasureCompleted():
            return _measure(plan, event.measure_id, COMPLETED)
        case MeasureCancelled():
            return _measure(plan, event.measure_id, CANCELLED)
        case IncomeRecorded():
            return replace(plan, income_periods=plan.income_periods | {event.period})
        case PlanGapFound():
            return replace(plan, open_gaps=plan.open_gaps | {(event.gap, event.risk_type)})
        case PlanGapClosed():
            return replace(plan, open_gaps=plan.open_gaps - {(event.gap, event.risk_type)})
    return plan


def _measure(plan: PlanState, measure_id: str, status: str) -> PlanState:
    return replace(plan, measures=tuple(replace(m, status=status) if m.measure_id == measure_id else m
                                        for m in plan.measures))


def plan_from_history(history: list[EventPayload]) -> PlanState | None:
    plan = None
    for event in history:
        plan = apply(plan, event)
    return plan
