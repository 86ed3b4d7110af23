"""Indicator thresholds (issue 14, item 1): deployment data per region prefix and year; a warning under
its threshold is an outcome of its own (`below_threshold`: stored, counted, listed, reported back, no
clue), a department's own judgement is taken as given, and a missing row is a configuration error."""
import orjson
import pytest
import sqlalchemy as sa

from tests.factories import household, id_number, warning

pytestmark = pytest.mark.integration

MEDICAL = dict(department="medical_insurance", indicator="high_medical_expense", detail="out-of-pocket costs this year")


def ndjson(*rows) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


async def rows(system, sql: str) -> list:
    async with system.context("intake").sessions() as session:
        return (await session.execute(sa.text(sql))).all()


async def count(system, sql: str) -> int:
    [(value,)] = await rows(system, sql)
    return value


def tokens(system):
    return (system.token("county_officer", "410721"),
            system.token("department_system", kind="system", department="medical_insurance", sub="nhsa"))


async def test_a_warning_under_its_threshold_is_kept_as_below_threshold_counted_listed_and_raises_no_clue(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county, nhsa = tokens(system)
        for n in (1, 2, 3):
            assert (await intake.post("/v1/households", headers=county, json=household(f"T{n}", n))).status_code == 201

        single = await intake.post("/v1/warnings", headers=nhsa, json=warning("M-1", id_number(1), **MEDICAL, amount="9999.99"))
        assert single.status_code == 200, single.text
        assert single.json()["outcome"] == "below_threshold" and single.json()["household_id"] == "T1"
        assert single.json()["threshold"] == "10000" and "9999.99 is under the threshold of 10000" in single.json()["reason"]

        batch = await intake.post("/v1/warnings:batch", headers=nhsa, content=ndjson(
            warning("M-2", id_number(2), **MEDICAL, amount="23000.00"),      # 1 over: a clue
            warning("M-3", id_number(3), **MEDICAL, amount="500.00"),        # 2 under
            warning("M-1", id_number(1), **MEDICAL, amount="9999.99"),       # 3 the single one again
            warning("M-4", id_number(4), **MEDICAL, amount="800.00"),        # 4 under, but nobody registered
        ))
        assert batch.status_code == 200, batch.text
        result = batch.json()
        assert {k: result[k] for k in ("rows", "accepted", "duplicate", "unmatched", "below_threshold", "invalid")} == {
            "rows": 4, "accepted": 1, "duplicate": 1, "unmatched": 1, "below_threshold": 1, "invalid": 0}
        [below] = result["below_threshold_rows"]
        assert {k: below[k] for k in ("line", "outcome", "department", "source_record_id", "household_id", "threshold")} == {
            "line": 2, "outcome": "below_threshold", "department": "medical_insurance", "source_record_id": "M-3",
            "household_id": "T3", "threshold": "10000"}
        assert result["rejected"] == []

        assert await count(system, "select count(*) from clues") == 1
        assert await rows(system, "select source_record_id, status, household_id, threshold from warnings "
                                  "where status = 'below_threshold' order by 1") == [
            ("M-1", "below_threshold", "T1", 10000), ("M-3", "below_threshold", "T3", 10000)]
        listed = (await intake.get("/v1/warnings/below-threshold", headers=nhsa)).json()["items"]
        assert [(w["source_record_id"], w["household_id"], w["amount"], w["threshold"]) for w in listed] == [
            ("M-1", "T1", "9999.99", "10000.00"), ("M-3", "T3", "500.00", "10000.00")]
        mca = system.token("department_system", kind="system", department="civil_affairs", sub="mca")
        assert (await intake.get("/v1/warnings/below-threshold", headers=mca)).json()["items"] == []

        # The unmatched row under the threshold is reported back as unmatched, and judged once its
        # person is registered: against the threshold of the household's region, so no clue.
        unmatched = (await intake.get("/v1/warnings/unmatched", headers=nhsa)).json()["items"]
        assert [w["source_record_id"] for w in unmatched] == ["M-4"]
        assert (await intake.post("/v1/households", headers=county, json=household("T4", 4))).status_code == 201
        assert await rows(system, "select status, household_id, threshold, clue_id from warnings "
                                  "where source_record_id = 'M-4'") == [("below_threshold", "T4", 10000, None)]
        assert await count(system, "select count(*) from clues") == 1


async def test_a_departments_own_judgement_of_its_threshold_is_taken_as_given_and_recorded(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county, nhsa = tokens(system)
        for n in (1, 2):
            assert (await intake.post("/v1/households", headers=county, json=household(f"J{n}", n))).status_code == 201

        over = await intake.post("/v1/warnings", headers=nhsa, json=warning(
            "J-1", id_number(1), **MEDICAL, amount="120.00", over_threshold=True))
        assert over.status_code == 201 and over.json()["outcome"] == "accepted", over.text
        under = await intake.post("/v1/warnings", headers=nhsa, json=warning(
            "J-2", id_number(2), **MEDICAL, amount="50000.00", over_threshold=False))
        assert under.status_code == 200 and under.json()["outcome"] == "below_threshold", under.text
        assert under.json()["threshold"] is None and "medical_insurance judged it under" in under.json()["reason"]

        [clue] = (await intake.get("/v1/clues", headers=county)).json()["items"]
        assert clue["household_id"] == "J1" and clue["source"]["over_threshold"] is True
        [source] = await rows(system, "select payload->'source' from events where event_type = 'RiskClueRaised'")
        assert source[0]["over_threshold"] is True, "the event says the judgement was the department's"
        assert await rows(system, "select source_record_id, status, over_threshold, threshold from warnings order by 1") == [
            ("J-1", "accepted", True, None), ("J-2", "below_threshold", False, None)]

        # an indicator without a threshold cannot be under one
        refused = await intake.post("/v1/warnings", headers=system.token(
            "department_system", kind="system", department="civil_affairs", sub="mca"),
            json=warning("J-3", id_number(1), over_threshold=False))
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "over_threshold", refused.text


async def test_thresholds_are_the_deployments_own_per_region_prefix_and_year(run_services, tmp_path):
    regions = tmp_path / "regions.csv"
    regions.write_text("code,name\n340421001001,村一\n340421002001,村二\n")
    thresholds = tmp_path / "thresholds.csv"
    thresholds.write_text("department,indicator,prefix,year,yuan\n"
                          "medical_insurance,high_medical_expense,340421,2026,5000\n"
                          "medical_insurance,high_medical_expense,340421001,2026,6000\n")
    async with run_services("intake", indicator_thresholds=str(thresholds), region_table=str(regions)) as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", "340421")
        nhsa = system.token("department_system", kind="system", department="medical_insurance", sub="nhsa")
        for n, village in ((1, "340421001001"), (2, "340421002001")):
            body = household(f"H{n}", n, region_code=village,
                             members=[{"id_number": id_number(n, region6="340421"), "name": "李四", "relation": "head",
                                       "labor_capacity": "full"}])
            assert (await intake.post("/v1/households", headers=county, json=body)).status_code == 201, body

        first = await intake.post("/v1/warnings", headers=nhsa, json=warning(
            "D-1", id_number(1, region6="340421"), **MEDICAL, amount="5500.00"))
        second = await intake.post("/v1/warnings", headers=nhsa, json=warning(
            "D-2", id_number(2, region6="340421"), **MEDICAL, amount="5500.00"))
        assert (first.json()["outcome"], first.json()["threshold"]) == ("below_threshold", "6000"), first.text
        assert (second.status_code, second.json()["outcome"]) == (201, "accepted"), second.text


async def test_a_region_and_year_without_a_threshold_is_a_configuration_error_naming_the_row(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county, nhsa = tokens(system)
        assert (await intake.post("/v1/households", headers=county, json=household("C1", 1))).status_code == 201
        row_to_add = "medical_insurance,high_medical_expense,410721001001,2019,<yuan>"
        old = dict(**MEDICAL, amount="20000.00", observed_at="2019-06-01T08:00:00+08:00")

        single = await intake.post("/v1/warnings", headers=nhsa, json=warning("X-1", id_number(1), **old))
        assert single.status_code == 500 and single.headers["content-type"] == "application/problem+json", single.text
        problem = single.json()
        assert problem["title"] == "Configuration error" and problem["type"].endswith("/configuration-error")
        assert "no indicator threshold of medical_insurance/high_medical_expense for region 410721001001 in 2019" in problem["detail"]
        assert row_to_add in problem["detail"]
        assert await count(system, "select count(*) from warnings") == 0

        # A batch stops at the chunk that needs the row; the chunks before it stand.
        from services.intake.api.warnings import BATCH_CHUNK_ROWS
        waiting = [warning(f"U-{n}", id_number(n, birth="19700101"), **MEDICAL, amount="1.00") for n in range(BATCH_CHUNK_ROWS)]
        batch = await intake.post("/v1/warnings:batch", headers=nhsa,
                                  content=ndjson(*waiting, warning("X-2", id_number(1), **old)))
        assert batch.status_code == 500, batch.text
        assert batch.json()["lines_done"] == BATCH_CHUNK_ROWS and row_to_add in batch.json()["detail"]
        assert f"send the file again from line {BATCH_CHUNK_ROWS + 1}" in batch.json()["detail"]
        assert await count(system, "select count(*) from warnings") == BATCH_CHUNK_ROWS  # unmatched, judged later

        # An unmatched warning is judged when its person is registered: the registration needs the row too.
        nobody = id_number(7)
        assert (await intake.post("/v1/warnings", headers=nhsa, json=warning("X-3", nobody, **old))).status_code == 202
        refused = await intake.post("/v1/households", headers=county, json=household("C7", 7))
        assert refused.status_code == 500 and row_to_add in refused.json()["detail"], refused.text
        assert await count(system, "select count(*) from households where household_id = 'C7'") == 0
