"""Statistics of a small county (issue 17), checked against figures counted by hand: five subjects in
two townships, identified, protected, risk-eliminated, removed, rolled back; their measures and gaps;
an overdue step. JSON and CSV, the month before (nothing yet), and bad periods refused."""
import csv
import io
import json
from datetime import date
from decimal import Decimal

import pytest
import sqlalchemy as sa

from contracts.screening import (
    CaseStepOverdue, SubjectMonitoredAgain, SubjectProtected, SubjectRemoved, SubjectRiskEliminated,
)
from contracts.vocabulary import RiskType
from runtime.clock import FixedClock
from tests.conftest import eventually
from tests.factories import household
from tests.integration.assistance.test_plans import identify, screening_says
from tests.integration.exit_review.test_exits import NOW, SERVICES, a_helper, evidence_count

pytestmark = pytest.mark.integration
V1, V2, V3 = "410721001001", "410721001002", "410721002001"


async def test_a_small_county_counted_by_hand(run_services):
    async with run_services(*SERVICES, clock=FixedClock(NOW), scheduler_seconds=0.2) as system:
        county = system.token("county_officer", "410721", sub="county-1")
        intake, assistance, exits = (system.clients[s] for s in ("intake", "assistance", "exit_review"))
        helper = await a_helper(system, county)
        cannot_work = [{"id_number": m["id_number"], "name": m["name"], "relation": m["relation"],
                        "labor_capacity": "none"} for m in household("S2", 2)["members"]]
        for n, (hid, village, extra) in enumerate((("S1", V1, {}), ("S2", V2, {"members": cannot_work}),
                                                   ("S3", V3, {}), ("S4", V3, {}), ("S5", V1, {})), start=1):
            answer = await intake.post("/v1/households", headers=county, json=household(hid, n, region_code=village, **extra))
            assert answer.status_code == 201, answer.text
        await identify(system, "S1", V1, RiskType.INCOME_DROP, category="marginal_at_risk")
        await identify(system, "S2", V2, RiskType.ILLNESS, category="sudden_hardship")
        await identify(system, "S3", V3, RiskType.HOUSING, category="unstable_formerly_poor")
        await identify(system, "S4", V3, RiskType.WATER, category="marginal_at_risk")
        await identify(system, "S5", V1, RiskType.ACCIDENT, category="sudden_hardship")
        await screening_says(system, SubjectProtected(household_id="S2"), "S2", "subject-S2-1", V2)
        await screening_says(system, SubjectRiskEliminated(household_id="S3", exit_id="x3"), "S3", "subject-S3-1", V3)
        await screening_says(system, SubjectRemoved(household_id="S4", comment="wrongly identified"), "S4", "subject-S4-1", V3)
        await screening_says(system, SubjectRiskEliminated(household_id="S5", exit_id="x5"), "S5", "subject-S5-1", V1)
        await screening_says(system, SubjectMonitoredAgain(household_id="S5", exit_id="x5"), "S5", "subject-S5-2", V1)
        await screening_says(system, CaseStepOverdue(case_id="c-S1", household_id="S1", region_code=V1,
                                                     step="county_decision", due_date=date(2026, 11, 10)),
                             "S1", "overdue-c-S1", V1)

        async def planned():
            return all([(await assistance.get(f"/v1/plans/{hid}", headers=county)).status_code == 200
                        for hid in ("S1", "S2")])
        await eventually(planned)
        town_1 = system.token("township_officer", "410721001", sub="town-1")
        for hid, kind in (("S1", "employment"), ("S1", "minimum_allowance"), ("S2", "minimum_allowance")):
            r = await assistance.post(f"/v1/plans/{hid}/measures", headers=town_1, json={
                "measure_type": kind, "start_date": "2026-11-20"})
            assert r.status_code == 201, r.text

        async def mirrored():
            async with system.context("exit_review").sessions() as session:
                changes = await session.scalar(sa.text("select count(*) from subject_changes"))
                overdue = await session.scalar(sa.text("select count(*) from case_overdue"))
            measures = sum([await evidence_count(system, "measure_evidence", h) for h in ("S1", "S2")])
            gaps = [await evidence_count(system, "gap_evidence", h) for h in ("S1", "S2", "S5")]
            return changes == 10 and overdue == 1 and measures == 3 and gaps[0] == gaps[1] == 0 and gaps[2] >= 1
        await eventually(mirrored)

        answer = await exits.get("/v1/statistics?region=410721&period=2026-11", headers=county)
        assert answer.status_code == 200, answer.text
        found = answer.json()
        # By hand: monitored S1 (marginal), S2 (sudden, protected), S5 (sudden, rolled back); S3 eliminated; S4 removed.
        assert (found["monitored"], found["risk_eliminated"], found["protected"]) == (3, 1, 1)
        assert found["monitored_by_category"] == {"unstable_formerly_poor": 0, "marginal_at_risk": 1, "sudden_hardship": 2}
        assert Decimal(found["exit_rate"]) == Decimal("0.25")  # 1 of 4 standing
        assert found["flows"] == {"identified": 5, "risk_eliminated": 2, "rolled_back": 1, "removed": 1}
        # Plans of S1, S2, S5: 3 measures (1 developmental), 2 households covered, S5 with its gaps.
        assert Decimal(found["measures_per_household"]) == Decimal("1.00")
        assert Decimal(found["developmental_share"]) == Decimal("0.3333")
        assert Decimal(found["policy_coverage"]) == Decimal("0.6667")
        assert found["households_with_gaps"] == 1
        assert found["overdue_steps"] == {"identification": {"county_decision": 1}, "exit": {}}
        assert [(r["region"], r["monitored"], r["risk_eliminated"]) for r in found["by_region"]] == [
            ("410721001", 3, 0), ("410721002", 0, 1)]

        before = (await exits.get("/v1/statistics?region=410721&period=2026-10", headers=county)).json()
        assert (before["monitored"], before["flows"]["identified"], before["exit_rate"]) == (0, 0, None)
        township = (await exits.get("/v1/statistics?period=2026-11", headers=town_1)).json()
        assert (township["region"], township["monitored"], township["risk_eliminated"]) == ("410721001", 3, 0)
        assert [r["region"] for r in township["by_region"]] == [V1, V2]

        sheet = await exits.get("/v1/statistics?region=410721&period=2026-11&format=csv", headers=county)
        assert sheet.status_code == 200 and sheet.headers["content-type"].startswith("text/csv")
        rows = {(r["figure"], r["region"]): r["value"] for r in csv.DictReader(io.StringIO(sheet.text))}
        assert rows[("monitored", "410721")] == "3" and rows[("flows.removed", "410721")] == "1"
        assert rows[("risk_eliminated", "410721002")] == "1"

        for period, code in (("2026-13", "statistics_period_invalid"), ("2027-01", "statistics_period_in_future")):
            bad = await exits.get(f"/v1/statistics?region=410721&period={period}", headers=county)
            assert bad.status_code == 422 and bad.json()["code"] == code, bad.text
            assert bad.json()["errors"][0]["field"] == "period"
        outside = await exits.get("/v1/statistics?region=410722", headers=county)
        assert outside.status_code == 403

        # Monthly filings: October's are past their days (the 25th, the 5th) and reported overdue once;
        # the township files November's figures (due the 25th), once.
        async def october_overdue():
            async with system.context("exit_review").sessions() as session:
                return await session.scalar(sa.text("select count(*) from events where event_type = 'FilingOverdue'")) == 3
        await eventually(october_overdue)
        october = (await exits.get("/v1/statistics/filings?period=2026-10", headers=county)).json()
        assert [(f["level"], f["region"], f["status"], f["due_on"]) for f in october] == [
            ("county", "410721", "overdue", "2026-11-05"), ("township", "410721001", "overdue", "2026-10-25"),
            ("township", "410721002", "overdue", "2026-10-25")]
        filed = await exits.post("/v1/statistics/filings", headers=town_1, json={"period": "2026-11"})
        assert filed.status_code == 201 and filed.json()["status"] == "filed", filed.text
        again = await exits.post("/v1/statistics/filings", headers=town_1, json={"period": "2026-11"})
        assert again.status_code == 409 and again.json()["code"] == "statistics_already_filed", again.text
        november = (await exits.get("/v1/statistics/filings?period=2026-11", headers=county)).json()
        assert [(f["region"], f["status"]) for f in november] == [
            ("410721", "pending"), ("410721001", "filed"), ("410721002", "pending")]
        async with system.context("exit_review").sessions() as session:
            figures = (await session.execute(sa.text(
                "select payload::text from events where event_type = 'StatisticsFiled'"))).scalar_one()
        figures = json.loads(figures)
        assert figures["figures"]["monitored"] == 3 and figures["region_code"] == "410721001"
        assert await october_overdue(), "reported once"
