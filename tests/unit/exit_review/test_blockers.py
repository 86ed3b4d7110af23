"""The seven blockers 七不消 (issue 17): each answers pass, fail and unknown on the evidence, naming
the facts it used or what is missing. Pure: no store, no broker."""
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from services.exit_review.domain.blockers import (
    RULE_VERSION, ExitRules, assess, guarantees_unresolved, household_consent_insufficient, income_not_stable,
    look_back, measures_not_carried_out, monitoring_lapsed, procedure_irregular, sudden_difficulty_unresolved,
)
from services.exit_review.domain.evidence import (
    CaseRecord, Consent, Difficulty, Evidence, Findings, Income, Measure, OpenGap, Visit,
)

TODAY = date(2026, 11, 20)
WINDOW = look_back(TODAY, 6)  # 2026-05 … 2026-10
RULES = ExitRules()
REGION = "410721001001"


def line_of(region: str, year: int) -> Decimal | None:
    return {2026: Decimal("8400")}.get(year)  # 700 a month, 2,100 a quarter


def sound_evidence(**changes) -> Evidence:
    """A household that may exit: monthly incomes above the line, a visit each month, its measures done."""
    months = WINDOW.months
    evidence = Evidence(
        household_id="H1", region_code=REGION, plan_known=True,
        incomes=tuple(Income(m, Decimal("900"), f"inc-{m}") for m in months),
        measures=(Measure("m1", "employment", ("unstable_employment", "income_drop"), "completed", date(2026, 3, 1),
                          date(2026, 6, 30), date(2026, 6, 20)),
                  Measure("m2", "industry", ("income_drop",), "active", date(2026, 4, 1), date(2027, 3, 31))),
        difficulties=(Difficulty("clue", "clue-1", ("unstable_employment",), date(2026, 5, 10), "ev-clue-1"),),
        visits=tuple(Visit("helper_visit", date(int(m[:4]), int(m[5:]), 15), f"visit-{m}") for m in months),
    )
    return replace(evidence, **changes)


def sound_case(**changes) -> CaseRecord:
    findings = Findings(date(2026, 11, 10), Decimal("9800"), True, True, True, True, "satisfied")
    consents = {p: Consent(p, True, f"{p}-person", date(2026, 11, 12), f"ev-{p}")
                for p in ("household", "helper", "work_team", "village_committee")}
    return replace(CaseRecord(date(2026, 11, 11), 14, findings, consents), **changes)


def test_the_window_is_the_six_complete_months_before_the_assessment():
    assert WINDOW.months == ("2026-05", "2026-06", "2026-07", "2026-08", "2026-09", "2026-10")
    assert (WINDOW.start, WINDOW.end) == (date(2026, 5, 1), date(2026, 10, 31))
    january = look_back(date(2027, 1, 3), 6)
    assert january.months[0] == "2026-07" and january.months[-1] == "2026-12"


def test_a_sound_household_passes_every_blocker_with_its_evidence():
    window, verdicts = assess(sound_evidence(), sound_case(), TODAY, RULES, line_of)
    assert [v.blocker for v in verdicts] == [
        "income_not_stable", "guarantees_unresolved", "measures_not_carried_out", "household_consent_insufficient",
        "sudden_difficulty_unresolved", "monitoring_lapsed", "procedure_irregular"]
    assert [v.outcome for v in verdicts] == ["pass"] * 7, [v.reason for v in verdicts]
    assert all(v.evidence for v in verdicts), "a pass names what it stood on"
    assert window == WINDOW and RULE_VERSION


# 1. 收入不持续稳定不消 -------------------------------------------------------------------------------

def test_income_below_the_line_in_one_month_fails_naming_that_record():
    incomes = tuple(Income(m, Decimal("650") if m == "2026-08" else Decimal("900"), f"inc-{m}") for m in WINDOW.months)
    verdict = income_not_stable(sound_evidence(incomes=incomes), WINDOW, line_of)
    assert verdict.outcome == "fail" and "2026-08" in verdict.reason
    [item] = verdict.evidence
    assert (item.ref, item.period, item.amount) == ("inc-2026-08", "2026-08", Decimal("650"))
    assert "700.00" in item.detail


