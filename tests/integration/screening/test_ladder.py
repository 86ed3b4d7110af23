"""The identification ladder through HTTP against the real store and broker: clues from intake open
cases on screening, which walk verification → village → notice → township → county."""
from datetime import datetime, timedelta, timezone

import pytest

from runtime.clock import FixedClock
from tests.conftest import eventually
from tests.factories import VILLAGE, household, id_number, warning

pytestmark = pytest.mark.integration
START = datetime(2026, 11, 20, 1, 0, tzinfo=timezone.utc)
POOR = {"per_capita_net_income": "6200.00", "rigid_expenditure": "0", "education_ok": True, "medical_ok": True,
        "housing_safe": True, "water_safe": True}


async def test_ladders_end_in_approval_rejection_return_and_upheld_objection(run_services):
    clock = FixedClock(START)
    async with run_services("intake", "screening", clock=clock, scheduler_seconds=0.2) as system:
        intake, screening = system.clients["intake"], system.clients["screening"]
        county = system.token("county_officer", "410721", sub="county-1")
        township = system.token("township_officer", "410721001", sub="town-1")
        cadre = system.token("village_cadre", VILLAGE, sub="cadre-1")
        worker = system.token("grid_worker", VILLAGE, sub="gw-1")
        department = system.token("department_system", kind="system", department="civil_affairs", sub="mca")
        names = ("approved", "rejected", "returned", "objected")
        for n, name in enumerate(names, start=1):
            assert (await intake.post("/v1/households", headers=county, json=household(name, n))).status_code == 201
            r = await intake.post("/v1/warnings", headers=department, json=warning(f"L-{n}", id_number(n)))
            assert r.status_code == 201, r.text

        async def all_cases():
            items = (await screening.get("/v1/cases", headers=county)).json()["items"]
            return {c["household_id"]: c["case_id"] for c in items} if len(items) == 4 else None

        case = await eventually(all_cases)

        async def post(who, name, path, body, expect=200):
            r = await screening.post(f"/v1/cases/{case[name]}/{path}", headers=who, json=body)
            assert r.status_code == expect, r.text
            return r.json()

        # Out of order and wrong role are refused, naming what the case expects.
        early = await post(county, "approved", "county-decision", {"decision": "reject", "reason": "x"}, expect=409)
        assert early["expected_step"] == "verification_visit" and "verification_visit" in early["detail"]
        wrong = await post(county, "approved", "verification", POOR, expect=403)
        assert wrong["allowed_roles"] == ["grid_worker", "village_cadre", "work_team"]
        other_village = system.token("grid_worker", "410721001002", sub="gw-9")
        assert (await screening.post(f"/v1/cases/{case['approved']}/verification", headers=other_village,
                                     json=POOR)).status_code == 403

        for name in names:
            after = await post(worker, name, "verification", POOR)
            assert after["step"] == "village_deliberation"
            after = await post(cadre, name, "village-deliberation", {"decision": "propose", "attendees": 12})
            assert after["step"] == "public_notice" and after["notice_ends"] == "2026-11-25"

        objection = await post(cadre, "objected", "objections", {"by": "a neighbour", "reason": "owns a shop"}, expect=201)
        back = await post(township, "objected", f"objections/{objection['objection_id']}/resolution",
                          {"upheld": True, "note": "the shop is his"})
        assert back["step"] == "village_deliberation"

        clock.advance(timedelta(days=5))  # the scheduler closes the three running notices

        async def notices_closed():
            items = (await screening.get("/v1/cases", headers=county)).json()["items"]
            return all(c["step"] == "township_review" for c in items if c["household_id"] != "objected")

        await eventually(notices_closed)
        returned = await post(township, "returned", "township-review", {"decision": "return", "comment": "no income proof"})
        assert returned["step"] == "verification_visit"
        for name in ("approved", "rejected"):
            assert (await post(township, name, "township-review", {"decision": "pass"}))["step"] == "county_decision"
        approved = await post(county, "approved", "county-decision", {
            "decision": "approve", "category": "sudden_hardship", "risk_types": ["income_drop"]})
        assert (approved["status"], approved["outcome"]) == ("closed", "identified")
        rejected = await post(county, "rejected", "county-decision", {"decision": "reject", "reason": "income verified above the line"})
        assert (rejected["status"], rejected["outcome"]) == ("closed", "rejected")
        assert (await post(county, "rejected", "county-decision", {"decision": "reject", "reason": "again"}, expect=409))

        subject = (await screening.get("/v1/subjects/approved", headers=cadre)).json()
        assert (subject["category"], subject["risk_types"], subject["status"]) == ("sudden_hardship", ["income_drop"], "monitored")
        assert (await screening.get("/v1/subjects/rejected", headers=county)).status_code == 404
        assert [s["household_id"] for s in (await screening.get("/v1/subjects", headers=county)).json()["items"]] == ["approved"]

        history = (await screening.get(f"/v1/cases/{case['approved']}", headers=county)).json()["history"]
        assert [h["event_type"] for h in history] == [
            "VerificationCaseOpened", "HouseholdVerified", "VillageDeliberated", "PublicNoticePosted",
            "PublicNoticeClosed", "TownshipReviewed", "CountyDecided", "SubjectIdentified"]
        verified = history[1]
        assert verified["actor"]["id"] == "gw-1" and verified["payload"]["eligible"] is True
        assert verified["payload"]["reasons"] == ["per-capita net income 6200.00 is under the monitoring line 8000"]
        assert history[4]["actor"]["id"] == "screening-scheduler"
        assert history[-1]["actor"]["role"] == "county_officer"

        # A new clue about a monitored subject is a new risk of the subject, not a new case.
        r = await intake.post("/v1/warnings", headers=system.token("department_system", kind="system", sub="hr",
                                                                   department="human_resources"),
                              json=warning("HR-1", id_number(1), department="human_resources", indicator="unemployment"))
        assert r.status_code == 201, r.text

        async def risk_added():
            subject = (await screening.get("/v1/subjects/approved", headers=county)).json()
            return subject if "unstable_employment" in subject["risk_types"] else None

        subject = await eventually(risk_added)
        assert sorted(subject["risk_types"]) == ["income_drop", "unstable_employment"]
        open_cases = (await screening.get("/v1/cases?status=open", headers=county)).json()["items"]
        assert "approved" not in {c["household_id"] for c in open_cases}


