"""exit_review over HTTP against the real store and broker, across services (issue 17): a subject
with its plan, measures, six months of incomes and visits is proposed by its village with the four
parties' consent, passes the seven blockers, goes through the notice, the township and the county;
screening then marks it risk-eliminated and assistance closes its plan; six months on, the look-back
finds a new clue, the county rolls the exit back, screening monitors it again and the plan reopens. Bad input is refused naming
the field and the rule. run_services ends by rebuilding exit_review's views (the exits from its
events, the evidence from the topics) and comparing them with the live tables."""
import asyncio
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from contracts.vocabulary import RiskType
from runtime.clock import FixedClock
from tests.conftest import eventually
from tests.factories import VILLAGE, household, id_number, warning
from tests.integration.assistance.test_plans import identify

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)
SERVICES = ("intake", "screening", "assistance", "exit_review", "notifier")
MONTHS = ("2026-05", "2026-06", "2026-07", "2026-08", "2026-09", "2026-10")  # the look-back of 2026-11
SOUND = {"visited_on": "2026-11-18", "per_capita_net_income": "9800.00", "education_ok": True, "medical_ok": True,
         "housing_safe": True, "water_safe": True, "satisfaction": "satisfied", "attendees": 12,
         "minutes": "村民代表评议：同意标注风险消除"}


async def evidence_count(system, table: str, household_id: str) -> int:
    async with system.context("exit_review").sessions() as session:
        return await session.scalar(sa.text(f"select count(*) from {table} where household_id = :h"),
                                    {"h": household_id})


async def a_helper(system, county: dict) -> dict:
    """The village's helper h-1 in the staff directory, known to assistance; their token."""
    staff = {"staff_id": "h-1", "name": "帮扶人", "role": "helper", "region_code": VILLAGE}
    assert (await system.clients["notifier"].post("/v1/staff", headers=county, json=staff)).status_code == 201

    async def helper_known():
        async with system.context("assistance").sessions() as session:
            return await session.scalar(sa.text("select count(*) from helpers")) == 1
    await eventually(helper_known)
    return system.token("helper", VILLAGE, sub="h-1")


async def a_subject_with_six_sound_months(system, household_id: str, sequence: int, helper: dict,
                                         low_income_month: str | None = None, unvisited_month: str | None = None) -> str:
    """Registered, identified, a measure carried out, incomes and a helper's visit each month of the
    look-back (but for the defects asked); returns the head's member id (who signs the household's consent)."""
    intake, assistance = system.clients["intake"], system.clients["assistance"]
    county = system.token("county_officer", "410721", sub="county-1")
    assert (await intake.post("/v1/households", headers=county, json=household(household_id, sequence))).status_code == 201
    await identify(system, household_id, VILLAGE, RiskType.UNSTABLE_EMPLOYMENT)

    async def planned():
        answer = await assistance.get(f"/v1/plans/{household_id}", headers=county)
        return answer.status_code == 200 and answer.json()["helper_id"] == "h-1"
    await eventually(planned)
    measure = await assistance.post(f"/v1/plans/{household_id}/measures", headers=helper, json={
        "measure_type": "employment", "start_date": "2026-05-01", "planned_end": "2026-06-30"})
    assert measure.status_code == 201, measure.text
    done = await assistance.post(f"/v1/measures/{measure.json()['measure_id']}/progress", headers=helper,
                                 json={"status": "completed", "completed_on": "2026-06-20", "note": "placed"})
    assert done.status_code == 200, done.text
    for month in MONTHS:
        income = await assistance.post(f"/v1/plans/{household_id}/incomes", headers=helper, json={
            "period": month, "per_capita_net_income": "500.00" if month == low_income_month else "900.00"})
        assert income.status_code == 201, income.text  # the 2026 line is 8,000 a year: 666.67 a month
        if month == unvisited_month:
            continue
        visit = await assistance.post(f"/v1/plans/{household_id}/visits", headers=helper, json={
            "visited_on": f"{month}-15", "findings": "working at the cooperative"})
        assert visit.status_code == 201, visit.text
    members = (await intake.get(f"/v1/households/{household_id}", headers=county)).json()["members"]

    async def mirrored():  # exit_review has what the blockers will read
        return (await evidence_count(system, "income_evidence", household_id) == 6
                and await evidence_count(system, "visit_evidence", household_id) == 6 - (unvisited_month is not None)
                and await evidence_count(system, "subjects", household_id) == 1
                and await evidence_count(system, "household_members", household_id) == 1)
    await eventually(mirrored)
    return next(m["member_id"] for m in members if m["relation"] == "head")