def test_quarters_count_for_their_months_at_a_quarter_of_the_line():
    incomes = (Income("2026-Q2", Decimal("2100"), "q2"), Income("2026-Q3", Decimal("2500"), "q3"),
               Income("2026-10", Decimal("700"), "oct"))
    verdict = income_not_stable(sound_evidence(incomes=incomes), WINDOW, line_of)
    assert verdict.outcome == "pass", verdict.reason
    assert [i.ref for i in verdict.evidence] == ["q2", "q3", "oct"]  # each record once
    low = income_not_stable(sound_evidence(incomes=(Income("2026-Q2", Decimal("2099.99"), "q2"), *incomes[1:])),
                            WINDOW, line_of)
    assert low.outcome == "fail" and [i.ref for i in low.evidence] == ["q2"]


def test_a_month_without_income_is_unknown_and_named():
    incomes = tuple(Income(m, Decimal("900"), f"inc-{m}") for m in WINDOW.months if m != "2026-07")
    verdict = income_not_stable(sound_evidence(incomes=incomes), WINDOW, line_of)
    assert verdict.outcome == "unknown"
    assert verdict.missing == ["the income of 2026-07 (a record of 2026-07 or 2026-Q3)"]
    missing_line = income_not_stable(sound_evidence(), WINDOW, lambda region, year: None)
    assert missing_line.outcome == "unknown" and missing_line.missing == [
        f"the monitoring line of region {REGION} for 2026"]


# 2. “三保障”和饮水安全问题未解决不消 -------------------------------------------------------------------

def test_an_unassured_guarantee_fails_and_no_visit_is_unknown():
    assert guarantees_unresolved(sound_case()).outcome == "pass"
    unsafe = replace(sound_case().findings, housing_safe=False)
    verdict = guarantees_unresolved(sound_case(findings=unsafe))
    assert verdict.outcome == "fail" and verdict.reason == "not assured: safe housing"
    assert [i.detail for i in verdict.evidence] == ["housing_safe: false"]
    unknown = guarantees_unresolved(sound_case(findings=None))
    assert unknown.outcome == "unknown" and "findings" in unknown.missing[0]


# 3. 帮扶措施未落实不消 ---------------------------------------------------------------------------------

def test_a_measure_past_its_end_or_an_open_gap_fails_and_no_plan_is_unknown():
    overdue = Measure("m3", "housing_renovation", ("housing",), "active", date(2026, 5, 1), date(2026, 10, 1))
    verdict = measures_not_carried_out(sound_evidence(measures=(*sound_evidence().measures, overdue)), TODAY)
    assert verdict.outcome == "fail" and [(i.ref, i.on) for i in verdict.evidence] == [("m3", date(2026, 10, 1))]
    gap = OpenGap("allowance_only", None, date(2026, 9, 1), "ev-gap")
    gapped = measures_not_carried_out(sound_evidence(open_gaps=(gap,)), TODAY)
    assert gapped.outcome == "fail" and [(i.kind, i.ref) for i in gapped.evidence] == [("plan_gap", "ev-gap")]
    bare = measures_not_carried_out(sound_evidence(measures=()), TODAY)
    assert bare.outcome == "fail" and bare.reason == "no measure on the plan"
    unknown = measures_not_carried_out(sound_evidence(plan_known=False), TODAY)
    assert unknown.outcome == "unknown" and unknown.missing == ["the household's plan (assistance)"]
    assert measures_not_carried_out(sound_evidence(), TODAY).outcome == "pass"


# 4. 家庭认可度不达标不消 -------------------------------------------------------------------------------

def test_a_refused_consent_or_low_satisfaction_fails_and_a_missing_consent_is_unknown():
    consents = sound_case().consents
    refused = {**consents, "household": Consent("household", False, "member-1", date(2026, 11, 12), "ev-no")}
    verdict = household_consent_insufficient(sound_case(consents=refused), RULES)
    assert verdict.outcome == "fail" and [i.ref for i in verdict.evidence] == ["ev-no"]
    unhappy = household_consent_insufficient(
        sound_case(findings=replace(sound_case().findings, satisfaction="dissatisfied")), RULES)
    assert unhappy.outcome == "fail" and unhappy.reason == "satisfaction: dissatisfied"
    assert household_consent_insufficient(
        sound_case(findings=replace(sound_case().findings, satisfaction="basically_satisfied")), RULES).outcome == "pass"
    assert household_consent_insufficient(
        sound_case(findings=replace(sound_case().findings, satisfaction="basically_satisfied")),
        ExitRules(satisfaction_bar="satisfied")).outcome == "fail"
    partial = {p: c for p, c in consents.items() if p != "work_team"}
    unknown = household_consent_insufficient(sound_case(consents=partial), RULES)
    assert unknown.outcome == "unknown" and unknown.missing == ["the consent of the work team"]