JANUARY = datetime(2026, 1, 10, 2, 0, tzinfo=timezone.utc)  # the demo lines: 410721 7700 in 2025, 8000 in 2026


async def open_cases(system, *names: str) -> dict[str, str]:
    """A case for each household `names` (registered in VILLAGE), from a new-allowance warning of January."""
    intake, screening = system.clients["intake"], system.clients["screening"]
    county = system.token("county_officer", "410721", sub="county-1")
    department = system.token("department_system", kind="system", department="civil_affairs", sub="mca")
    for n, name in enumerate(names, start=1):
        assert (await intake.post("/v1/households", headers=county, json=household(name, n))).status_code == 201
        r = await intake.post("/v1/warnings", headers=department,
                              json=warning(f"J-{n}", id_number(n), observed_at="2026-01-05T09:00:00+08:00"))
        assert r.status_code == 201, r.text

    async def all_cases():
        items = (await screening.get("/v1/cases", headers=county)).json()["items"]
        return {c["household_id"]: c["case_id"] for c in items} if len(items) == len(names) else None

    return await eventually(all_cases)


async def test_findings_about_last_year_are_held_to_last_years_line_and_the_answer_says_so(run_services):
    """Issue 14: findings about 2025 recorded in January 2026 use 2025's line; the answer carries the
    recommendation, its reasons (codes and texts) and the line, as the recorded event does."""
    async with run_services("intake", "screening", clock=FixedClock(JANUARY)) as system:
        screening = system.clients["screening"]
        county = system.token("county_officer", "410721", sub="county-1")
        worker = system.token("grid_worker", VILLAGE, sub="gw-1")
        case = await open_cases(system, "last_year", "this_year")
        findings = {**POOR, "per_capita_net_income": "7800.00"}  # above 2025's line, under 2026's

        r = await screening.post(f"/v1/cases/{case['last_year']}/verification", headers=worker,
                                 json={**findings, "income_year": 2025})
        assert r.status_code == 200, r.text
        answer = r.json()
        assert (answer["step"], answer["recommendation"]) == ("village_deliberation", "not_eligible")
        assert answer["monitoring_line"] == {"year": 2025, "yuan": "7700"}
        assert [reason["code"] for reason in answer["reasons"]] == ["above_line_and_assured"]
        assert "7800.00 is at or above the monitoring line 7700" in answer["reasons"][0]["text"]
        history = (await screening.get(f"/v1/cases/{case['last_year']}", headers=county)).json()["history"]
        [verified] = [h["payload"] for h in history if h["event_type"] == "HouseholdVerified"]
        assert (verified["income_year"], verified["monitoring_line"], verified["eligible"]) == (2025, "7700", False)
        assert verified["reasons"] == [reason["text"] for reason in answer["reasons"]]

        for year, rule in ((2022, ("no monitoring line", "add a row", "410721001001,2022,<yuan>")),
                           (2027, ("must not be after the current year 2026",))):
            refused = await screening.post(f"/v1/cases/{case['this_year']}/verification", headers=worker,
                                           json={**findings, "income_year": year})
            assert refused.status_code == 422, refused.text
            [error] = refused.json()["errors"]
            assert error["field"] == "income_year" and all(words in error["message"] for words in rule), error

        # Not stated: the year of the visit, 2026, whose line the same income is under.
        r = await screening.post(f"/v1/cases/{case['this_year']}/verification", headers=worker, json=findings)
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["recommendation"] == "eligible" and answer["monitoring_line"] == {"year": 2026, "yuan": "8000"}
        assert answer["reasons"] == [{"code": "income_under_line",
                                      "text": "per-capita net income 7800.00 is under the monitoring line 8000",
                                      "text_zh": "家庭年人均纯收入低于监测线"}]


async def test_the_overdue_case_list_as_of_a_past_or_a_future_date(run_services):
    """Issue 14: ?overdue=true&as_of= judges the open cases' due dates on another date."""
    clock = FixedClock(JANUARY)
    async with run_services("intake", "screening", clock=clock) as system:
        screening = system.clients["screening"]
        county = system.token("county_officer", "410721", sub="county-1")
        case = await open_cases(system, "waiting")
        detail = (await screening.get(f"/v1/cases/{case['waiting']}", headers=county)).json()
        assert detail["due_date"] == "2026-01-17"  # the visit's seven days

        async def overdue(**params):
            r = await screening.get("/v1/cases", headers=county, params={"overdue": "true", **params})
            assert r.status_code == 200, r.text
            return [c["household_id"] for c in r.json()["items"]]

        assert await overdue() == []
        assert await overdue(as_of="2026-01-17") == []  # due that day, not yet overdue
        assert await overdue(as_of="2026-01-18") == ["waiting"]
        assert await overdue(as_of="2026-01-18T07:00:00+08:00") == ["waiting"]  # the date as written
        clock.advance(timedelta(days=10))
        assert await overdue() == ["waiting"]
        assert await overdue(as_of="2026-01-12") == []  # as of a past date it was not
        alone = await screening.get("/v1/cases", headers=county, params={"as_of": "2026-01-18"})
        assert alone.status_code == 422 and alone.json()["errors"][0]["field"] == "as_of"
