"""Statistics of a region and period (seed 004: weekly and monthly bulletins; seed 001: the township
files by the 25th, the county reports by the 5th), computed from sums the store gives: pure.

Counts of subjects stand at the period's end (a sum of every change up to it); flows (identified,
risk-eliminated, rolled back, removed) are the changes inside the period; the plan figures (measures
per household, developmental share, policy coverage, households with gaps) are those of the subjects
monitored when asked, as plans stand then."""
from __future__ import annotations

import re
from calendar import monthrange
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from services.exit_review.domain.refusals import Invalid

CATEGORIES = ("unstable_formerly_poor", "marginal_at_risk", "sudden_hardship")  # 脱贫不稳定户、边缘易致贫户、突发严重困难户
FLOWS = ("identified", "risk_eliminated", "rolled_back", "removed")
REGION_LENGTHS = (2, 4, 6, 9, 12)  # province, city, county, township, village


@dataclass(frozen=True)
class Period:
    label: str  # 2026-10, 2026-Q4, 2026, 2026-W42
    start: date
    end: date


def parse_period(text: str, today: date) -> Period:
    """A month (2026-10), quarter (2026-Q4), year (2026) or ISO week (2026-W42) that exists and has
    begun; refused naming the field otherwise."""
    def refuse(code: str, why: str):
        raise Invalid(code, "period", why)

    if m := re.fullmatch(r"(\d{4})-(\d{2})", text):
        year, month = int(m[1]), int(m[2])
        if not 1 <= month <= 12:
            refuse("statistics_period_invalid", f"{text}: a month is 01 to 12")
        period = Period(text, date(year, month, 1), date(year, month, monthrange(year, month)[1]))
    elif m := re.fullmatch(r"(\d{4})-Q(\d)", text):
        year, quarter = int(m[1]), int(m[2])
        if not 1 <= quarter <= 4:
            refuse("statistics_period_invalid", f"{text}: a quarter is Q1 to Q4")
        last = quarter * 3
        period = Period(text, date(year, last - 2, 1), date(year, last, monthrange(year, last)[1]))
    elif m := re.fullmatch(r"(\d{4})", text):
        period = Period(text, date(int(m[1]), 1, 1), date(int(m[1]), 12, 31))
    elif m := re.fullmatch(r"(\d{4})-W(\d{2})", text):
        try:
            start = date.fromisocalendar(int(m[1]), int(m[2]), 1)
        except ValueError:
            refuse("statistics_period_invalid", f"{text}: {m[1]} has no ISO week {m[2]}")
        period = Period(text, start, start + timedelta(days=6))
    else:
        refuse("statistics_period_invalid", f"{text!r} is no period: a month 2026-10, a quarter 2026-Q4, a year 2026 "
               "or an ISO week 2026-W42")
    if period.start > today:
        refuse("statistics_period_in_future", f"{text} has not begun")
    return period


def child_length(region: str) -> int | None:
    """The length of the region codes one level below `region` (a county's townships), None below a village."""
    return next((n for n in REGION_LENGTHS if n > len(region)), None)


def _share(part: int, whole: int) -> Decimal | None:
    return None if not whole else (Decimal(part) / whole).quantize(Decimal("0.0001"), ROUND_HALF_UP)


@dataclass(frozen=True)
class Stock:
    monitored: int = 0
    risk_eliminated: int = 0
    protected: int = 0


@dataclass(frozen=True)
class PlanSums:
    households: int = 0  # monitored now
    measures: int = 0  # active or completed
    developmental: int = 0
    covered: int = 0  # monitored households with at least one measure
    with_gaps: int = 0


@dataclass
class Statistics:
    region: str
    period: Period
    monitored_by_category: dict[str, int]
    monitored: int
    risk_eliminated: int
    protected: int
    exit_rate: Decimal | None  # risk-eliminated among the standing subjects (monitored + risk-eliminated)
    flows: dict[str, int]
    measures_per_household: Decimal | None
    developmental_share: Decimal | None
    policy_coverage: Decimal | None
    households_with_gaps: int
    overdue_steps: dict[str, dict[str, int]]  # per ladder (identification, exit), per step
    average_days: dict[str, dict[str, Decimal]]  # per ladder, per step: of the steps left in the period
    by_region: list[dict] = field(default_factory=list)


def compose(region: str, period: Period, stock_by_category: dict[str | None, Stock], flows: dict[str, int],
            plans: PlanSums, overdue: dict[str, dict[str, int]], children: dict[str, Stock],
            step_days: dict[str, dict[str, tuple[int, int]]] | None = None) -> Statistics:
    """`step_days`: per ladder, per step, (total days, steps) of the steps left in the period."""
    monitored = sum(s.monitored for s in stock_by_category.values())
    eliminated = sum(s.risk_eliminated for s in stock_by_category.values())
    return Statistics(
        region=region, period=period,
        monitored_by_category={c: stock_by_category.get(c, Stock()).monitored for c in CATEGORIES},
        monitored=monitored, risk_eliminated=eliminated,
        protected=sum(s.protected for s in stock_by_category.values()),
        exit_rate=_share(eliminated, monitored + eliminated),
        flows={f: flows.get(f, 0) for f in FLOWS},
        measures_per_household=(Decimal(plans.measures) / plans.households).quantize(Decimal("0.01"), ROUND_HALF_UP)
        if plans.households else None,
        developmental_share=_share(plans.developmental, plans.measures),
        policy_coverage=_share(plans.covered, plans.households),
        households_with_gaps=plans.with_gaps,
        overdue_steps=overdue,
        average_days={ladder: {step: (Decimal(days) / steps).quantize(Decimal("0.1"), ROUND_HALF_UP)
                               for step, (days, steps) in by_step.items() if steps}
                      for ladder, by_step in (step_days or {"identification": {}, "exit": {}}).items()},
        by_region=[{"region": code, "monitored": s.monitored, "risk_eliminated": s.risk_eliminated,
                    "exit_rate": _share(s.risk_eliminated, s.monitored + s.risk_eliminated)}
                   for code, s in sorted(children.items())],
    )
