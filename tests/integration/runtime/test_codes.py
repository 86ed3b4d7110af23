"""Reasons as stable codes through HTTP (issue 14, item 6): a refusal's problem document names its
rule in `code`, each validation error and each rejected batch row its own, a ladder refusal the step
the case expects with its Chinese term, and a recommendation each reason's code, text and Chinese
text. `GET /v1/codes` lists them all."""
from datetime import datetime, timezone

import orjson
import pytest

from runtime.clock import FixedClock
from tests.conftest import eventually
from tests.factories import OTHER_TOWNSHIP_VILLAGE, VILLAGE, household, id_number, warning

pytestmark = pytest.mark.integration
START = datetime(2026, 11, 20, 1, 0, tzinfo=timezone.utc)


def ndjson(*rows) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()


async def test_refusals_validation_errors_and_rejected_rows_carry_their_codes(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", "410721")
        township = system.token("township_officer", "410721001")
        mca = system.token("department_system", kind="system", department="civil_affairs", sub="mca")

        assert problem(await intake.get("/v1/households"), 401)["code"] == "token_missing"
        assert problem(await intake.get("/v1/households", headers={"Authorization": "Bearer x.y.z"}), 401)[
            "code"] == "token_invalid"
        outside = problem(await intake.get("/v1/households", headers=township, params={"region": "410721002"}), 403)
        assert outside["code"] == "region_outside_scope" and outside["type"] == "about:blank"
        assert problem(await intake.get("/v1/households/nobody", headers=county), 404)["code"] == "household_not_found"

        incomplete = {k: v for k, v in household("C1", 1).items() if k != "poverty_status"}
        invalid = problem(await intake.post("/v1/households", headers=county, json={**incomplete, "members": []}), 422)
        assert invalid["code"] == "invalid_request"
        assert {(e["field"], e["code"]) for e in invalid["errors"]} == {("poverty_status", "missing"),
                                                                        ("members", "too_short")}
        naive = problem(await intake.post("/v1/warnings", headers=mca,
                                          json=warning("C-1", id_number(1), observed_at="2026-11-01T08:00:00")), 422)
        assert [(e["field"], e["code"]) for e in naive["errors"]] == [("observed_at", "moment_without_time_zone")]

        assert (await intake.post("/v1/households", headers=county, json=household("C2", 2))).status_code == 201
        judged_under = warning("C-5", id_number(2), department="medical_insurance", indicator="high_medical_expense",
                               amount="50.00", over_threshold=False)
        rows = ndjson(
            warning("C-2", id_number(2), indicator="lottery_win"),                    # 1: not in the catalogue
            {**warning("C-3", id_number(3)), "id_number": None},                     # 2: nobody named
            warning("C-4", id_number(4)[:17] + ("1" if id_number(4)[17] != "1" else "2")),  # 3: wrong check digit
            judged_under,                                                            # 4: another department's
        )
        upload = await intake.post("/v1/warnings:batch", headers=mca, content=rows)
        assert upload.status_code == 200, upload.text
        result = upload.json()
        assert {row["line"]: row["code"] for row in result["rejected"]} == {
            1: "indicator_unknown", 2: "household_or_id_number_missing", 3: "id_number_check_digit_wrong",
            4: "department_mismatch"}

        nhsa = system.token("department_system", kind="system", department="medical_insurance", sub="nhsa")
        under = await intake.post("/v1/warnings:batch", headers=nhsa, content=ndjson(judged_under))
        [kept] = under.json()["below_threshold_rows"]
        assert kept["code"] == "department_judged_under_threshold" and kept["reason"], kept

        homes = ndjson(household("C6", 6, region_code=OTHER_TOWNSHIP_VILLAGE), household("C7", 7, region_code="410721001999"))
        imported = (await intake.post("/v1/households:import", headers=township, content=homes)).json()
        assert {row["line"]: row["code"] for row in imported["rejected"]} == {1: "region_outside_scope",
                                                                            2: "region_not_in_table"}
        single = problem(await intake.post("/v1/households", headers=township,
                                           json=household("C6", 6, region_code=OTHER_TOWNSHIP_VILLAGE)), 403)
        assert single["code"] == "region_outside_scope"
        assert single["errors"] == [{"field": "region_code", "message": "outside your region 410721001",
                                     "code": "region_outside_scope"}]

        listed = await intake.get("/v1/codes", headers=county)
        assert listed.status_code == 200, listed.text
        codes = {entry["code"]: entry for entry in listed.json()["codes"]}
        assert codes["token_missing"]["kind"] == "refusal" and codes["token_missing"]["text"]
        assert codes["education_not_assured"]["text_zh"] == "义务教育未保障"
        assert codes["township_review"]["text_zh"] == "乡镇初审"
        assert (await intake.get("/v1/codes")).status_code == 401


async def test_ladder_refusals_name_the_expected_step_in_chinese_and_reasons_carry_chinese_text(run_services):
    async with run_services("intake", "screening", clock=FixedClock(START)) as system:
        intake, screening = system.clients["intake"], system.clients["screening"]
        county = system.token("county_officer", "410721", sub="county-1")
        worker = system.token("grid_worker", VILLAGE, sub="gw-1")
        mca = system.token("department_system", kind="system", department="civil_affairs", sub="mca")
        assert (await intake.post("/v1/households", headers=county, json=household("L1", 1))).status_code == 201
        assert (await intake.post("/v1/warnings", headers=mca, json=warning("L-1", id_number(1)))).status_code == 201

        async def the_case():
            items = (await screening.get("/v1/cases", headers=county)).json()["items"]
            return items[0]["case_id"] if items else None

        case = await eventually(the_case)
        early = problem(await screening.post(f"/v1/cases/{case}/county-decision", headers=county,
                                             json={"decision": "reject", "reason": "x"}), 409)
        assert (early["code"], early["expected_step"], early["expected_step_zh"]) == (
            "ladder_step_out_of_order", "verification_visit", "入户核查")
        findings = {"per_capita_net_income": "6200.00", "rigid_expenditure": "0", "education_ok": False,
                    "medical_ok": True, "housing_safe": True, "water_safe": True}
        wrong = problem(await screening.post(f"/v1/cases/{case}/verification", headers=county, json=findings), 403)
        assert (wrong["code"], wrong["expected_step_zh"]) == ("ladder_role_not_allowed", "入户核查")
        assert problem(await screening.get("/v1/cases/nothing", headers=county), 404)["code"] == "case_not_found"

        verified = await screening.post(f"/v1/cases/{case}/verification", headers=worker, json=findings)
        assert verified.status_code == 200, verified.text
        assert verified.json()["reasons"] == [
            {"code": "income_under_line", "text": "per-capita net income 6200.00 is under the monitoring line 8000",
             "text_zh": "家庭年人均纯收入低于监测线"},
            {"code": "education_not_assured", "text": "compulsory education is not assured", "text_zh": "义务教育未保障"}]
        again = problem(await screening.post(f"/v1/cases/{case}/verification", headers=worker, json=findings), 409)
        assert (again["code"], again["expected_step"], again["expected_step_zh"]) == (
            "ladder_step_out_of_order", "village_deliberation", "村级评议")
