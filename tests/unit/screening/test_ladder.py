"""screening's pure rules: monitoring lines, the eligibility recommendation, and every allowed and
refused transition of the identification ladder."""
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from contracts.codes import Refusal
from contracts.screening import HouseholdVerified, SubjectIdentified
from contracts.vocabulary import RiskType
from services.screening.app import SERVICE
from contracts.reference import MissingMonitoringLine, MonitoringLines
from services.screening.domain import Eligibility, Findings, ReasonCode, recommend
from services.screening.domain.ladder import (
    NOTICE_DAYS, ROLES, CaseState, Category, CloseNotice, CountyDecision, Deliberate, RaiseObjection,
    RecordVerification, ResolveObjection, Step, TownshipReview, apply, decide,
)

TODAY = date(2026, 11, 20)
LINE = Decimal("7900")


def findings(**overrides) -> Findings:
    values = dict(per_capita_net_income=Decimal("9000"), rigid_expenditure=Decimal("0"), education_ok=True,
                  medical_ok=True, housing_safe=True, water_safe=True)
    values.update(overrides)
    return Findings(**values)


# --- monitoring lines ----------------------------------------------------------------------------

def test_the_most_specific_prefix_with_a_line_for_the_year_wins():
    lines = MonitoringLines({("34", 2023): Decimal("7000"), ("3404", 2023): Decimal("7900"),
                             ("340421", 2024): Decimal("8200")})
    assert lines.line_for("340421001001", 2023) == Decimal("7900")  # 340421 has none for 2023
    assert lines.line_for("340421001001", 2024) == Decimal("8200")
    assert lines.line_for("341100001001", 2023) == Decimal("7000")


def test_a_missing_line_is_a_configuration_error_not_a_default():
    lines = MonitoringLines({("3404", 2023): Decimal("7900")})
    with pytest.raises(MissingMonitoringLine, match="3404010010 in 2024"):
        lines.line_for("3404010010", 2024)
    with pytest.raises(MissingMonitoringLine):
        lines.line_for("410721001001", 2023)


def test_lines_load_from_the_shipped_table_and_refuse_a_bad_one(tmp_path):
    shipped = Path(__file__).parents[3] / "contracts/data/monitoring-lines-demo.csv"
    assert MonitoringLines.from_csv(shipped).line_for("340404001001", 2023) == Decimal("7900")
    bad = tmp_path / "lines.csv"
    bad.write_text("prefix,year,yuan\n3404,2023,7900\n3404,2023,8000\n")
    with pytest.raises(ValueError, match="given twice"):
        MonitoringLines.from_csv(bad)


# --- eligibility ------------------------------------------------------------------------------------

def test_income_at_or_above_the_line_with_everything_assured_is_not_eligible():
    advice = recommend(findings(per_capita_net_income=LINE), LINE)
    assert not advice.eligible and advice.eligibility is Eligibility.NOT_ELIGIBLE
    [reason] = advice.reasons
    assert reason.code == ReasonCode.ABOVE_LINE_AND_ASSURED == "above_line_and_assured" and "at or above" in reason.text


def test_income_under_the_line_is_eligible():
    advice = recommend(findings(per_capita_net_income=Decimal("7899.99")), LINE)
    assert advice.eligible and advice.eligibility is Eligibility.ELIGIBLE
    assert [(r.code, r.text) for r in advice.reasons] == [
        ("income_under_line", "per-capita net income 7899.99 is under the monitoring line 7900")]


def test_rigid_expenditure_the_income_cannot_bear_is_eligible():
    advice = recommend(findings(per_capita_net_income=Decimal("12000"), rigid_expenditure=Decimal("5000")), LINE)
    [reason] = advice.reasons
    assert advice.eligible and reason.code == "rigid_expenditure_leaves_under_line"
    assert "rigid expenditure 5000 leaves 7000" in reason.text
    assert not recommend(findings(per_capita_net_income=Decimal("12000"), rigid_expenditure=Decimal("4000")), LINE).eligible


@pytest.mark.parametrize("guarantee, code, words", [
    ("education_ok", "education_not_assured", "compulsory education"),
    ("medical_ok", "medical_care_not_assured", "basic medical care"),
    ("housing_safe", "housing_not_safe", "safe housing"),
    ("water_safe", "drinking_water_not_safe", "safe drinking water")])
def test_each_unmet_guarantee_and_unsafe_water_is_eligible(guarantee, code, words):
    advice = recommend(findings(**{guarantee: False}), LINE)
    assert advice.eligible and [(r.code, r.text) for r in advice.reasons] == [(code, f"{words} is not assured")]


def test_every_reason_found_is_given():
    advice = recommend(findings(per_capita_net_income=Decimal("5000"), housing_safe=False, water_safe=False), LINE)
    assert [r.code for r in advice.reasons] == ["income_under_line", "housing_not_safe", "drinking_water_not_safe"]


