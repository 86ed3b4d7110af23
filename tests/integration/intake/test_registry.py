"""The household registry: single and bulk registration, the region table, grid-worker load,
ID numbers kept encrypted, and warnings re-matched when their person is registered."""
import asyncio

import orjson
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from runtime.cli import app as cli
from tests.conftest import served_over_http
from tests.factories import OTHER_TOWNSHIP_VILLAGE, VILLAGE, household, id_number, warning

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


async def test_households_are_listed_by_region_with_filters_and_pages_without_personal_data(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", "410721")
        rows = [household("L1", 1), household("L2", 2), household("L3", 3),
                household("L4", 4, grid_worker_id="gw-2", poverty_status="ordinary"),
                household("L5", 5, region_code=OTHER_TOWNSHIP_VILLAGE)]
        assert (await intake.post("/v1/households:import", headers=county, content=ndjson(*rows))).json()["registered"] == 5
        township = system.token("township_officer", "410721001")

        async def ids(headers, **params):
            r = await intake.get("/v1/households", headers=headers, params=params)
            assert r.status_code == 200, r.text
            return [h["household_id"] for h in r.json()["items"]]

        listed = await intake.get("/v1/households", headers=township)
        assert [h["household_id"] for h in listed.json()["items"]] == ["L1", "L2", "L3", "L4"]
        assert listed.json()["items"][3] == {
            "household_id": "L4", "region_code": VILLAGE, "group": "3", "poverty_status": "ordinary",
            "grid_worker_id": "gw-2", "member_count": 2, "last_visited_at": None}
        assert id_number(1)[10:] not in listed.text and "张" not in listed.text, "no ID number or name in a list"

        assert await ids(township, grid_worker_id="gw-2") == ["L4"]
        assert await ids(township, poverty_status="out_of_poverty") == ["L1", "L2", "L3"]
        assert await ids(county, region="410721002") == ["L5"]
        assert await ids(county) == ["L1", "L2", "L3", "L4", "L5"]
        first = (await intake.get("/v1/households", headers=county, params={"limit": 3})).json()
        assert [h["household_id"] for h in first["items"]] == ["L1", "L2", "L3"] and first["next_cursor"]
        rest = (await intake.get("/v1/households", headers=county, params={"limit": 3, "cursor": first["next_cursor"]})).json()
        assert [h["household_id"] for h in rest["items"]] == ["L4", "L5"] and rest["next_cursor"] is None

        assert (await intake.get("/v1/households", headers=township, params={"region": "410721002"})).status_code == 403
        bad = await intake.get("/v1/households", headers=township, params={"poverty_status": "rich"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "poverty_status"


async def test_grid_workers_are_listed_with_their_households_count_and_the_overloaded_ones_apart(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", "410721")
        rows = ([household(f"B{n}", n, grid_worker_id="gw-busy") for n in range(1, 17)]
                + [household(f"C{n}", 20 + n, grid_worker_id="gw-calm") for n in range(1, 3)]
                + [household(f"F{n}", 40 + n, region_code=OTHER_TOWNSHIP_VILLAGE, grid_worker_id="gw-far") for n in range(1, 18)])
        assert (await intake.post("/v1/households:import", headers=county, content=ndjson(*rows))).json()["registered"] == 35
        township = system.token("township_officer", "410721001")

        async def loads(headers, **params):
            r = await intake.get("/v1/grid-workers", headers=headers, params=params)
            assert r.status_code == 200, r.text
            return [(w["grid_worker_id"], w["household_count"], w["max_households"], w["overloaded"]) for w in r.json()["items"]]

        assert await loads(township, overloaded="true") == [("gw-busy", 16, 15, True)]
        assert await loads(township) == [("gw-busy", 16, 15, True), ("gw-calm", 2, 15, False)]
        assert await loads(township, overloaded="false") == [("gw-calm", 2, 15, False)]
        assert await loads(county, overloaded="true") == [("gw-busy", 16, 15, True), ("gw-far", 17, 15, True)]
        assert await loads(county, region="410721002") == [("gw-far", 17, 15, True)]
        first = (await intake.get("/v1/grid-workers", headers=county, params={"overloaded": "true", "limit": 1})).json()
        rest = (await intake.get("/v1/grid-workers", headers=county,
                                 params={"overloaded": "true", "limit": 1, "cursor": first["next_cursor"]})).json()
        assert [w["grid_worker_id"] for w in first["items"] + rest["items"]] == ["gw-busy", "gw-far"]
        assert (await intake.get("/v1/grid-workers", headers=township, params={"region": "410721002"})).status_code == 403


async def test_the_import_command_prints_the_notices_and_writes_them_beside_the_rejected_rows(run_services, tmp_path):
    """`fangpin import households` against intake on a real port: the notices of every chunk, each
    once, on the screen and in FILE.notices.txt; a run that changes nothing has none."""
    async with run_services("intake") as system:
        county = system.token("county_officer", "410721")["Authorization"].split()[1]
        rows = [household(f"N{n}", n, grid_worker_id="gw-busy") for n in range(1, 18)]
        lines = [orjson.dumps(row) for row in rows]
        lines.insert(5, b"{broken")
        lines.append(orjson.dumps({**rows[0], "group": "4"}))  # chunk 3 updates N1: the same notice as chunk 2's
        source = tmp_path / "households.ndjson"
        source.write_bytes(b"\n".join(lines) + b"\n")
        unchanged = tmp_path / "unchanged.ndjson"
        unchanged.write_bytes(b"\n".join([lines[-1], *lines[1:]]) + b"\n")
        notices_file = tmp_path / "households.ndjson.notices.txt"
        async with served_over_http(system.apps["intake"]) as url:
            options = ["--url", url, "--token", county, "--chunk-lines", "9"]
            first = await asyncio.to_thread(CliRunner().invoke, cli, ["import", "households", str(source), *options])
            written = notices_file.read_text() if notices_file.exists() else None
            notices_file.with_name("unchanged.ndjson.notices.txt").write_text("from an earlier run\n")
            again = await asyncio.to_thread(CliRunner().invoke, cli, ["import", "households", str(unchanged), *options])
    assert first.exit_code == 0, first.output
    notice = "grid worker gw-busy has 17 households, more than 15"
    assert first.output.count(notice) == 1 and "1 notice " in first.output, first.output
    assert str(notices_file) in first.output and written == notice + "\n"
    assert again.exit_code == 0 and "18 unchanged" in again.output, again.output
    assert "notice" not in again.output.replace(str(tmp_path), "") and not notices_file.with_name("unchanged.ndjson.notices.txt").exists(), \
        "the outcome files tell of the last run only"
