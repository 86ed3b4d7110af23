"""Statistics (issue 17): the periods a bulletin is for, and the figures composed from the store's
sums, rates rounded, a region without subjects giving no rate rather than a division by zero. Pure."""
from datetime import date
from decimal import Decimal

import pytest

from services.exit_review.domain.refusals import Invalid
from services.exit_review.domain.statistics import PlanSums, Stock, child_length, compose, parse_period

TODAY = date(2026, 11, 20)


@pytest.mark.parametrize("text, start, end", [
    ("2026-10", date(2026, 10, 1), date(2026, 10, 31)),
    ("2024-02", date(2024, 2, 1), date(2024, 2, 29)),
    ("2026-Q3", date(2026, 7, 1), date(2026, 9, 30)),
    ("2025", date(2025, 1, 1), date(2025, 12, 31)),
    ("2026-W47", date(2026, 11, 16), date(2026, 11, 22)),
    ("2026-11", date(2026, 11, 1), date(2026, 11, 30)),  # begun: the month so far counts
])
def test_a_period_is_a_month_quarter_year_or_iso_week(text, start, end):
    period = parse_period(text, TODAY)
    assert (period.label, period.start, period.end) == (text, start, end)


@pytest.mark.parametrize("text, code", [
    ("2026-13", "statistics_period_invalid"), ("2026-Q5", "statistics_period_invalid"),
    ("2026-W54", "statistics_period_invalid"), ("October", "statistics_period_invalid"),
    ("2026-12", "statistics_period_in_future"), ("2027", "statistics_period_in_future"),
])
def test_a_period_that_does_not_exist_or_has_not_begun_is_refused(text, code):
    with pytest.raises(Invalid) as refused:
        parse_period(text, TODAY)
    assert refused.value.code == code and refused.value.details["errors"][0]["field"] == "period"


def test_the_level_below_a_region():
    assert [child_length(r) for r in ("41", "4107", "410721", "410721001", "410721001001")] == [4, 6, 9, 12, None]


def test_figures_from_sums():
    period = parse_period("2026-10", TODAY)
    found = compose("410721", period,
                    {"marginal_at_risk": Stock(3, 1, 1), "sudden_hardship": Stock(1, 2, 0)},
                    {"identified": 2, "risk_eliminated": 1},
                    PlanSums(households=4, measures=10, developmental=4, covered=3, with_gaps=1),
                    {"identification": {"county_decision": 1}, "exit": {}},
                    {"410721001": Stock(4, 1, 1), "410721002": Stock(0, 2, 0)})
    assert found.monitored_by_category == {"unstable_formerly_poor": 0, "marginal_at_risk": 3, "sudden_hardship": 1}
    assert (found.monitored, found.risk_eliminated, found.protected) == (4, 3, 1)
    assert found.exit_rate == Decimal("0.4286")  # 3 of 7
    assert found.flows == {"identified": 2, "risk_eliminated": 1, "rolled_back": 0, "removed": 0}
    assert (found.measures_per_household, found.developmental_share, found.policy_coverage) == (
        Decimal("2.50"), Decimal("0.4000"), Decimal("0.7500"))
    assert [(r["region"], r["exit_rate"]) for r in found.by_region] == [("410721001", Decimal("0.2000")),
                                                                        ("410721002", Decimal("1.0000"))]
    empty = compose("410722", period, {}, {}, PlanSums(), {"identification": {}, "exit": {}}, {})
    assert (empty.exit_rate, empty.measures_per_household, empty.policy_coverage) == (None, None, None)
