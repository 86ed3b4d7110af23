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