def test_every_reason_code_is_stable_snake_case_and_each_reason_has_its_own():
    """Callers match on the codes (item 6 builds on them): snake_case, one per kind of reason, and
    every code is given by some finding."""
    every_kind = [findings(per_capita_net_income=Decimal("5000"), education_ok=False, medical_ok=False,
                           housing_safe=False, water_safe=False),
                  findings(per_capita_net_income=Decimal("9000"), rigid_expenditure=Decimal("2000")), findings()]
    given = [r.code for f in every_kind for r in recommend(f, LINE).reasons]
    assert sorted(given) == sorted(ReasonCode) and len(set(given)) == len(given)
    assert all(code.value.replace("_", "").isalpha() and code.value.islower() for code in ReasonCode)


# --- the ladder -----------------------------------------------------------------------------------

def status_of(refusal: Refusal) -> int:
    """The HTTP status app.py answers this kind of refusal with."""
    return SERVICE.refusal_statuses[type(refusal)]


def case(step: Step = Step.VERIFICATION_VISIT, **overrides) -> CaseState:
    return CaseState("c1", "H1", "410721001001", step=step, **overrides)


def run(state: CaseState, command, role: str, today: date = TODAY) -> CaseState:
    for event in decide(state, command, role, today):
        state = apply(state, event)
    return state


def to_notice() -> CaseState:
    state = run(case(), RecordVerification(findings(per_capita_net_income=Decimal("6000")), LINE), "grid_worker")
    return run(state, Deliberate("propose", attendees=9), "village_cadre")


def test_the_whole_ladder_to_an_approval():
    state = case(risk_types=(RiskType.ILLNESS,))
    events = decide(state, RecordVerification(findings(per_capita_net_income=Decimal("6000")), LINE), "work_team", TODAY)
    assert [e.event_type for e in events] == ["HouseholdVerified"] and events[0].eligible
    assert events[0].risk_types == [RiskType.ILLNESS]  # the clues' risk types unless the visit names others
    state = apply(state, events[0])
    assert state.step is Step.VILLAGE_DELIBERATION

    events = decide(state, Deliberate("propose", attendees=11, minutes="agreed"), "village_cadre", TODAY)
    assert [e.event_type for e in events] == ["VillageDeliberated", "PublicNoticePosted"]
    assert events[1].ends_on == TODAY + timedelta(days=NOTICE_DAYS)
    state = run(state, Deliberate("propose", attendees=11), "village_cadre")
    assert state.step is Step.PUBLIC_NOTICE

    assert decide(state, CloseNotice(), "scheduler", TODAY + timedelta(days=NOTICE_DAYS - 1)) == []
    state = run(state, CloseNotice(), "scheduler", TODAY + timedelta(days=NOTICE_DAYS))
    assert state.step is Step.TOWNSHIP_REVIEW
    state = run(state, TownshipReview("pass"), "township_officer")
    assert state.step is Step.COUNTY_DECISION
    events = decide(state, CountyDecision("approve", Category.SUDDEN_HARDSHIP, (RiskType.ILLNESS,)), "county_officer", TODAY)
    assert [e.event_type for e in events] == ["CountyDecided", "SubjectIdentified"]
    assert events[1] == SubjectIdentified(case_id="c1", household_id="H1", step="closed",
                                          category=Category.SUDDEN_HARDSHIP, risk_types=[RiskType.ILLNESS])
    assert apply(state, events[-1]).step is Step.CLOSED


def test_the_verification_event_records_the_income_year_of_its_line_and_older_events_still_decode():
    state = case()
    [published] = decide(state, RecordVerification(findings(per_capita_net_income=Decimal("7800")), Decimal("7700"),
                                                   income_year=2025), "grid_worker", TODAY)
    assert isinstance(published, HouseholdVerified) and published.step == "village_deliberation"
    assert (published.income_year, published.monitoring_line, published.eligible) == (2025, Decimal("7700"), False)
    assert published.reasons == [recommend(findings(per_capita_net_income=Decimal("7800")), Decimal("7700")).reasons[0].text]
    stored_before = published.model_dump(mode="json")
    del stored_before["income_year"]
    assert HouseholdVerified.model_validate(stored_before).income_year is None


def test_the_village_not_proposing_closes_the_case_as_rejected():
    state = run(case(), RecordVerification(findings(), LINE), "village_cadre")
    events = decide(state, Deliberate("not_propose", attendees=8, minutes="income is sufficient"), "village_cadre", TODAY)
    assert [e.event_type for e in events] == ["VillageDeliberated", "IdentificationRejected"]
    assert (events[1].level, events[1].reason) == ("village", "income is sufficient")