async def test_a_sound_subject_exits_through_the_whole_ladder(run_services):
    clock = FixedClock(NOW)
    async with run_services(*SERVICES, clock=clock, scheduler_seconds=0.2, plan_check_seconds=0.5) as system:
        exits, screening, assistance = (system.clients[s] for s in ("exit_review", "screening", "assistance"))
        county = system.token("county_officer", "410721", sub="county-1")
        helper = await a_helper(system, county)
        head = await a_subject_with_six_sound_months(system, "X1", 1, helper)
        cadre = system.token("village_cadre", VILLAGE, sub="cadre-1")

        # Bad input: the field and the rule, nothing stored.
        for body, status, code, field in (
                ({**SOUND, "household_id": "NOBODY"}, 422, "subject_not_monitored_for_exit", "household_id"),
                ({**SOUND, "household_id": "X1", "visited_on": "2026-11-21"}, 422, "findings_in_future",
                 "findings.visited_on"),
                ({**SOUND, "household_id": "X1", "consent": {"helper": True}}, 403, "not_that_party", None),
                ({**SOUND, "household_id": "X1", "consent": {"household": True}, "household_member_id": "not-a-member"},
                 422, "member_not_in_household", "member_id")):
            refused = await exits.post("/v1/exits", headers=cadre, json=body)
            assert refused.status_code == status and refused.json()["code"] == code, refused.text
            if field:
                assert refused.json()["errors"][0]["field"] == field, refused.text
        assert (await exits.get("/v1/exits", headers=county)).json()["items"] == []
        grid = system.token("grid_worker", VILLAGE, sub="gw-1")
        assert (await exits.post("/v1/exits", headers=grid, json={**SOUND, "household_id": "X1"})).status_code == 403

        proposed = await exits.post("/v1/exits", headers=cadre, json={
            **SOUND, "household_id": "X1", "consent": {"household": True, "village_committee": True},
            "household_member_id": head})
        assert proposed.status_code == 201, proposed.text
        case = proposed.json()
        exit_id = case["exit_id"]
        assert case["step"] == "exit_consent" and {c["party"]: c["by"] for c in case["consents"]} == {
            "household": head, "village_committee": "cadre-1"}
        again = await exits.post("/v1/exits", headers=cadre, json={**SOUND, "household_id": "X1"})
        assert again.status_code == 409 and again.json()["code"] == "exit_already_open", again.text

        other_helper = system.token("helper", VILLAGE, sub="h-2")
        refused = await exits.post(f"/v1/exits/{exit_id}/consents", headers=other_helper, json={"party": "helper"})
        assert refused.status_code == 403 and refused.json()["code"] == "not_that_party", refused.text
        team = system.token("work_team", VILLAGE, sub="team-1")
        assert (await exits.post(f"/v1/exits/{exit_id}/consents", headers=team,
                                 json={"party": "work_team"})).status_code == 200
        assessed = await exits.post(f"/v1/exits/{exit_id}/consents", headers=helper, json={"party": "helper"})
        assert assessed.status_code == 200, assessed.text
        case = assessed.json()
        verdicts = {v["blocker"]: v for v in case["assessment"]["verdicts"]}
        assert {b: v["outcome"] for b, v in verdicts.items()} == {b: "pass" for b in (
            "income_not_stable", "guarantees_unresolved", "measures_not_carried_out", "household_consent_insufficient",
            "sudden_difficulty_unresolved", "monitoring_lapsed", "procedure_irregular")}, verdicts
        assert [e["period"] for e in verdicts["income_not_stable"]["evidence"]] == list(MONTHS)
        assert (case["step"], case["notice_ends"], case["passed"]) == ("public_notice", "2026-11-25", True)

        # The notice runs five days on the services' clock; then the township and the county.
        township = system.token("township_officer", "410721001", sub="town-1")
        early = await exits.post(f"/v1/exits/{exit_id}/township-verification", headers=township, json={"decision": "pass"})
        assert early.status_code == 409 and early.json()["expected_step"] == "public_notice", early.text
        clock.advance(timedelta(days=5))

        async def notice_over():
            return (await exits.get(f"/v1/exits/{exit_id}", headers=county)).json()["step"] == "township_verification"
        await eventually(notice_over)
        assert (await exits.post(f"/v1/exits/{exit_id}/township-verification", headers=township,
                                 json={"decision": "pass", "comment": "核实无误"})).status_code == 200
        approved = await exits.post(f"/v1/exits/{exit_id}/county-decision", headers=county, json={
            "decision": "approve", "spot_checked": True, "department_comparison": "no anomaly"})
        assert approved.status_code == 200, approved.text
        assert (approved.json()["step"], approved.json()["outcome"]) == ("closed", "approved")
        assert [e["event_type"] for e in approved.json()["history"]][-3:] == [
            "ExitNoticeClosed", "ExitTownshipVerified", "ExitApproved"]

        # The statistics count the steps it took: the consents the same day, the notice five days.
        month = (await exits.get("/v1/statistics?region=410721&period=2026-11", headers=county)).json()
        assert month["average_days"]["exit"] == {"county_decision": "0.0", "exit_consent": "0.0", "public_notice": "5.0",
                                                 "township_verification": "0.0"}, month["average_days"]

        # Screening marks the subject risk-eliminated; assistance closes the plan; no second exit.
        async def eliminated():
            subject = (await screening.get("/v1/subjects/X1", headers=county)).json()
            plan = (await assistance.get("/v1/plans/X1", headers=county)).json()
            return subject["status"] == "risk_eliminated" and plan["status"] == "closed"
        await eventually(eliminated)

        async def mirrored_elimination():
            async with system.context("exit_review").sessions() as session:
                return await session.scalar(sa.text("select status from subjects where household_id = 'X1'")) == \
                    "risk_eliminated"
        await eventually(mirrored_elimination)
        after = await exits.post("/v1/exits", headers=cadre, json={**SOUND, "household_id": "X1"})
        assert after.status_code == 422 and after.json()["code"] == "subject_not_monitored_for_exit", after.text

        # 回头看: not before its months; then due, a new clue since the exit flags it, and the county rolls it back.
        too_early = await exits.post(f"/v1/exits/{exit_id}/look-back", headers=township, json={})
        assert too_early.status_code == 409 and too_early.json()["code"] == "look_back_not_due", too_early.text
        never = await exits.post("/v1/subjects/NOBODY/exit-rollback", headers=township, json={"reason": "x"})
        assert never.status_code == 422 and never.json()["code"] == "exit_never_approved", never.text
        clock.advance(timedelta(days=190))

        async def look_back_due():
            return (await exits.get(f"/v1/exits/{exit_id}", headers=county)).json()["look_back"] == "due"
        await eventually(look_back_due)
        assert [e["exit_id"] for e in (await exits.get("/v1/exits?look_back=due", headers=county)).json()["items"]] == [
            exit_id]
        department = system.token("department_system", kind="system", department="civil_affairs", sub="mca")
        new_risk = await system.clients["intake"].post("/v1/warnings", headers=department, json=warning(
            "MCA-77", id_number(1), observed_at=(NOW + timedelta(days=185)).isoformat()))
        assert new_risk.status_code == 201, new_risk.text

        # Incomes are still collected after the exit (the plan is closed); December's fell below the line.
        after_exit_income = await assistance.post("/v1/plans/X1/incomes", headers=helper, json={
            "period": "2026-12", "per_capita_net_income": "520.00"})
        assert after_exit_income.status_code == 201, after_exit_income.text
        closed_measure = await assistance.post("/v1/plans/X1/measures", headers=helper, json={
            "measure_type": "employment", "start_date": "2027-05-01"})
        assert closed_measure.status_code == 409 and closed_measure.json()["code"] == "plan_closed"

        async def clue_mirrored():
            return (await evidence_count(system, "difficulty_evidence", "X1") == 1
                    and await evidence_count(system, "income_evidence", "X1") == 7)
        await eventually(clue_mirrored)
        looked = await exits.post(f"/v1/exits/{exit_id}/look-back", headers=township, json={"note": "新纳入低保"})
        assert looked.status_code == 200, looked.text
        result = looked.json()["look_back_result"]
        assert result["flagged"] and [(f["kind"], f["period"]) for f in result["flags"]] == [
            ("income", "2026-12"), ("clue", None)], result
        assert looked.json()["flagged"] is True
        requested = await exits.post("/v1/subjects/X1/exit-rollback", headers=township,
                                     json={"reason": "a new minimum allowance after the exit"})
        assert requested.status_code == 200 and requested.json()["rollback"] == "pending", requested.text
        rolled = await exits.post("/v1/subjects/X1/exit-rollback/decision", headers=county, json={"decision": "approve"})
        assert rolled.status_code == 200 and rolled.json()["rollback"] == "rolled_back", rolled.text

        async def monitored_again():
            subject = (await screening.get("/v1/subjects/X1", headers=county)).json()
            plan = (await assistance.get("/v1/plans/X1", headers=county)).json()
            return subject["status"] == "monitored" and plan["status"] == "open"
        await eventually(monitored_again)
        twice = await exits.post("/v1/subjects/X1/exit-rollback", headers=township, json={"reason": "again"})
        assert twice.status_code == 422 and twice.json()["code"] == "exit_never_approved", twice.text


