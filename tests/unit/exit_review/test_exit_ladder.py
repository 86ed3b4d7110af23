"""The exit ladder (issue 17) as a pure state machine: who proposes and who consents, the blockers
judged once the four parties have answered, the notice, the township and the county; every step
× step and step × role refused with the step expected and the roles allowed."""
from datetime import date, timedelta
from decimal import Decimal

import pytest

from contracts.exit_review import BlockerVerdict, ExitFindings
from services.exit_review.domain import ladder
from services.exit_review.domain.blockers import look_back
from services.exit_review.domain.ladder import (
    Actor, CloseNotice, CountyDecision, RaiseObjection, RecordConsent, ResolveObjection, Step, Subject,
    TownshipVerification,
)
from services.exit_review.domain.refusals import Invalid, NotAllowed, OutOfOrder

TODAY = date(2026, 11, 20)
SUBJECT = Subject("H1", "410721001001", "monitored", member_ids=frozenset({"mem-1", "mem-2"}), helper_id="helper-1")
FINDINGS = ExitFindings(visited_on=TODAY, per_capita_net_income=Decimal("9800"), education_ok=True, medical_ok=True,
                        housing_safe=True, water_safe=True, satisfaction="satisfied")
CADRE, GRID, HELPER, TEAM = (Actor("cadre-1", "village_cadre"), Actor("grid-1", "grid_worker"),
                             Actor("helper-1", "helper"), Actor("team-1", "work_team"))
TOWNSHIP, COUNTY = Actor("town-1", "township_officer"), Actor("county-1", "county_officer")


def judge_all(outcome: str = "pass"):
    def judge(record):
        verdicts = [BlockerVerdict(blocker=b, outcome=outcome if b == "income_not_stable" else "pass", reason="r")
                    for b in ("income_not_stable", "guarantees_unresolved")]
        return "v-test", look_back(TODAY, 6), verdicts
    return judge


def fold(events, state=None):
    for n, event in enumerate(events):
        state = ladder.apply(state, event, TODAY, f"ev-{n}")
    return state


def proposed():
    return fold(ladder.propose(SUBJECT, "H1", None, "x1", FINDINGS, 14, "minutes", CADRE, TODAY))


def step(state, command, actor, judge=judge_all(), today=TODAY, subject=SUBJECT):
    events = ladder.decide(state, command, actor, subject, today, judge)
    return fold(events, state), events


def consented(judge=judge_all()):
    state = proposed()
    state, _ = step(state, RecordConsent("household", True, member_id="mem-1"), GRID)
    state, _ = step(state, RecordConsent("helper", True), HELPER)
    state, _ = step(state, RecordConsent("work_team", True), TEAM)
    state, events = step(state, RecordConsent("village_committee", True), CADRE, judge)
    return state, events


def test_the_whole_ladder_to_approval():
    state, events = consented()
    assert [e.event_type for e in events] == ["ConsentRecorded", "ExitAssessed", "ExitNoticePosted"]
    assert events[1].passed and events[1].rule_version == "v-test" and events[2].ends_on == TODAY + timedelta(days=5)
    assert state.step is Step.PUBLIC_NOTICE and state.consents["household"].by == "mem-1"
    state, events = step(state, CloseNotice(), COUNTY, today=TODAY + timedelta(days=4))
    assert events == [], "the notice runs five days"
    state, events = step(state, CloseNotice(), COUNTY, today=TODAY + timedelta(days=5))
    assert state.step is Step.TOWNSHIP_VERIFICATION
    state, _ = step(state, TownshipVerification("pass"), TOWNSHIP)
    state, events = step(state, CountyDecision("approve", spot_checked=True, department_comparison="no anomaly"), COUNTY)
    assert [e.event_type for e in events] == ["ExitApproved"] and events[0].spot_checked
    assert state.step is Step.CLOSED


def test_a_failing_or_unknown_blocker_rejects_naming_it():
    for outcome in ("fail", "unknown"):
        state, events = consented(judge_all(outcome))
        assert [e.event_type for e in events] == ["ConsentRecorded", "ExitAssessed", "ExitRejected"]
        assert not events[1].passed and events[2].blockers == ["income_not_stable"]
        assert "收入不持续稳定不消" in events[2].reason and state.step is Step.CLOSED


def test_who_may_propose_and_what():
    with pytest.raises(NotAllowed) as refused:
        ladder.propose(SUBJECT, "H1", None, "x1", FINDINGS, 14, "", GRID, TODAY)
    assert refused.value.details["allowed_roles"] == ["village_cadre"]
    with pytest.raises(Invalid) as protected:
        ladder.propose(Subject("H1", "410721001001", "monitored", protected=True), "H1", None, "x1", FINDINGS, 14, "",
                       CADRE, TODAY)
    assert protected.value.code == "subject_protected" and "整户无劳动能力兜底保障户" in str(protected.value)
    for subject in (None, Subject("H1", "410721001001", "risk_eliminated")):
        with pytest.raises(Invalid) as not_monitored:
            ladder.propose(subject, "H1", None, "x1", FINDINGS, 14, "", CADRE, TODAY)
        assert not_monitored.value.details["errors"][0]["field"] == "household_id"
    with pytest.raises(OutOfOrder) as already:
        ladder.propose(SUBJECT, "H1", "x0", "x1", FINDINGS, 14, "", CADRE, TODAY)
    assert already.value.code == "exit_already_open" and already.value.details["exit_id"] == "x0"
    with pytest.raises(Invalid) as future:
        ladder.propose(SUBJECT, "H1", None, "x1", FINDINGS.model_copy(update={"visited_on": TODAY + timedelta(days=1)}),
                       14, "", CADRE, TODAY)
    assert future.value.details["errors"][0]["field"] == "findings.visited_on"