def test_an_upheld_objection_returns_the_case_to_the_village_and_a_dismissed_one_does_not():
    state = run(to_notice(), RaiseObjection("o1", by="a neighbour", reason="owns a truck"), "village_cadre")
    assert state.open_objections == {"o1"}
    assert decide(state, CloseNotice(), "scheduler", TODAY + timedelta(days=30)) == [], "an open objection holds the notice"
    dismissed = run(state, ResolveObjection("o1", upheld=False), "township_officer")
    assert dismissed.step is Step.PUBLIC_NOTICE and not dismissed.open_objections
    assert run(dismissed, CloseNotice(), "scheduler", TODAY + timedelta(days=5)).step is Step.TOWNSHIP_REVIEW

    events = decide(state, ResolveObjection("o1", upheld=True, note="the truck is his"), "township_officer", TODAY)
    assert [e.event_type for e in events] == ["ObjectionResolved", "CaseReturned"]
    returned = run(state, ResolveObjection("o1", upheld=True), "township_officer")
    assert returned.step is Step.VILLAGE_DELIBERATION and returned.notice_ends is None


def test_objections_only_while_the_notice_runs_and_only_open_ones_are_resolved():
    state = to_notice()
    with pytest.raises(Refusal, match="ended") as ended:
        decide(state, RaiseObjection("o1", "x", "y"), "village_cadre", TODAY + timedelta(days=NOTICE_DAYS))
    assert status_of(ended.value) == 409
    with pytest.raises(Refusal, match="no open objection") as refused:
        decide(state, ResolveObjection("o9", upheld=True), "township_officer", TODAY)
    assert status_of(refused.value) == 404


def test_the_township_returns_the_case_to_a_new_verification_visit():
    state = run(to_notice(), CloseNotice(), "scheduler", TODAY + timedelta(days=NOTICE_DAYS))
    events = decide(state, TownshipReview("return", "income evidence missing"), "township_officer", TODAY)
    assert [e.event_type for e in events] == ["TownshipReviewed", "CaseReturned"]
    assert run(state, TownshipReview("return"), "township_officer").step is Step.VERIFICATION_VISIT


def test_the_county_rejects_with_a_reason_and_approves_only_with_category_and_risks():
    state = case(Step.COUNTY_DECISION)
    events = decide(state, CountyDecision("reject", reason="income above the line on comparison"), "county_officer", TODAY)
    assert [e.event_type for e in events] == ["CountyDecided", "IdentificationRejected"]
    assert (events[1].level, events[1].reason) == ("county", "income above the line on comparison")
    for incomplete in (CountyDecision("reject"), CountyDecision("approve", None, (RiskType.ILLNESS,)),
                       CountyDecision("approve", Category.MARGINAL_AT_RISK, ())):
        with pytest.raises(Refusal) as refused:
            decide(state, incomplete, "county_officer", TODAY)
        assert status_of(refused.value) == 422


COMMANDS = {
    Step.VERIFICATION_VISIT: RecordVerification(findings(), LINE),
    Step.VILLAGE_DELIBERATION: Deliberate("propose", attendees=5),
    Step.PUBLIC_NOTICE: RaiseObjection("o1", "x", "y"),
    Step.TOWNSHIP_REVIEW: TownshipReview("pass"),
    Step.COUNTY_DECISION: CountyDecision("reject", reason="r"),
}
STAFF = ("grid_worker", "village_cadre", "work_team", "township_officer", "county_officer", "helper")


@pytest.mark.parametrize("at", list(COMMANDS))
@pytest.mark.parametrize("step", list(COMMANDS))
def test_a_step_out_of_order_is_refused_naming_the_expected_step(at, step):
    state = case(at, notice_ends=TODAY + timedelta(days=5) if at is Step.PUBLIC_NOTICE else None)
    role = ROLES[step][0]
    if at is step:
        assert decide(state, COMMANDS[step], role, TODAY)
        return
    with pytest.raises(Refusal) as refused:
        decide(state, COMMANDS[step], role, TODAY)
    assert status_of(refused.value) == 409 and refused.value.details["expected_step"] == at.value
    assert at.value in str(refused.value)


@pytest.mark.parametrize("role", STAFF)
@pytest.mark.parametrize("step", list(COMMANDS))
def test_only_the_steps_roles_may_take_it(step, role):
    state = case(step, notice_ends=TODAY + timedelta(days=5) if step is Step.PUBLIC_NOTICE else None)
    if role in ROLES[step]:
        assert decide(state, COMMANDS[step], role, TODAY)
        return
    with pytest.raises(Refusal) as refused:
        decide(state, COMMANDS[step], role, TODAY)
    assert status_of(refused.value) == 403 and refused.value.details["allowed_roles"] == list(ROLES[step])


