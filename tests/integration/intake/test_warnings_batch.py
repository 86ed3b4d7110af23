"""POST /v1/warnings:batch: NDJSON rows streamed, matched set-based, each row with its outcome."""
import orjson
import pytest
import sqlalchemy as sa

from services.intake.api.warnings import BATCH_CHUNK_ROWS
from tests.conftest import eventually
from tests.factories import household, id_number, warning

pytestmark = pytest.mark.integration


def ndjson(*rows) -> bytes:
    return b"".join((row if isinstance(row, bytes) else orjson.dumps(row)) + b"\n" for row in rows)


async def count(system, sql: str) -> int:
    async with system.context("intake").sessions() as session:
        return await session.scalar(sa.text(sql))


async def test_each_row_gets_its_outcome_and_bad_rows_do_not_stop_good_ones(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", "410721")
        mca = system.token("department_system", kind="system", department="civil_affairs", sub="mca")
        for n in (1, 2, 3):
            assert (await intake.post("/v1/households", headers=county, json=household(f"B{n}", n))).status_code == 201
        assert (await intake.post("/v1/warnings", headers=mca, json=warning("W-0", id_number(1)))).status_code == 201

        bad_digit = warning("W-bad", id_number(2)[:17] + ("1" if id_number(2)[17] != "1" else "2"))
        body = ndjson(
            warning("W-1", id_number(1)),                       # 1 accepted
            warning("W-2", id_number(2)),                       # 2 accepted
            warning("W-0", id_number(1)),                       # 3 duplicate of the earlier single post
            warning("W-2", id_number(2)),                       # 4 duplicate within this request
            warning("W-9", id_number(999)),                     # 5 unmatched: nobody registered
            bad_digit,                                          # 6 invalid id_number
            b'{"department": "civil_affairs", ',               # 7 malformed JSON
            warning("W-7", id_number(3), indicator="unknown"),  # 8 invalid indicator
            {**warning("W-8", id_number(3)), "household_id": "B3", "id_number": None},  # 9 accepted by household id
            warning("W-x", id_number(3), department="medical_insurance", indicator="high_medical_expense"),  # 10 other dept
        )
        r = await intake.post("/v1/warnings:batch", headers=mca, content=body)
        assert r.status_code == 200, r.text
        result = r.json()
        assert {k: result[k] for k in ("rows", "accepted", "duplicate", "unmatched", "invalid")} == {
            "rows": 10, "accepted": 3, "duplicate": 2, "unmatched": 1, "invalid": 4}
        rejected = {row["line"]: (row["field"], row["reason"]) for row in result["rejected"]}
        assert rejected[6][0] == "id_number" and "check digit" in rejected[6][1]
        assert rejected[7] == (None, "malformed JSON")
        assert rejected[8][0] == "indicator"
        assert rejected[10][0] == "department"
        assert await count(system, "select count(*) from clues") == 4  # W-0, W-1, W-2, W-8
        assert await count(system, "select count(*) from events where event_type = 'WarningUnmatched'") == 1

        again = (await intake.post("/v1/warnings:batch", headers=mca, content=body)).json()
        assert (again["accepted"], again["unmatched"], again["duplicate"], again["invalid"]) == (0, 0, 6, 4)
        assert await count(system, "select count(*) from clues") == 4


async def test_an_upload_cut_off_mid_stream_keeps_what_was_committed_and_a_retry_adds_nothing_twice(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        mca = system.token("department_system", kind="system", department="civil_affairs", sub="mca")
        chunk = BATCH_CHUNK_ROWS
        rows = [warning(f"U-{n}", id_number(n, birth="19700101")) for n in range(chunk + 500)]  # all unmatched

        async def cut_off_after(lines: int):
            for row in rows[:lines]:
                yield ndjson(row)
            raise ConnectionResetError("the department's network dropped")

        with pytest.raises(ConnectionResetError):
            await intake.post("/v1/warnings:batch", headers=mca, content=cut_off_after(chunk + 200))
        kept = await count(system, "select count(*) from warnings")
        assert kept == chunk, "whole chunks are committed as they arrive; the cut-off part of one is not"

        retry = (await intake.post("/v1/warnings:batch", headers=mca, content=ndjson(*rows))).json()
        assert (retry["duplicate"], retry["unmatched"]) == (chunk, 500)
        assert await count(system, "select count(*) from warnings") == chunk + 500
        assert await count(system, "select count(*) from events") == chunk + 500


async def test_a_batchs_clues_reach_screening_in_a_few_events_one_case_per_household(run_services):
    async with run_services("intake", "screening") as system:
        intake, screening = system.clients["intake"], system.clients["screening"]
        county = system.token("county_officer", "410721")
        mca = system.token("department_system", kind="system", department="civil_affairs", sub="mca")
        for n in range(1, 9):
            assert (await intake.post("/v1/households", headers=county, json=household(f"B{n}", n))).status_code == 201
        # Two warnings for B1 and B2 each: one case each, with both clues.
        rows = [warning(f"T-{n}", id_number(n)) for n in range(1, 9)] + [warning("T-1b", id_number(1)), warning("T-2b", id_number(2))]
        r = await intake.post("/v1/warnings:batch", headers=mca, content=ndjson(*rows))
        assert r.status_code == 200 and r.json()["accepted"] == 10, r.text
        batch_events = await count(system, "select count(*) from events where event_type = 'RiskCluesRaised'")
        assert 1 <= batch_events <= system.settings["intake"].kafka_partitions
        assert await count(system, "select count(*) from events where event_type = 'RiskClueRaised'") == 0
        assert await count(system, "select sum(jsonb_array_length(payload->'clues')) from events "
                                   "where event_type = 'RiskCluesRaised'") == 10

        async def cases():
            items = (await screening.get("/v1/cases?limit=50", headers=county)).json()["items"]
            return items if sum(len(c["clue_ids"]) for c in items) == 10 else None

        opened = await eventually(cases)
        assert sorted(c["household_id"] for c in opened) == [f"B{n}" for n in range(1, 9)]
        clue_ids = {c["household_id"]: c["clue_ids"] for c in opened}
        assert len(clue_ids["B1"]) == len(clue_ids["B2"]) == 2
        listed = (await intake.get("/v1/clues?limit=50", headers=county)).json()["items"]
        assert {c["clue_id"] for c in listed} == {i for ids in clue_ids.values() for i in ids}


async def test_text_the_database_cannot_store_is_refused_with_its_field(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", "410721")
        mca = system.token("department_system", kind="system", department="civil_affairs", sub="mca")
        assert (await intake.post("/v1/households", headers=county, json=household("B1", 1))).status_code == 201

        body = ndjson(warning("W-1", id_number(1)), {**warning("W-2", id_number(1)), "detail": "a\u0000b"},
                      {**warning("W-3", id_number(1)), "detail": "a backslash and u0000 as text: \\u0000"})
        r = await intake.post("/v1/warnings:batch", headers=mca, content=body)
        assert r.status_code == 200, r.text
        assert (r.json()["accepted"], r.json()["invalid"]) == (2, 1)
        [rejected] = r.json()["rejected"]
        assert (rejected["line"], rejected["field"]) == (2, "detail") and "\\u0000" in rejected["reason"]

        single = await intake.post("/v1/warnings", headers=mca, json={**warning("W-4", id_number(1)), "detail": "x\u0000"})
        assert single.status_code == 422 and single.headers["content-type"] == "application/problem+json"
        assert "\\u0000" in single.json()["detail"]
        assert await count(system, "select count(*) from warnings") == 2
