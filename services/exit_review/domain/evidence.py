"""What an exit is judged on: the facts exit_review keeps from the other services' events (subjects
from screening; plans, measures, gaps, incomes and helper visits from assistance; clues, members and
grid visits from intake) and the exit case's own record. Plain values, so the rules stay pure."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal


@dataclass(frozen=True)
class Income:
    """A period's net income per person (of that period: a month's or a quarter's)."""

    period: str  # 2026-07 or 2026-Q3
    amount: Decimal
    event_id: str


@dataclass(frozen=True)
class Measure:
    measure_id: str
    kind: str
    answers: tuple[str, ...]
    status: str  # active, completed, cancelled
    starts_on: date
    planned_end: date | None = None
    completed_on: date | None = None


@dataclass(frozen=True)
class OpenGap:
    gap: str
    risk_type: str | None
    found_on: date
    event_id: str


@dataclass(frozen=True)
class Difficulty:
    """A risk raised about the household: a clue (intake) or a new risk of the subject (screening)."""

    kind: str  # clue, risk_added
    ref: str  # the clue id
    risk_types: tuple[str, ...]
    raised_on: date
    event_id: str


@dataclass(frozen=True)
class Visit:
    kind: str  # helper_visit, grid_visit
    on: date
    event_id: str


@dataclass(frozen=True)
class Evidence:
    household_id: str
    region_code: str
    plan_known: bool = False  # assistance has opened a plan for the household
    incomes: tuple[Income, ...] = ()
    measures: tuple[Measure, ...] = ()
    open_gaps: tuple[OpenGap, ...] = ()
    difficulties: tuple[Difficulty, ...] = ()
    visits: tuple[Visit, ...] = ()


@dataclass(frozen=True)
class Findings:
    """The village's visit before proposing the exit."""

    visited_on: date
    per_capita_net_income: Decimal
    education_ok: bool
    medical_ok: bool
    housing_safe: bool
    water_safe: bool
    satisfaction: str  # satisfied, basically_satisfied, dissatisfied


@dataclass(frozen=True)
class Consent:
    party: str
    given: bool
    by: str
    recorded_on: date
    event_id: str


@dataclass(frozen=True)
class CaseRecord:
    """The exit case as the procedure blocker reads it."""

    proposed_on: date
    attendees: int
    findings: Findings | None
    consents: dict[str, Consent] = field(default_factory=dict)  # party -> its consent
