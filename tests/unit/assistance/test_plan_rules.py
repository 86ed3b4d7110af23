"""assistance's pure decisions (issue 16): every plan rule, each gap found and closed when mended, the
catalogue as data, the choice of a helper."""
from datetime import date
from pathlib import Path

import pytest

from contracts.assistance import (
    IncomeRecorded, MeasureAssigned, MeasureCancelled, MeasureCompleted, PlanClosed, PlanGapClosed, PlanGapFound,
    PlanOpened,
)
from contracts.vocabulary import RiskType
from services.assistance.domain import Catalogue, CatalogueError, Helper, PlanRules, choose_helper, check_plan
from services.assistance.domain.plans import apply, last_complete_quarter, period_bounds, plan_from_history, plan_gaps

CATALOGUE = Catalogue.from_csv(Path(__file__).parents[3] / "services" / "assistance" / "data" / "measures.csv")
RULES = PlanRules(first_measure_days=30)
IDENTIFIED = date(2026, 7, 10)
VILLAGE = "410721001001"


def opened(*risks: RiskType) -> PlanOpened:
    return PlanOpened(household_id="H1", region_code=VILLAGE, risk_types=list(risks), identified_on=IDENTIFIED)


def measure(measure_id: str, kind: str) -> MeasureAssigned:
    k = CATALOGUE.get(kind)
    return MeasureAssigned(measure_id=measure_id, household_id="H1", kind=kind, nature=k.nature,
                           answers=sorted(k.answers), department=k.department, starts_on=IDENTIFIED, assigned_by="h-1")


def income(period: str) -> IncomeRecorded:
    return IncomeRecorded(household_id="H1", period=period, net_income_per_person="7000", recorded_by="h-1")


def kinds(plan, today) -> set:
    return {(gap.kind, gap.risk_type) for gap in plan_gaps(plan, today, RULES)}


def test_every_risk_must_be_answered_by_a_standing_measure():
    plan = plan_from_history([opened(RiskType.ILLNESS, RiskType.SCHOOLING), measure("m1", "medical_aid"), income("2026-Q3")])
    assert kinds(plan, date(2026, 7, 20)) == {("risk_unanswered", RiskType.SCHOOLING)}
    plan = apply(plan, MeasureCancelled(measure_id="m1", household_id="H1", reason="moved"))
    assert kinds(plan, date(2026, 7, 20)) == {("risk_unanswered", RiskType.ILLNESS), ("risk_unanswered", RiskType.SCHOOLING)}
    plan = apply(apply(plan, measure("m2", "medical_aid")), MeasureCompleted(
        measure_id="m2", household_id="H1", completed_on=date(2026, 7, 15), confirmed_by="nhsa"))
    assert ("risk_unanswered", RiskType.ILLNESS) not in kinds(plan, date(2026, 7, 20)), "a completed measure answers too"


def test_allowances_alone_are_a_gap_for_a_household_that_can_work():
    plan = plan_from_history([opened(RiskType.INCOME_DROP), measure("m1", "minimum_allowance")])
    from dataclasses import replace
    capable = replace(plan, labour_capable=True)
    assert ("allowance_only", None) in kinds(capable, date(2026, 7, 20))
    assert ("allowance_only", None) not in kinds(replace(plan, labour_capable=None), date(2026, 7, 20)), "not known: not judged"
    assert ("allowance_only", None) not in kinds(apply(capable, measure("m2", "employment")), date(2026, 7, 20))


def test_a_protected_household_needs_a_safety_net_measure():
    from dataclasses import replace
    plan = replace(plan_from_history([opened(RiskType.LACK_OF_LABOUR), measure("m1", "public_welfare_job")]), protected=True)
    assert ("protected_without_safety_net", None) in kinds(plan, date(2026, 7, 20))
    assert ("protected_without_safety_net", None) not in kinds(apply(plan, measure("m2", "minimum_allowance")), date(2026, 7, 20))


def test_the_first_measure_is_due_within_its_days_of_identification():
    plan = plan_from_history([opened(RiskType.ILLNESS)])
    assert ("no_first_measure", None) not in kinds(plan, date(2026, 8, 9))
    assert ("no_first_measure", None) in kinds(plan, date(2026, 8, 10))
    assert ("no_first_measure", None) not in kinds(apply(plan, measure("m1", "medical_aid")), date(2026, 8, 10))


