"""After an exit (issue 17): the look-back falls due once, months after the approval; it flags an
income below the line or a risk raised since; a rollback is requested by the township and decided by
the county, and never for a household without an approved exit. Pure."""
from datetime import date
from decimal import Decimal

import pytest

from services.exit_review.domain import after_exit
from services.exit_review.domain.after_exit import Exited
from services.exit_review.domain.blockers import ExitRules
from services.exit_review.domain.evidence import Difficulty, Evidence, Income, Visit
from services.exit_review.domain.ladder import Actor
from services.exit_review.domain.refusals import Invalid, NotAllowed, OutOfOrder

APPROVED = Exited("x1", "H1", "410721001001", date(2026, 5, 31))
TOWNSHIP, COUNTY, CADRE = Actor("t", "township_officer"), Actor("c", "county_officer"), Actor("v", "village_cadre")
RULES = ExitRules()
LOOK_BACK_DAY = date(2026, 12, 2)  # window 2026-06 … 2026-11


def line_of(region, year):
    return Decimal("8000")


def evidence(**changes) -> Evidence:
    months = ("2026-06", "2026-07", "2026-08", "2026-09", "2026-10", "2026-11")
    base = dict(household_id="H1", region_code="410721001001", plan_known=True,
                incomes=tuple(Income(m, Decimal("900"), f"i-{m}") for m in months),
                visits=tuple(Visit("grid_visit", date(2026, int(m[5:]), 10), f"v-{m}") for m in months))
    return Evidence(**{**base, **changes})


def test_the_look_back_falls_due_once_months_after_the_approval():
    assert after_exit.look_back_due_on(APPROVED, 6) == date(2026, 11, 30)  # the 31st in a 30-day month
    assert after_exit.due_look_back(APPROVED, date(2026, 11, 29), 6) == []
    [due] = after_exit.due_look_back(APPROVED, date(2026, 12, 3), 6)
    assert (due.exit_id, due.due_on) == ("x1", date(2026, 11, 30))
    marked = after_exit.apply(APPROVED, due, date(2026, 12, 3), "")
    assert after_exit.due_look_back(marked, date(2026, 12, 9), 6) == [], "once"
    assert after_exit.due_look_back(None, date(2026, 12, 9), 6) == []


def test_a_look_back_flags_a_new_risk_or_an_income_below_the_line():
    due = after_exit.apply(APPROVED, after_exit.due_look_back(APPROVED, LOOK_BACK_DAY, 6)[0], LOOK_BACK_DAY, "")
    [clean] = after_exit.complete_look_back(due, "x1", evidence(), TOWNSHIP, LOOK_BACK_DAY, RULES, line_of, "visited")
    assert not clean.flagged and clean.flags == [] and [v.blocker for v in clean.verdicts] == [
        "income_not_stable", "measures_not_carried_out", "sudden_difficulty_unresolved", "monitoring_lapsed"]
    new_risk = Difficulty("clue", "clue-9", ("illness",), date(2026, 9, 1), "ev-9")
    old_risk = Difficulty("clue", "clue-1", ("illness",), date(2026, 5, 1), "ev-1")
    [risky] = after_exit.complete_look_back(due, "x1", evidence(difficulties=(old_risk, new_risk)), TOWNSHIP,
                                            LOOK_BACK_DAY, RULES, line_of, "")
    assert risky.flagged and [f.ref for f in risky.flags] == ["ev-9"]
    low = evidence(incomes=(*evidence().incomes[:5], Income("2026-11", Decimal("600"), "i-low")))
    [poor] = after_exit.complete_look_back(due, "x1", low, COUNTY, LOOK_BACK_DAY, RULES, line_of, "")
    assert poor.flagged and [(f.ref, f.amount) for f in poor.flags] == [("i-low", Decimal("600"))]


def test_a_look_back_is_taken_once_when_due_by_the_township_or_county():
    with pytest.raises(OutOfOrder) as early:
        after_exit.complete_look_back(APPROVED, "x1", evidence(), TOWNSHIP, LOOK_BACK_DAY, RULES, line_of, "")
    assert early.value.code == "look_back_not_due" and "2026-11-30" in str(early.value)
    due = after_exit.apply(APPROVED, after_exit.due_look_back(APPROVED, LOOK_BACK_DAY, 6)[0], LOOK_BACK_DAY, "")
    with pytest.raises(NotAllowed):
        after_exit.complete_look_back(due, "x1", evidence(), CADRE, LOOK_BACK_DAY, RULES, line_of, "")
    done = after_exit.apply(due, after_exit.complete_look_back(due, "x1", evidence(), TOWNSHIP, LOOK_BACK_DAY, RULES,
                                                               line_of, "")[0], LOOK_BACK_DAY, "")
    with pytest.raises(OutOfOrder) as twice:
        after_exit.complete_look_back(done, "x1", evidence(), TOWNSHIP, LOOK_BACK_DAY, RULES, line_of, "")
    assert twice.value.code == "look_back_already_done"


def test_a_rollback_is_requested_by_the_township_and_decided_by_the_county():
    with pytest.raises(Invalid) as never:
        after_exit.request_rollback(None, "H9", "income fell", TOWNSHIP)
    assert never.value.code == "exit_never_approved" and never.value.details["errors"][0]["field"] == "household_id"
    with pytest.raises(NotAllowed):
        after_exit.request_rollback(APPROVED, "H1", "income fell", CADRE)
    with pytest.raises(Invalid):
        after_exit.request_rollback(APPROVED, "H1", " ", TOWNSHIP)
    with pytest.raises(OutOfOrder) as nothing:
        after_exit.decide_rollback(APPROVED, "H1", "approve", "", COUNTY)
    assert nothing.value.code == "no_rollback_pending"
    [requested] = after_exit.request_rollback(APPROVED, "H1", "income fell after the factory closed", TOWNSHIP)
    pending = after_exit.apply(APPROVED, requested, LOOK_BACK_DAY, "")
    with pytest.raises(OutOfOrder):
        after_exit.request_rollback(pending, "H1", "again", TOWNSHIP)
    with pytest.raises(NotAllowed):
        after_exit.decide_rollback(pending, "H1", "approve", "", TOWNSHIP)
    [refused] = after_exit.decide_rollback(pending, "H1", "refuse", "income recovered in December", COUNTY)
    assert refused.event_type == "ExitRollbackRefused"
    [rolled] = after_exit.decide_rollback(pending, "H1", "approve", "agreed", COUNTY)
    assert (rolled.event_type, rolled.reason, rolled.comment) == (
        "ExitRolledBack", "income fell after the factory closed", "agreed")
    gone = after_exit.apply(pending, rolled, LOOK_BACK_DAY, "")
    with pytest.raises(Invalid):
        after_exit.request_rollback(gone, "H1", "again", TOWNSHIP)
    assert after_exit.due_look_back(gone, date(2027, 6, 1), 6) == [], "no look-back after a rollback"
