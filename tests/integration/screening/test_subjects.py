"""Subjects after identification, through HTTP and the real broker: removal, the protected mark,
exit and rollback reported by exit_review, re-identification, the out-of-loop check and overdue steps."""
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from contracts.envelope import Actor
from contracts.exit_review import ExitApproved, ExitRolledBack
from runtime.clock import FixedClock
from runtime.eventstore import EventMetadata, NewEvent
from runtime.service import unit_of_work
from tests.conftest import eventually
from tests.factories import VILLAGE, household, id_number, warning

pytestmark = pytest.mark.integration
START = datetime(2026, 11, 20, 1, 0, tzinfo=timezone.utc)
POOR = {"per_capita_net_income": "5000.00", "education_ok": True, "medical_ok": True, "housing_safe": True,
        "water_safe": True}
NOBODY_WORKS = [
    {"id_number": id_number(20, birth="19400101"), "name": "王老", "relation": "head", "labor_capacity": "none"},
    {"id_number": id_number(21, birth="19420101"), "name": "王婆", "relation": "spouse", "labor_capacity": "none",
     "disabled": True},
]


async def test_removal_protection_exit_rollback_out_of_loop_and_overdue(run_services):
    clock = FixedClock(START)
    async with run_services("intake", "screening", "exit_review", clock=clock, scheduler_seconds=0.2) as system:
        intake, screening = system.clients["intake"], system.clients["screening"]
        county = system.token("county_officer", "410721", sub="county-1")
        township = system.token("township_officer", "410721001", sub="town-1")
        cadre = system.token("village_cadre", VILLAGE, sub="cadre-1")
        worker = system.token("grid_worker", VILLAGE, sub="gw-1")
        hr = system.token("department_system", kind="system", department="human_resources", sub="hr")
        mca = system.token("department_system", kind="system", department="civil_affairs", sub="mca")

        bodies = {"works": household("works", 1), "frail": household("frail", 2, members=NOBODY_WORKS),
                  "outside": household("outside", 3), "late": household("late", 4)}
        for body in bodies.values():
            assert (await intake.post("/v1/households", headers=county, json=body)).status_code == 201
        sent = [(hr, warning("HR-1", id_number(1), "human_resources", "unemployment")),
                (mca, warning("MCA-2", NOBODY_WORKS[0]["id_number"])),  # new_dibao: watched for 体外循环
                (mca, warning("MCA-3", id_number(3))),
                (hr, warning("HR-4", id_number(4), "human_resources", "unemployment"))]
        for token, body in sent:
            assert (await intake.post("/v1/warnings", headers=token, json=body)).status_code == 201

        async def open_cases():
            items = (await screening.get("/v1/cases?status=open", headers=county)).json()["items"]
            return {c["household_id"]: c["case_id"] for c in items} if len(items) == 4 else None

        case = await eventually(open_cases)

        async def post(who, path, body, expect=200):
            r = await screening.post(path, headers=who, json=body)
            assert r.status_code == expect, r.text
            return r.json()

        for name in ("works", "frail", "outside"):
            await post(worker, f"/v1/cases/{case[name]}/verification", POOR)
        await post(cadre, f"/v1/cases/{case['outside']}/village-deliberation",
                   {"decision": "not_propose", "attendees": 9, "minutes": "income from migrant work not declared"})
        for name in ("works", "frail"):
            await post(cadre, f"/v1/cases/{case[name]}/village-deliberation", {"decision": "propose", "attendees": 9})
        clock.advance(timedelta(days=5))

        async def at_township():
            items = (await screening.get("/v1/cases?status=open", headers=county)).json()["items"]
            return sum(c["step"] == "township_review" for c in items) == 2

        await eventually(at_township)
        for name in ("works", "frail"):
            await post(township, f"/v1/cases/{case[name]}/township-review", {"decision": "pass"})
            await post(county, f"/v1/cases/{case[name]}/county-decision",
                       {"decision": "approve", "category": "marginal_at_risk", "risk_types": ["income_drop"]})

        # The protected mark: only where no member can work; village proposes, township confirms.
        refused = await post(cadre, "/v1/subjects/works/protection", {"note": "old"}, expect=422)
        assert "labour capacity" in refused["detail"]
        await post(township, "/v1/subjects/frail/protection", {}, expect=403)
        assert (await post(cadre, "/v1/subjects/frail/protection", {"note": "both over 80"}))["protection_pending"]
        protected = await post(township, "/v1/subjects/frail/protection/decision", {"decision": "confirm"})
        assert protected["protected"] and not protected["protection_pending"]

        # Removal 清退: township proposes, county approves; nothing to decide before a proposal.
        await post(county, "/v1/subjects/works/removal/decision", {"decision": "approve"}, expect=409)
        await post(cadre, "/v1/subjects/works/removal", {"reason": "x"}, expect=403)
        await post(township, "/v1/subjects/works/removal", {"reason": "a salaried member was not declared"})
        removed = await post(county, "/v1/subjects/works/removal/decision", {"decision": "approve", "comment": "checked"})
        assert removed["status"] == "removed"

        # exit_review reports an exit; a new risk after the exit opens a new case; a rollback monitors again.
        exit_ctx = system.context("exit_review")
        meta = EventMetadata(actor=Actor(kind="staff", id="county-1", role="county_officer", region="410721"))

        async def from_exit_review(event):
            async with unit_of_work(exit_ctx, meta) as uow:
                await uow.append(f"exit-{event.exit_id}-{event.event_type}", 0, [NewEvent(event, household_id="frail",
                                                                                         region_code=VILLAGE)])

        async def subject_status(name):
            return (await screening.get(f"/v1/subjects/{name}", headers=county)).json()["status"]

        await from_exit_review(ExitApproved(exit_id="x1", household_id="frail"))
        await eventually(lambda: _equals(subject_status("frail"), "risk_eliminated"))
        assert (await intake.post("/v1/warnings", headers=hr, json=warning(
            "HR-5", NOBODY_WORKS[0]["id_number"], "human_resources", "unemployment"))).status_code == 201

        async def new_case():
            items = (await screening.get("/v1/cases?status=open", headers=county)).json()["items"]
            return next((c for c in items if c["household_id"] == "frail"), None)

        reopened = await eventually(new_case)
        assert reopened["case_id"] != case["frail"]
        await from_exit_review(ExitRolledBack(exit_id="x1", household_id="frail", reason="income fell again"))
        await eventually(lambda: _equals(subject_status("frail"), "monitored"))

        # The new case is walked to a second identification: the subject now stands on the new case.
        await post(worker, f"/v1/cases/{reopened['case_id']}/verification", POOR)
        await post(cadre, f"/v1/cases/{reopened['case_id']}/village-deliberation", {"decision": "propose", "attendees": 7})
        clock.advance(timedelta(days=5))

        async def reopened_at_township():
            detail = (await screening.get(f"/v1/cases/{reopened['case_id']}", headers=county)).json()
            return detail["step"] == "township_review"

        await eventually(reopened_at_township)
        await post(township, f"/v1/cases/{reopened['case_id']}/township-review", {"decision": "pass"})
        await post(county, f"/v1/cases/{reopened['case_id']}/county-decision",
                   {"decision": "approve", "category": "sudden_hardship", "risk_types": ["unstable_employment"]})
        again = (await screening.get("/v1/subjects/frail", headers=county)).json()
        assert (again["case_id"], again["category"], again["status"]) == (reopened["case_id"], "sudden_hardship", "monitored")

        # A month on: 'outside' got a new minimum allowance but is neither a subject nor in an open case.
        clock.advance(timedelta(days=2))

        async def issues():
            return (await screening.get("/v1/quality-issues?region=410721001", headers=county)).json()["items"]

        [issue] = await eventually(issues)
        assert (issue["household_id"], issue["kind"]) == ("outside", "out_of_loop")
        assert "new_dibao" in issue["detail"]

        # 'late' was never verified: its first step is overdue, listed and published once.
        overdue = (await screening.get("/v1/cases?overdue=true", headers=county)).json()["items"]
        assert [c["household_id"] for c in overdue] == ["late"]

        async def overdue_events():
            async with system.context("screening").sessions() as session:
                return (await session.execute(sa.text(
                    "select payload->>'household_id', payload->>'step' from events where event_type = 'CaseStepOverdue'"
                ))).all()

        assert await eventually(overdue_events) == [("late", "verification_visit")]
        clock.advance(timedelta(hours=1))
        await eventually(lambda: _after_rounds(overdue_events))
        assert await overdue_events() == [("late", "verification_visit")], "published once per step and due date"


async def _equals(awaitable, expected):
    return await awaitable == expected


async def _after_rounds(check, rounds: int = 3):
    import asyncio
    await asyncio.sleep(0.2 * rounds)
    return await check() is not None
