"""Rejected rows of bulk uploads (issue 14, item 13): each keeps the identifiers the row gave, also
when it did not validate, and its reason is said plainly (no "Value error, ")."""
import orjson
import pytest

from tests.factories import household, id_number, warning

pytestmark = pytest.mark.integration


def ndjson(*rows) -> bytes:
    return b"".join((row if isinstance(row, bytes) else orjson.dumps(row)) + b"\n" for row in rows)


def wrong_check_digit(number: str) -> str:
    return number[:17] + ("1" if number[17] != "1" else "2")


async def test_a_rejected_household_keeps_its_household_id_and_a_plain_reason(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", "410721")
        twice = household("R2", 2)
        twice["members"][1]["id_number"] = twice["members"][0]["id_number"]
        body = ndjson(
            household("R1", 1, members=[{**household("R1", 1)["members"][0], "id_number": wrong_check_digit(id_number(1))}]),
            twice,                                                   # 2: the same person twice
            {k: v for k, v in household("R3", 3).items() if k != "region_code"},  # 3: a field missing
            household("R4", 4),                                      # 4: fine
            b'{"household_id": "R5", ',                              # 5: malformed: no identifier to keep
        )
        result = (await intake.post("/v1/households:import", headers=county, content=body)).json()
        assert (result["registered"], result["invalid"]) == (1, 4), result
        rejected = {row["line"]: (row["household_id"], row["field"], row["reason"]) for row in result["rejected"]}
        assert rejected[1] == ("R1", "members.0.id_number", "check digit does not match (GB 11643)")
        assert rejected[2] == ("R2", "members", "the same ID number appears twice in one household")
        assert rejected[3][:2] == ("R3", "region_code")
        assert rejected[5] == (None, None, "malformed JSON")


async def test_a_rejected_warning_keeps_its_department_and_source_record_id_and_a_plain_reason(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        mca = system.token("department_system", kind="system", department="civil_affairs", sub="mca")
        nobody = {**warning("W-1", id_number(1)), "id_number": None}
        body = ndjson(
            nobody,                                                                  # 1: neither person nor household
            warning("W-2", wrong_check_digit(id_number(2))),                         # 2: a bad ID number
            {**warning("W-3", id_number(3), observed_at="2026-11-01"), "household_id": "B3"},  # 3: no time zone
            warning("W-4", id_number(4), indicator="lottery_win"),                   # 4: refused after validating
        )
        result = (await intake.post("/v1/warnings:batch", headers=mca, content=body)).json()
        assert result["invalid"] == 4, result
        rejected = {row["line"]: row for row in result["rejected"]}
        assert all(rejected[line]["department"] == "civil_affairs" for line in (1, 2, 3, 4))
        assert [rejected[line]["source_record_id"] for line in (1, 2, 3, 4)] == ["W-1", "W-2", "W-3", "W-4"]
        assert rejected[1]["reason"] == "give id_number or household_id"
        assert rejected[2]["reason"] == "check digit does not match (GB 11643)"
        assert rejected[3]["household_id"] == "B3"
        assert not any(row["reason"].startswith(("Value error", "Assertion failed")) for row in result["rejected"])

        single = await intake.post("/v1/warnings", headers=mca, json=nobody)
        assert single.status_code == 422, single.text
        assert single.json()["errors"] == [{"field": "body", "message": "give id_number or household_id",
                                            "code": "household_or_id_number_missing"}]
        assert single.json()["detail"] == "body: give id_number or household_id"