async def test_an_exit_blocked_by_each_blocker_in_turn_names_only_that_one(run_services):
    """Seven households, each sound but for one defect: each exit is rejected by its own blocker alone."""
    async with run_services(*SERVICES, clock=FixedClock(NOW), scheduler_seconds=0.2) as system:
        exits, assistance = system.clients["exit_review"], system.clients["assistance"]
        county = system.token("county_officer", "410721", sub="county-1")
        helper = await a_helper(system, county)
        cadre, team = system.token("village_cadre", VILLAGE, sub="cadre-1"), system.token("work_team", VILLAGE, sub="t-1")
        defects = {  # blocker -> (household, setting up, the proposal's changes)
            "income_not_stable": ("B1", {"low_income_month": "2026-08"}, {}),
            "guarantees_unresolved": ("B2", {}, {"housing_safe": False}),
            "measures_not_carried_out": ("B3", {}, {}),
            "household_consent_insufficient": ("B4", {}, {"satisfaction": "dissatisfied"}),
            "sudden_difficulty_unresolved": ("B5", {}, {}),
            "monitoring_lapsed": ("B6", {"unvisited_month": "2026-08"}, {}),
            "procedure_irregular": ("B7", {}, {"visited_on": "2026-10-10"}),
        }
        heads = {}
        for n, (blocker, (household_id, setup, _)) in enumerate(defects.items(), start=1):
            heads[household_id] = await a_subject_with_six_sound_months(system, household_id, n, helper, **setup)
        # A measure left active past its planned end (B3); a new risk in the window, unanswered since (B5).
        late = await assistance.post("/v1/plans/B3/measures", headers=helper, json={
            "measure_type": "skills_training", "start_date": "2026-07-01", "planned_end": "2026-10-31"})
        assert late.status_code == 201, late.text
        mca = system.token("department_system", kind="system", department="civil_affairs", sub="mca")
        risk = await system.clients["intake"].post("/v1/warnings", headers=mca, json=warning(
            "MCA-B5", id_number(5), observed_at="2026-10-05T09:00:00+08:00"))
        assert risk.status_code == 201, risk.text

        async def evidence_in():
            return (await evidence_count(system, "measure_evidence", "B3") == 2
                    and await evidence_count(system, "difficulty_evidence", "B5") == 2)  # the clue, the new risk
        await eventually(evidence_in)

        for blocker, (household_id, _, changes) in defects.items():
            proposed = await exits.post("/v1/exits", headers=cadre, json={
                **SOUND, **changes, "household_id": household_id, "consent": {"household": True, "village_committee": True},
                "household_member_id": heads[household_id]})
            assert proposed.status_code == 201, proposed.text
            exit_id = proposed.json()["exit_id"]
            assert (await exits.post(f"/v1/exits/{exit_id}/consents", headers=team,
                                     json={"party": "work_team"})).status_code == 200
            assessed = (await exits.post(f"/v1/exits/{exit_id}/consents", headers=helper, json={"party": "helper"})).json()
            failing = {v["blocker"]: v for v in assessed["assessment"]["verdicts"] if v["outcome"] != "pass"}
            assert list(failing) == [blocker], (household_id, failing)
            assert (assessed["step"], assessed["outcome"], assessed["blockers"]) == ("closed", "rejected", [blocker])
            assert failing[blocker]["evidence"], f"{blocker} names the facts it failed on"
            rejected = assessed["history"][-1]
            assert rejected["event_type"] == "ExitRejected" and rejected["payload"]["blockers"] == [blocker]