def test_income_is_recorded_each_quarter():
    plan = plan_from_history([opened(RiskType.ILLNESS), measure("m1", "medical_aid")])
    assert ("income_not_recorded", None) not in kinds(plan, date(2026, 9, 30)), "identified in this quarter: not yet due"
    assert ("income_not_recorded", None) in kinds(plan, date(2026, 10, 1)), "Q3 ended without a record"
    assert ("income_not_recorded", None) not in kinds(apply(plan, income("2026-08")), date(2026, 10, 1)), "a month of Q3 counts"
    assert ("income_not_recorded", None) not in kinds(apply(plan, income("2026-Q3")), date(2026, 12, 31))
    assert ("income_not_recorded", None) in kinds(apply(plan, income("2026-Q3")), date(2027, 1, 1)), "Q4 is due then"


def test_a_gap_is_reported_once_and_closes_when_mended():
    plan = plan_from_history([opened(RiskType.ILLNESS, RiskType.HOUSING), income("2026-Q3")])
    first = check_plan(plan, date(2026, 7, 20), RULES)
    assert [(e.gap, e.risk_type) for e in first] == [("risk_unanswered", RiskType.ILLNESS), ("risk_unanswered", RiskType.HOUSING)]
    assert all(isinstance(e, PlanGapFound) and e.detail for e in first)
    plan = plan_from_history([opened(RiskType.ILLNESS, RiskType.HOUSING), income("2026-Q3"), *first])
    assert check_plan(plan, date(2026, 7, 20), RULES) == [], "found once, not again"
    plan = apply(plan, measure("m1", "housing_renovation"))
    assert check_plan(plan, date(2026, 7, 20), RULES) == [
        PlanGapClosed(household_id="H1", gap="risk_unanswered", risk_type=RiskType.HOUSING)]


def test_a_new_risk_reopens_the_check_and_a_closed_plan_has_no_gaps():
    plan = plan_from_history([opened(RiskType.ILLNESS), measure("m1", "medical_aid"), income("2026-Q3")])
    assert check_plan(plan, date(2026, 7, 20), RULES) == []
    again = apply(plan, PlanOpened(household_id="H1", region_code=VILLAGE, risk_types=[RiskType.ILLNESS, RiskType.WATER],
                                   identified_on=IDENTIFIED, reopened=True))
    assert [(e.gap, e.risk_type) for e in check_plan(again, date(2026, 7, 20), RULES)] == [("risk_unanswered", RiskType.WATER)]
    closed = apply(again, PlanClosed(household_id="H1", reason="exit_approved"))
    assert plan_gaps(closed, date(2027, 7, 20), RULES) == [] and closed.measures == again.measures, "history kept"


def test_periods_and_quarters():
    assert period_bounds("2026-Q4") == (date(2026, 10, 1), date(2026, 12, 31))
    assert period_bounds("2026-02") == (date(2026, 2, 1), date(2026, 2, 28))
    assert last_complete_quarter(date(2027, 1, 5)) == (date(2026, 10, 1), date(2026, 12, 31))


def test_a_helper_of_the_village_with_fewest_households_else_the_township():
    helpers = [Helper("h-b", VILLAGE, 3), Helper("h-a", VILLAGE, 3), Helper("h-t", "410721001", 0),
               Helper("h-o", "410721002001", 0)]
    assert choose_helper(helpers, VILLAGE, limit=10).helper.helper_id == "h-a", "fewest, then smallest id"
    assert choose_helper(helpers, "410721001009", limit=10).helper.helper_id == "h-t", "none in the village: the township's"
    assert choose_helper(helpers, "410721003001", limit=10).helper is None
    busy = choose_helper([Helper("h-1", VILLAGE, 10)], VILLAGE, limit=10)
    assert busy.helper.helper_id == "h-1" and busy.over_limit, "over the limit is reported, not refused"


def test_the_catalogue_is_data_and_a_bad_file_is_named(tmp_path):
    assert CATALOGUE.get("minimum_allowance").nature == "safety_net"
    assert RiskType.UNSTABLE_EMPLOYMENT in CATALOGUE.get("employment").answers
    bad = tmp_path / "measures.csv"
    bad.write_text("kind,name_zh,nature,answers,department\nx,某,charity,illness,civil_affairs\n", encoding="utf-8")
    with pytest.raises(CatalogueError, match="line 2: nature 'charity'"):
        Catalogue.from_csv(bad)
    bad.write_text("kind,name_zh,nature,answers,department\nx,某,safety_net,flu,civil_affairs\n", encoding="utf-8")
    with pytest.raises(CatalogueError, match="line 2"):
        Catalogue.from_csv(bad)