def test_a_closed_case_takes_no_step():
    for command in COMMANDS.values():
        with pytest.raises(Refusal, match="closed") as refused:
            decide(case(Step.CLOSED), command, "county_officer", TODAY)
        assert status_of(refused.value) == 409 and refused.value.details["expected_step"] == "closed"


def test_a_case_folds_back_from_its_published_events():
    from contracts.screening import ClueAttachedToCase, VerificationCaseOpened
    from services.screening.domain.ladder import case_from_history

    opened = VerificationCaseOpened(case_id="c1", household_id="H1", region_code="410721001001", clue_id="k1",
                                    risk_types=[RiskType.ILLNESS], step="verification_visit", due_date=TODAY)
    attached = ClueAttachedToCase(case_id="c1", household_id="H1", clue_id="k2", risk_types=[RiskType.HOUSING])
    state = case_from_history([opened, attached])
    assert state.risk_types == (RiskType.ILLNESS, RiskType.HOUSING) and state.step is Step.VERIFICATION_VISIT
    history = [opened, attached]
    for command, role in ((RecordVerification(findings(per_capita_net_income=Decimal("6000")), LINE), "grid_worker"),
                          (Deliberate("propose", attendees=7), "village_cadre"),
                          (RaiseObjection("o1", "a neighbour", "owns a truck"), "village_cadre")):
        for event in decide(state, command, role, TODAY):
            history.append(type(event).model_validate_json(event.model_dump_json()))
            state = apply(state, event)
    assert case_from_history(history) == state
    assert state.step is Step.PUBLIC_NOTICE and state.open_objections == {"o1"} and state.eligible


# --- subjects: removal and the protected mark ------------------------------------------------------

from contracts.screening import (  # noqa: E402
    ProtectionDeclined, ProtectionProposed, RemovalProposed, RemovalRejected, SubjectProtected, SubjectRemoved,
)
from services.screening.domain import subjects  # noqa: E402


def subject(**overrides) -> subjects.SubjectState:
    return subjects.SubjectState("H1", "410721001001", overrides.pop("status", subjects.MONITORED), **overrides)


def test_removal_is_proposed_by_the_township_and_decided_by_the_county():
    [proposed] = subjects.propose_removal(subject(), "wrongly identified", "township_officer")
    assert isinstance(proposed, RemovalProposed)
    pending = subjects.apply(subject(), proposed)
    [removed] = subjects.decide_removal(pending, "approve", "", "county_officer")
    assert isinstance(removed, SubjectRemoved) and subjects.apply(pending, removed).status == subjects.REMOVED
    [kept] = subjects.decide_removal(pending, "reject", "identification was right", "county_officer")
    assert isinstance(kept, RemovalRejected) and subjects.apply(pending, kept) == subject()


@pytest.mark.parametrize("call, status", [
    (lambda: subjects.propose_removal(subject(), "r", "village_cadre"), 403),
    (lambda: subjects.propose_removal(subject(), " ", "township_officer"), 422),
    (lambda: subjects.propose_removal(subject(removal_pending=True), "r", "township_officer"), 409),
    (lambda: subjects.propose_removal(subject(status=subjects.REMOVED), "r", "township_officer"), 409),
    (lambda: subjects.decide_removal(subject(), "approve", "", "county_officer"), 409),
    (lambda: subjects.decide_removal(subject(removal_pending=True), "approve", "", "township_officer"), 403),
    (lambda: subjects.propose_protection(subject(), True, "", "village_cadre"), 422),
    (lambda: subjects.propose_protection(subject(), None, "", "village_cadre"), 409),
    (lambda: subjects.propose_protection(subject(), False, "", "township_officer"), 403),
    (lambda: subjects.propose_protection(subject(protected=True), False, "", "village_cadre"), 409),
    (lambda: subjects.propose_protection(subject(status=subjects.RISK_ELIMINATED), False, "", "village_cadre"), 409),
    (lambda: subjects.decide_protection(subject(), "confirm", "", "township_officer"), 409),
    (lambda: subjects.decide_protection(subject(protection_pending=True), "confirm", "", "village_cadre"), 403),
])
def test_refused_subject_changes(call, status):
    with pytest.raises(Refusal) as refused:
        call()
    assert status_of(refused.value) == status


def test_the_protected_mark_where_no_member_can_work():
    [proposed] = subjects.propose_protection(subject(), False, "both over 80", "village_cadre")
    assert isinstance(proposed, ProtectionProposed)
    pending = subjects.apply(subject(), proposed)
    [confirmed] = subjects.decide_protection(pending, "confirm", "", "township_officer")
    assert isinstance(confirmed, SubjectProtected) and subjects.apply(pending, confirmed).protected
    [declined] = subjects.decide_protection(pending, "decline", "a son works in town", "township_officer")
    assert isinstance(declined, ProtectionDeclined) and not subjects.apply(pending, declined).protected