async def test_proposals_sent_at_once_open_one_case(run_services):
    """A household's exit cases are one stream: of proposals racing each other one opens the case, the
    others find it open (409), and the store holds one ExitProposed."""
    clock = FixedClock(NOW)
    async with run_services(*SERVICES, clock=clock, scheduler_seconds=0.2) as system:
        county = system.token("county_officer", "410721", sub="county-1")
        assert (await system.clients["intake"].post("/v1/households", headers=county,
                                                    json=household("R1", 1))).status_code == 201
        await identify(system, "R1", VILLAGE, RiskType.ILLNESS)

        async def known():
            return await evidence_count(system, "subjects", "R1") == 1
        await eventually(known)
        cadre = system.token("village_cadre", VILLAGE, sub="cadre-1")
        answers = await asyncio.gather(*(system.clients["exit_review"].post(
            "/v1/exits", headers=cadre, json={**SOUND, "household_id": "R1", "minutes": f"proposal {n}"})
            for n in range(8)))
        assert sorted(a.status_code for a in answers) == [201] + [409] * 7, [a.text for a in answers]
        assert {a.json()["code"] for a in answers if a.status_code == 409} == {"exit_already_open"}
        async with system.context("exit_review").sessions() as session:
            proposed = await session.scalar(sa.text("select count(*) from events where event_type = 'ExitProposed'"))
        assert proposed == 1

        # The four parties have ten days (exit_step_due_days); past them the step is overdue, reported once.
        [case] = (await system.clients["exit_review"].get("/v1/exits", headers=county)).json()["items"]
        assert (case["step"], case["due_date"]) == ("exit_consent", "2026-11-30")
        clock.advance(timedelta(days=11))

        async def reported():
            async with system.context("exit_review").sessions() as session:
                return await session.scalar(sa.text("select count(*) from events where event_type = 'ExitStepOverdue'"))
        await eventually(reported)
        await asyncio.sleep(1)  # several more passes of the scheduler
        assert await reported() == 1
        overdue = (await system.clients["exit_review"].get("/v1/exits?overdue=true", headers=county)).json()["items"]
        assert [c["exit_id"] for c in overdue] == [case["exit_id"]]
