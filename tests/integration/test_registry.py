"""The household registry: single and bulk registration, the region table, grid-worker load,
ID numbers kept encrypted, and warnings re-matched when their person is registered."""
import orjson
import pytest
import sqlalchemy as sa

from tests.factories import household, id_number, warning

pytestmark = pytest.mark.integration


def ndjson(*rows) -> bytes:
    return b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in rows)


async def test_bulk_import_reports_each_row_and_a_retry_changes_nothing(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = system.token("township_officer", "410721001")
        body = ndjson(
            household("I1", 1), household("I2", 2),
            household("I3", 3, region_code="410721099001"),      # 3: not in the region table
            household("I1", 4),                                  # 4: the same household twice
            b"{oops",                                            # 5: malformed
            household("I6", 6, region_code="410721002001"),      # 6: another township's village
        )
        result = (await intake.post("/v1/households:import", headers=county, content=body)).json()
        assert {k: result[k] for k in ("rows", "registered", "updated", "unchanged", "invalid")} == {
            "rows": 6, "registered": 2, "updated": 0, "unchanged": 0, "invalid": 4}
        reasons = {r["line"]: (r["field"], r["reason"]) for r in result["rejected"]}
        assert reasons[3][0] == "region_code" and "region table" in reasons[3][1]
        assert reasons[4] == ("household_id", "repeated earlier in this request")
        assert reasons[5] == (None, "malformed JSON")
        assert reasons[6][0] == "region_code" and "outside" in reasons[6][1]

        again = (await intake.post("/v1/households:import", headers=county, content=ndjson(
            household("I1", 1), household("I2", 2, grid_worker_id="gw-9")))).json()
        assert (again["unchanged"], again["updated"]) == (1, 1)
        async with system.context("intake").sessions() as session:
            per_stream = dict((await session.execute(sa.text(
                "select stream_id, count(*) from events group by stream_id"))).all())
        assert per_stream == {"household-I1": 1, "household-I2": 2}


async def test_a_person_cannot_be_in_two_households(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", "410721")
        assert (await intake.post("/v1/households", headers=county, json=household("P1", 1))).status_code == 201
        r = await intake.post("/v1/households", headers=county, json=household("P2", 1))
        assert r.status_code == 409 and "P1" in r.json()["detail"]


async def test_a_grid_worker_with_more_than_fifteen_households_is_reported_not_refused(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", "410721")
        rows = [household(f"G{n}", n, grid_worker_id="gw-busy") for n in range(1, 16)]
        result = (await intake.post("/v1/households:import", headers=county, content=ndjson(*rows))).json()
        assert result["registered"] == 15 and result["notices"] == []
        r = await intake.post("/v1/households", headers=county, json=household("G16", 16, grid_worker_id="gw-busy"))
        assert r.status_code == 201
        assert r.json()["notices"] == ["grid worker gw-busy has 16 households, more than 15"]


async def test_id_numbers_and_names_are_encrypted_at_rest_and_masked_when_shown(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", "410721")
        await intake.post("/v1/households", headers=county, json=household("E1", 7))
        shown = (await intake.get("/v1/households/E1", headers=county)).json()
        raw = id_number(7)
        assert shown["members"][0]["id_number"] == raw[:6] + "********" + raw[-4:]
        assert shown["members"][0]["name"] == "张三"
        async with system.context("intake").engine.connect() as conn:
            rows = []
            for table in ("members", "households", "events"):
                rows += (await conn.execute(sa.text(f"select * from {table}"))).all()
        dump = "\n".join(str(row) for row in rows)
        assert raw not in dump and raw[:17] not in dump
        assert "张三" not in dump


async def test_an_unmatched_warning_is_listed_and_becomes_a_clue_when_the_person_is_registered(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", "410721")
        mca = system.token("department_system", kind="system", department="civil_affairs", sub="mca")
        mi = system.token("department_system", kind="system", department="medical_insurance", sub="mi")
        r = await intake.post("/v1/warnings", headers=mca, json=warning("UM-1", id_number(8)))
        assert r.status_code == 202 and r.json()["outcome"] == "unmatched"

        listed = (await intake.get("/v1/warnings/unmatched", headers=mca)).json()["items"]
        assert [(w["department"], w["source_record_id"]) for w in listed] == [("civil_affairs", "UM-1")]
        assert (await intake.get("/v1/warnings/unmatched", headers=mi)).json()["items"] == []
        assert (await intake.get("/v1/warnings/unmatched", headers=mi, params={"department": "civil_affairs"})).status_code == 403

        await intake.post("/v1/households", headers=county, json=household("M1", 8))
        clues = (await intake.get("/v1/clues", headers=county)).json()["items"]
        assert [(c["household_id"], c["source"]["source_record_id"], c["channel"]) for c in clues] == [
            ("M1", "UM-1", "department_warning")]
        assert (await intake.get("/v1/warnings/unmatched", headers=mca)).json()["items"] == []
        again = await intake.post("/v1/warnings", headers=mca, json=warning("UM-1", id_number(8)))
        assert again.json()["outcome"] == "duplicate" and again.json()["clue_id"] == clues[0]["clue_id"]
