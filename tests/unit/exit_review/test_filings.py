"""Monthly filings (issue 17, seed 001): a township by the 25th, a county by the 5th of the next
month; once; late ones marked; overdue reported once. Pure."""
from datetime import date

import pytest

from services.exit_review.domain import filings
from services.exit_review.domain.refusals import Invalid, NotAllowed, OutOfOrder
from services.exit_review.domain.statistics import parse_period

OCTOBER, DECEMBER = parse_period("2026-10", date(2026, 11, 20)), parse_period("2026-12", date(2026, 12, 3))


def test_due_dates():
    assert filings.due_on("township", OCTOBER) == date(2026, 10, 25)
    assert filings.due_on("county", OCTOBER) == date(2026, 11, 5)
    assert filings.due_on("county", DECEMBER) == date(2027, 1, 5)


def test_a_filing_is_made_once_by_its_own_level_and_marked_late_after_its_day():
    [on_time] = filings.file("township_officer", "410721001", OCTOBER, False, date(2026, 10, 25), {"monitored": 3})
    assert (on_time.level, on_time.late, on_time.due_on, on_time.figures) == ("township", False, date(2026, 10, 25),
                                                                            {"monitored": 3})
    [late] = filings.file("county_officer", "410721", OCTOBER, False, date(2026, 11, 6), {})
    assert (late.level, late.late) == ("county", True)
    with pytest.raises(OutOfOrder) as twice:
        filings.file("township_officer", "410721001", OCTOBER, True, date(2026, 10, 20), {})
    assert twice.value.code == "statistics_already_filed"
    with pytest.raises(NotAllowed):
        filings.file("village_cadre", "410721001001", OCTOBER, False, date(2026, 10, 20), {})
    with pytest.raises(Invalid) as level:
        filings.file("county_officer", "410721001", OCTOBER, False, date(2026, 10, 20), {})
    assert level.value.code == "filing_region_not_own_level"
    with pytest.raises(Invalid) as quarter:
        filings.file("county_officer", "410721", parse_period("2026-Q3", date(2026, 11, 1)), False, date(2026, 11, 1), {})
    assert quarter.value.code == "statistics_period_invalid"


def test_overdue_once_after_the_due_date_for_those_not_filed():
    regions = ["410721001", "410721002", "410721003"]
    assert filings.overdue("township", regions, OCTOBER, set(), set(), date(2026, 10, 25)) == []
    late = filings.overdue("township", regions, OCTOBER, {"410721001"}, {"410721003"}, date(2026, 10, 26))
    assert [(e.region_code, e.due_on) for e in late] == [("410721002", date(2026, 10, 25))]
