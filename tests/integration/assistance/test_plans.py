"""assistance over HTTP against the real store and broker (issue 16): a subject identified opens its
plan with a helper in one consumer pass; measures answer its risks and the plan rules' gaps open and
close; a new risk reopens the check; an approved exit closes the plan and a rollback reopens it; a
helper acts on their own households only; bad input is refused naming the field. run_services ends by
rebuilding the plans from assistance's events and the helpers and household facts from the topics."""
import json
from datetime import datetime, timezone

import pytest

from contracts.envelope import Actor
from contracts.exit_review import ExitApproved, ExitRolledBack
from contracts.screening import SubjectIdentified, SubjectRiskAdded
from contracts.vocabulary import RiskType
from runtime.clock import FixedClock
from runtime.eventstore import EventMetadata, NewEvent
from runtime.service import unit_of_work
from tests.conftest import eventually
from tests.factories import VILLAGE, household

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)
OTHER_VILLAGE_SAME_TOWNSHIP = "410721001002"
OTHER_TOWNSHIP_VILLAGE = "410721002001"
SERVICES = ("intake", "screening", "exit_review", "notifier", "assistance")


def _by(service: str) -> EventMetadata:
    return EventMetadata(actor=Actor(kind="system", id=f"fangpin-{service}", role="service"))


async def identify(system, household_id: str, region: str, *risks: RiskType, category: str = "sudden_hardship") -> None:
    """screening's decision, as its store records it (the ladder itself is screening's tests')."""
    async with unit_of_work(system.context("screening"), _by("screening")) as uow:
        await uow.append(f"case-c-{household_id}", 0, [NewEvent(SubjectIdentified(
            case_id=f"c-{household_id}", household_id=household_id, step="closed", category=category,
            risk_types=list(risks)), household_id=household_id, region_code=region)])


async def screening_says(system, event, household_id: str, stream: str, region: str = VILLAGE) -> None:
    async with unit_of_work(system.context("screening"), _by("screening")) as uow:
        await uow.append(stream, 0, [NewEvent(event, household_id=household_id, region_code=region)])


async def exit_review_says(system, event, region: str = VILLAGE) -> None:
    async with unit_of_work(system.context("exit_review"), _by("exit_review")) as uow:
        await uow.append(f"exit-{event.exit_id}-{event.event_type}", 0, [
            NewEvent(event, household_id=event.household_id, region_code=region)])