def test_each_consent_is_given_by_its_own_party_once():
    state = proposed()
    for command, actor, code in (
            (RecordConsent("helper", True), Actor("helper-2", "helper"), "not_that_party"),  # another household's helper
            (RecordConsent("work_team", True), CADRE, "not_that_party"),
            (RecordConsent("village_committee", True), GRID, "not_that_party"),
            (RecordConsent("household", True), HELPER, "not_that_party"),
            (RecordConsent("household", True, member_id="mem-9"), GRID, "member_not_in_household")):
        with pytest.raises((NotAllowed, Invalid)) as refused:
            step(state, command, actor)
        assert refused.value.code == code, (command, actor)
    state, _ = step(state, RecordConsent("helper", True), HELPER)
    with pytest.raises(OutOfOrder) as twice:
        step(state, RecordConsent("helper", False), HELPER)
    assert twice.value.code == "consent_already_recorded"


# Every command at every step: only the step's own command, by its roles.
COMMANDS = {
    Step.EXIT_CONSENT: (RecordConsent("village_committee", True), CADRE),
    Step.PUBLIC_NOTICE: (RaiseObjection("o1", "村民", "收入有隐瞒"), CADRE),
    Step.TOWNSHIP_VERIFICATION: (TownshipVerification("pass"), TOWNSHIP),
    Step.COUNTY_DECISION: (CountyDecision("approve"), COUNTY),
}


def at(target: Step):
    state, _ = consented()
    if target is Step.EXIT_CONSENT:
        return proposed()
    if target is Step.PUBLIC_NOTICE:
        return state
    state, _ = step(state, CloseNotice(), COUNTY, today=TODAY + timedelta(days=5))
    if target is Step.TOWNSHIP_VERIFICATION:
        return state
    state, _ = step(state, TownshipVerification("pass"), TOWNSHIP)
    return state


@pytest.mark.parametrize("case_step", list(COMMANDS))
@pytest.mark.parametrize("command_step", list(COMMANDS))
def test_step_by_step(case_step, command_step):
    state = at(case_step)
    command, actor = COMMANDS[command_step]
    if case_step is command_step:
        assert ladder.decide(state, command, actor, SUBJECT, TODAY, judge_all())
        return
    with pytest.raises(OutOfOrder) as refused:
        ladder.decide(state, command, actor, SUBJECT, TODAY, judge_all())
    assert refused.value.details["expected_step"] == case_step.value
    assert refused.value.details["allowed_roles"] == list(ladder.ROLES[case_step])


@pytest.mark.parametrize("case_step", list(COMMANDS))
@pytest.mark.parametrize("role", ["village_cadre", "grid_worker", "helper", "work_team", "township_officer",
                                  "county_officer", "national_officer"])
def test_step_by_role(case_step, role):
    state = at(case_step)
    command, _ = COMMANDS[case_step]
    if role in ladder.ROLES[case_step]:
        return  # the party rules of a consent are the test above
    with pytest.raises(NotAllowed) as refused:
        ladder.decide(state, command, Actor("someone", role), SUBJECT, TODAY, judge_all())
    assert refused.value.details["allowed_roles"] == list(ladder.ROLES[case_step])


def test_objections_hold_the_notice_and_an_upheld_one_returns_the_case():
    state, _ = consented()
    state, _ = step(state, RaiseObjection("o1", "村民", "收入有隐瞒"), CADRE)
    state, events = step(state, CloseNotice(), COUNTY, today=TODAY + timedelta(days=6))
    assert events == [], "an open objection holds the notice"
    with pytest.raises(NotAllowed):
        step(state, ResolveObjection("o1", True), CADRE)
    state, events = step(state, ResolveObjection("o1", True, "income hidden"), TOWNSHIP)
    assert [e.event_type for e in events] == ["ExitObjectionResolved", "ExitReturned"]
    assert state.step is Step.CLOSED and events[1].reason == "income hidden"
    with pytest.raises(OutOfOrder) as closed:
        step(state, TownshipVerification("pass"), TOWNSHIP)
    assert closed.value.code == "exit_closed"


def test_the_township_returns_and_the_county_rejects_with_a_reason():
    state = at(Step.TOWNSHIP_VERIFICATION)
    with pytest.raises(Invalid):
        step(state, TownshipVerification("return"), TOWNSHIP)
    returned, events = step(state, TownshipVerification("return", "incomes not verified"), TOWNSHIP)
    assert returned.step is Step.CLOSED and events[-1].by == "township_verification"
    state = at(Step.COUNTY_DECISION)
    with pytest.raises(Invalid):
        step(state, CountyDecision("reject"), COUNTY)
    rejected, events = step(state, CountyDecision("reject", reason="spot check found a new illness"), COUNTY)
    assert rejected.step is Step.CLOSED and events[0].level == "county"


def test_each_step_is_due_its_days_and_a_notice_when_it_ends():
    days = {"exit_consent": 10, "township_verification": 5, "county_decision": 7}
    assert ladder.due_date("exit_consent", TODAY, None, days) == TODAY + timedelta(days=10)
    assert ladder.due_date("public_notice", TODAY, TODAY + timedelta(days=5), days) == TODAY + timedelta(days=5)
    assert ladder.due_date("county_decision", TODAY, None, days) == TODAY + timedelta(days=7)
    assert ladder.due_date("closed", TODAY, None, days) is None