# 5. 突发困难未化解不消 ---------------------------------------------------------------------------------

def test_a_risk_raised_in_the_window_needs_a_completed_measure_answering_it_after_it():
    verdict = sudden_difficulty_unresolved(sound_evidence(), WINDOW, TODAY)
    assert verdict.outcome == "pass" and {i.ref for i in verdict.evidence} == {"ev-clue-1", "m1"}
    illness = Difficulty("risk_added", "clue-2", ("illness",), date(2026, 10, 2), "ev-risk-2")
    failed = sudden_difficulty_unresolved(sound_evidence(difficulties=(illness,)), WINDOW, TODAY)
    assert failed.outcome == "fail" and [i.ref for i in failed.evidence] == ["ev-risk-2"]
    # Answered by a measure completed before the risk was raised: not resolved.
    late = Difficulty("clue", "clue-3", ("unstable_employment",), date(2026, 7, 1), "ev-clue-3")
    assert sudden_difficulty_unresolved(sound_evidence(difficulties=(late,)), WINDOW, TODAY).outcome == "fail"
    # Raised before the window: not this blocker's.
    old = Difficulty("clue", "clue-0", ("illness",), date(2026, 1, 5), "ev-clue-0")
    assert sudden_difficulty_unresolved(sound_evidence(difficulties=(old,)), WINDOW, TODAY).outcome == "pass"


# 6. 动态监测不到位不消 ---------------------------------------------------------------------------------

def test_a_month_without_a_visit_fails_naming_it():
    visits = tuple(v for v in sound_evidence().visits if v.on.month != 8)
    visits += (Visit("grid_visit", date(2026, 9, 3), "grid-1"),)
    verdict = monitoring_lapsed(sound_evidence(visits=visits), WINDOW)
    assert verdict.outcome == "fail" and verdict.reason == "no helper's or grid worker's visit in 2026-08"
    grid_only = tuple(Visit("grid_visit", v.on, v.event_id) for v in sound_evidence().visits)
    assert monitoring_lapsed(sound_evidence(visits=grid_only), WINDOW).outcome == "pass"


# 7. 程序不规范不消 ------------------------------------------------------------------------------------

def test_an_old_visit_or_a_consent_before_it_fails_and_no_visit_is_unknown():
    assert procedure_irregular(sound_case(), TODAY, RULES).outcome == "pass"
    stale = replace(sound_case().findings, visited_on=date(2026, 10, 1))
    verdict = procedure_irregular(sound_case(findings=stale, proposed_on=date(2026, 10, 2)), TODAY, RULES)
    assert verdict.outcome == "fail" and verdict.reason == "exit visit 50 days before the assessment (at most 30)"
    early = {**sound_case().consents, "helper": Consent("helper", True, "h1", date(2026, 11, 9), "ev-early")}
    before = procedure_irregular(sound_case(consents=early), TODAY, RULES)
    assert before.outcome == "fail" and [i.ref for i in before.evidence] == ["ev-early"]
    after_proposal = procedure_irregular(sound_case(proposed_on=date(2026, 11, 9)), TODAY, RULES)
    assert after_proposal.reason == "exit visit after the village's proposal"
    assert procedure_irregular(sound_case(findings=None), TODAY, RULES).outcome == "unknown"


@pytest.mark.parametrize("blocker, evidence, case", [
    ("income_not_stable", {"incomes": ()}, {}),
    ("measures_not_carried_out", {"open_gaps": (OpenGap("no_first_measure", None, date(2026, 6, 1), "g"),)}, {}),
    ("sudden_difficulty_unresolved",
     {"difficulties": (Difficulty("clue", "c", ("disaster",), date(2026, 11, 1), "e"),)}, {}),
    ("monitoring_lapsed", {"visits": ()}, {}),
])
def test_assess_names_only_the_blocker_the_evidence_breaks(blocker, evidence, case):
    _, verdicts = assess(sound_evidence(**evidence), sound_case(**case), TODAY, RULES, line_of)
    assert [v.blocker for v in verdicts if v.outcome != "pass"] == [blocker]