async def test_a_subject_gets_a_plan_and_a_helper_and_the_rules_follow_its_measures(run_services):
    async with run_services(*SERVICES, clock=FixedClock(NOW), plan_check_seconds=0.3) as system:
        assistance, notifier, intake = system.clients["assistance"], system.clients["notifier"], system.clients["intake"]
        county = system.token("county_officer", "410721", sub="county-1")
        for staff_id, region in (("h-village", VILLAGE), ("h-township", "410721001")):
            staff = {"staff_id": staff_id, "name": "帮扶人", "role": "helper", "region_code": region}
            assert (await notifier.post("/v1/staff", headers=county, json=staff)).status_code == 201
        for n, (hid, region) in enumerate((("P1", VILLAGE), ("P2", OTHER_VILLAGE_SAME_TOWNSHIP),
                                            ("P3", OTHER_TOWNSHIP_VILLAGE)), start=1):
            answer = await intake.post("/v1/households", headers=county, json=household(hid, n, region_code=region))
            assert answer.status_code == 201, answer.text

        async def plan(hid: str, expect=200, who=county):
            answer = await assistance.get(f"/v1/plans/{hid}", headers=who)
            assert answer.status_code == expect, answer.text
            return answer.json()

        async def gaps(hid: str):
            return sorted((g["gap"], g["risk_type"]) for g in (await plan(hid))["gaps"])

        async def helpers_known():  # the directory mirrored before the subjects arrive
            async with system.context("assistance").sessions() as session:
                from sqlalchemy import text
                return await session.scalar(text("select count(*) from helpers where active")) == 2
        await eventually(helpers_known)
        await identify(system, "P1", VILLAGE, RiskType.ILLNESS, RiskType.INCOME_DROP)
        await identify(system, "P2", OTHER_VILLAGE_SAME_TOWNSHIP, RiskType.HOUSING)
        await identify(system, "P3", OTHER_TOWNSHIP_VILLAGE, RiskType.WATER)

        async def planned():
            answer = await assistance.get("/v1/plans/P3", headers=county)
            return answer.status_code == 200 and answer.json()
        await eventually(planned)
        p1, p2, p3 = await plan("P1"), await plan("P2"), await plan("P3")
        assert (p1["helper_id"], p2["helper_id"], p3["helper_id"], p3["unassigned"]) == ("h-village", "h-township", None, True)
        unassigned = (await assistance.get("/v1/plans?unassigned=true", headers=county)).json()["items"]
        assert [p["household_id"] for p in unassigned] == ["P3"]
        assert p1["status"] == "open" and p1["identified_on"] == "2026-11-20"

        # The head can work: allowances alone are a gap (once intake's household is mirrored: the clock's check).
        await eventually(lambda: _has(gaps("P1"), [("allowance_only", None), ("risk_unanswered", "illness"),
                                                   ("risk_unanswered", "income_drop")]))
        helper = system.token("helper", VILLAGE, sub="h-village")
        allowance = await assistance.post("/v1/plans/P1/measures", headers=helper, json={
            "measure_type": "minimum_allowance", "start_date": "2026-11-20", "amount": "650.00"})
        assert allowance.status_code == 201, allowance.text
        assert sorted((g["gap"], g["risk_type"]) for g in allowance.json()["plan"]["gaps"]) == [("allowance_only", None)]
        job = await assistance.post("/v1/plans/P1/measures", headers=helper, json={
            "measure_type": "employment", "start_date": "2026-11-21", "planned_end": "2027-06-30"})
        assert job.status_code == 201 and job.json()["plan"]["gaps"] == [], job.text

        # A helper acts on their own households only; bad input names its field.
        other = system.token("helper", "410721001", sub="h-township")
        refused = await assistance.post("/v1/plans/P1/measures", headers=other, json={
            "measure_type": "employment", "start_date": "2026-11-21"})
        assert refused.status_code == 403 and refused.json()["code"] == "not_your_household"
        assert (await plan("P1", 403, other))["code"] == "not_your_household"
        for body, field, code in (
                ({"measure_type": "lottery", "start_date": "2026-11-21"}, "measure_type", "measure_kind_unknown"),
                ({"measure_type": "employment", "start_date": "2026-11-21", "planned_end": "2026-11-01"}, "planned_end",
                 "measure_ends_before_start"),
                ({"measure_type": "employment", "start_date": "2026-11-21", "amount": "-5"}, "amount", "amount_negative")):
            bad = await assistance.post("/v1/plans/P1/measures", headers=helper, json=body)
            assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == field, bad.text
            assert bad.json()["errors"][0]["code"] == code, bad.text
        future = await assistance.post("/v1/plans/P1/incomes", headers=helper, json={
            "period": "2027-Q1", "per_capita_net_income": "7000"})
        assert future.status_code == 422 and future.json()["errors"][0]["field"] == "period", future.text
        income = await assistance.post("/v1/plans/P1/incomes", headers=helper, json={
            "period": "2026-Q4", "per_capita_net_income": "7000.00", "sources": [{"source": "wages", "amount": "5000"}]})
        assert income.status_code == 201 and income.json()["incomes"][0]["period"] == "2026-Q4", income.text
        assert len((await plan("P1"))["measures"]) == 2, "refused commands stored nothing"

        # Incomes in bulk (收入信息采集): each row recorded once, a repeat unchanged, the rest named.
        rows = [{"household_id": "P1", "period": "2026-10", "per_capita_net_income": "650.00"},
                {"household_id": "P1", "period": "2026-10", "per_capita_net_income": "650.00"},
                {"household_id": "P2", "period": "2026-10", "per_capita_net_income": "700.00"},
                {"household_id": "P1", "period": "2026-12", "per_capita_net_income": "700.00"},
                {"household_id": "NOPE", "period": "2026-10", "per_capita_net_income": "700.00"},
                {"household_id": "P1", "period": "2026-13", "per_capita_net_income": "700.00"}]
        ndjson = "\n".join(json.dumps(row) for row in rows) + "\n"
        imported = await assistance.post("/v1/incomes:batch", content=ndjson,
                                         headers={**helper, "Content-Type": "application/x-ndjson"})
        assert imported.status_code == 200, imported.text
        result = imported.json()
        assert (result["rows"], result["recorded"], result["unchanged"], result["invalid"]) == (6, 1, 1, 4), result
        assert [(r["line"], r["field"], r["code"]) for r in result["rejected"]] == [
            (3, "household_id", "region_outside_scope"), (4, "period", "income_period_in_future"),
            (5, "household_id", "plan_not_found"), (6, "period", "string_pattern_mismatch")], result
        again = await assistance.post("/v1/incomes:batch", content=ndjson,
                                      headers={**helper, "Content-Type": "application/x-ndjson"})
        assert (again.json()["recorded"], again.json()["unchanged"]) == (0, 2), "a file sent twice changes nothing"
        assert [i["period"] for i in (await plan("P1"))["incomes"]] == ["2026-10", "2026-Q4"]

        # Progress: completed once; a second completion is refused.
        measure_id = allowance.json()["measure_id"]
        done = await assistance.post(f"/v1/measures/{measure_id}/progress", headers=helper, json={
            "status": "completed", "note": "granted from December"})
        assert done.status_code == 200 and [m["status"] for m in done.json()["measures"]] == ["completed", "active"]
        again = await assistance.post(f"/v1/measures/{measure_id}/progress", headers=helper, json={"status": "completed"})
        assert again.status_code == 409 and again.json()["code"] == "measure_not_active"

        # A new risk reopens the check; an approved exit closes the plan, a rollback reopens it.
        await screening_says(system, SubjectRiskAdded(household_id="P1", clue_id="clue-h", risk_types=[RiskType.HOUSING]),
                             "P1", "subject-P1")
        await eventually(lambda: _has(gaps("P1"), [("risk_unanswered", "housing")]))
        await exit_review_says(system, ExitApproved(exit_id="x1", household_id="P1"))
        await eventually(lambda: _is(plan("P1"), "status", "closed"))
        closed = await assistance.post("/v1/plans/P1/measures", headers=helper, json={
            "measure_type": "housing_renovation", "start_date": "2026-11-21"})
        assert closed.status_code == 409 and closed.json()["code"] == "plan_closed"
        await exit_review_says(system, ExitRolledBack(exit_id="x1", household_id="P1", reason="income fell"))
        await eventually(lambda: _is(plan("P1"), "status", "open"))
        reopened = await plan("P1")
        assert reopened["helper_id"] == "h-village" and len(reopened["measures"]) == 2, "reopened with its history"
        history = await assistance.get("/v1/plans/P1/history", headers=helper)
        assert history.status_code == 200, history.text
        kinds = [entry["event_type"] for entry in history.json()]
        assert kinds[:2] == ["PlanOpened", "HelperAssigned"] and kinds.count("PlanOpened") == 2, kinds
        reopened_at = len(kinds) - 1 - kinds[::-1].index("PlanOpened")
        assert kinds.index("IncomeRecorded") < kinds.index("MeasureCompleted") < kinds.index("PlanClosed") < reopened_at
        assert {"PlanGapFound", "PlanGapClosed", "PlanRiskAdded"} <= set(kinds), kinds
        added = next(e for e in history.json() if e["event_type"] == "PlanRiskAdded")
        assert added["payload"]["risk_types"] == ["housing"] and added["actor"]["kind"] == "system", added
        assert (await assistance.get("/v1/plans/P1/history", headers=other)).status_code == 403
        assert (await assistance.get("/v1/plans/NOPE/history", headers=county)).json()["code"] == "plan_not_found"

        # Helper visits: the overdue list follows them; a visit in the future is refused.
        overdue = (await assistance.get("/v1/helper-visits/overdue", headers=helper)).json()["items"]
        assert [(o["household_id"], o["last_visited_on"]) for o in overdue] == [("P1", None)]
        visit = await assistance.post("/v1/plans/P1/visits", headers=helper, json={
            "visited_on": "2026-11-19", "findings": "the head started work at the cooperative"})
        assert visit.status_code == 201 and visit.json()["plan"]["visits"][0]["visited_on"] == "2026-11-19", visit.text
        assert (await assistance.get("/v1/helper-visits/overdue", headers=helper)).json()["items"] == []
        tomorrow = await assistance.post("/v1/plans/P1/visits", headers=helper, json={"visited_on": "2026-11-21"})
        assert tomorrow.status_code == 422 and tomorrow.json()["errors"][0]["field"] == "visited_on", tomorrow.text
        assert (await assistance.post("/v1/plans/P1/visits", headers=county, json={"visited_on": "2026-11-19"})
                ).status_code == 403, "visits are the helper's"

        loads = (await assistance.get("/v1/helpers", headers=county)).json()["items"]
        assert [(h["helper_id"], h["households"], h["over_limit"]) for h in loads] == [
            ("h-township", 1, False), ("h-village", 1, False)]

        # Lists: by region with gaps, and a helper's own.
        with_gaps = (await assistance.get("/v1/plans?gaps=true", headers=county)).json()["items"]
        assert {p["household_id"] for p in with_gaps} >= {"P1", "P2", "P3"}
        mine = (await assistance.get("/v1/plans", headers=helper)).json()["items"]
        assert [p["household_id"] for p in mine] == ["P1"]
        # A department confirms its deliveries in bulk: once each, a repeat is a duplicate, the rest named.
        employment = next(m["measure_id"] for m in reopened["measures"] if m["kind"] == "employment")
        hr = system.token("department_system", kind="system", department="human_resources", sub="hr-system")
        lines = [{"measure_id": employment, "completed_on": "2026-11-19", "delivered": "placed at the cooperative",
                  "source_record_id": "HR-1"},
                 {"measure_id": employment, "completed_on": "2026-11-19", "source_record_id": "HR-1"},
                 {"measure_id": measure_id, "completed_on": "2026-11-19"},
                 {"measure_id": "no-such-measure", "completed_on": "2026-11-19"},
                 {"measure_id": employment, "completed_on": "next week"}]
        body = "\n".join(json.dumps(line) for line in lines)
        confirmed = await assistance.post("/v1/measures/completions:batch", content=body,
                                          headers={**hr, "Content-Type": "application/x-ndjson"})
        assert confirmed.status_code == 200, confirmed.text
        outcome = confirmed.json()
        assert (outcome["rows"], outcome["completed"], outcome["duplicate"], outcome["invalid"]) == (5, 1, 1, 3)
        assert [(r["line"], r["field"], r["code"]) for r in outcome["rejected"]] == [
            (3, "measure_id", "department_mismatch"), (4, "measure_id", "measure_not_found"),
            (5, "completed_on", "date_from_datetime_parsing")], outcome
        after = {m["measure_id"]: m for m in (await plan("P1"))["measures"]}
        assert (after[employment]["status"], after[employment]["confirmed_by"]) == ("completed", "hr-system")
        unsigned = await assistance.post("/v1/measures/completions:batch", content=body, headers={
            **system.token("department_system", kind="system", sub="nobody"), "Content-Type": "application/x-ndjson"})
        assert unsigned.status_code == 403 and unsigned.json()["code"] == "department_missing_in_token"

        catalogue = (await assistance.get("/v1/measures/catalogue", headers=county)).json()
        assert {"kind": "minimum_allowance", "nature": "safety_net"}.items() <= next(
            k for k in catalogue if k["kind"] == "minimum_allowance").items()


async def _has(found, expected) -> bool:
    have = await found
    return all(item in have for item in expected)


async def _is(found, key, value) -> bool:
    return (await found)[key] == value
