"""Numbers and dates (issue 13, item 5): an amount below 0 or above its indicator's maximum, a
moment without a time zone, before 2000 or in the future, a birth date out of its window: each is
a 422 problem document naming the field and the rule, stores nothing, and leaves the service
answering; in a batch, such a row is rejected on its own and the others go in."""
import orjson
import pytest
import sqlalchemy as sa

from tests.factories import VILLAGE, household, id_number, warning

pytestmark = pytest.mark.integration

# (value, words of the rule the message must hold)
BAD_MOMENTS = [
    ("9999-12-31T00:00:00+08:00", "must not be in the future"),
    ("2099-01-01T00:00:00", "must have a time zone"),
    ("0001-01-01T00:00:00+08:00", "must not be before 2000-01-01"),  # UTC year 0: was a 500
    ("1999-12-31T23:59:59+08:00", "must not be before 2000-01-01"),
]
BAD_WARNINGS = [  # (field, change to a civil_affairs/new_dibao warning, words of the rule)
    ("amount", {"amount": "-1"}, "must be 0 or more"),
    ("amount", {"amount": "1000000.01"}, "must be at most 1,000,000 for the indicator new_dibao"),
    *[("observed_at", {"observed_at": value}, rule) for value, rule in BAD_MOMENTS],
]


async def _count(system, service: str, table: str) -> int:
    async with system.context(service).sessions() as session:
        return await session.scalar(sa.text(f"select count(*) from {table}"))


async def _counts(system, service: str, *tables: str) -> dict[str, int]:
    return {table: await _count(system, service, table) for table in tables}


def _names_the_rule(r, field: str, rule: str) -> None:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    errors = r.json()["errors"]
    assert [e["field"] for e in errors] == [field], r.text
    assert rule in errors[0]["message"], r.text


async def test_a_bad_amount_or_moment_of_a_warning_is_refused_and_nothing_is_stored(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        assert (await intake.post("/v1/households", headers=system.token("county_officer", "410721"),
                                  json=household("N1", 1))).status_code == 201
        mca = system.token("department_system", kind="system", sub="mca", department="civil_affairs")
        nhsa = system.token("department_system", kind="system", sub="nhsa", department="medical_insurance")
        before = await _counts(system, "intake", "warnings", "clues", "events")
        medical = dict(department="medical_insurance", indicator="high_medical_expense")
        cases = [(mca, field, warning(f"V-{n}", id_number(1), **change), rule)
                 for n, (field, change, rule) in enumerate(BAD_WARNINGS)]
        cases += [(nhsa, "amount", warning("V-med", id_number(1), **medical, amount="10000000.01"),
                   "must be at most 10,000,000 for the indicator high_medical_expense")]
        for token, field, body, rule in cases:
            _names_the_rule(await intake.post("/v1/warnings", headers=token, json=body), field, rule)
            assert (await intake.get("/healthz")).status_code == 200
        assert await _counts(system, "intake", "warnings", "clues", "events") == before, "a refused warning was stored"

        # The edges are taken: 0, each maximum, the first moment of 2000 (UTC).
        edges = [(mca, warning("E-0", id_number(1), amount="0", observed_at="2000-01-01T08:00:00+08:00")),
                 (mca, warning("E-1", id_number(1), amount="1000000.00")),
                 (nhsa, warning("E-2", id_number(1), **medical, amount="10000000.00"))]
        for token, body in edges:
            r = await intake.post("/v1/warnings", headers=token, json=body)
            assert r.status_code == 201, r.text


async def test_a_batch_rejects_each_bad_value_row_by_row_and_takes_the_rest(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        assert (await intake.post("/v1/households", headers=system.token("county_officer", "410721"),
                                  json=household("N1", 1))).status_code == 201
        mca = system.token("department_system", kind="system", sub="mca", department="civil_affairs")
        good = [warning(f"G-{n}", id_number(1)) for n in range(3)]
        bad = [warning(f"B-{n}", id_number(1), **change) for n, (_, change, _) in enumerate(BAD_WARNINGS)]
        rows = [good[0], *bad[:3], good[1], *bad[3:], good[2]]
        body = b"".join(orjson.dumps(row) + b"\n" for row in rows)
        r = await intake.post("/v1/warnings:batch", headers={**mca, "Content-Type": "application/x-ndjson"}, content=body)
        assert r.status_code == 200, r.text
        result = r.json()
        assert (result["rows"], result["accepted"], result["invalid"]) == (len(rows), 3, len(bad)), result
        rejected = {row["line"]: (row["field"], row["reason"]) for row in result["rejected"]}
        bad_lines = [line for line, row in enumerate(rows, start=1) if row in bad]
        assert sorted(rejected) == bad_lines
        for line, (field, _, rule) in zip(bad_lines, BAD_WARNINGS):
            assert rejected[line][0] == field and rule in rejected[line][1], (line, rejected[line])
        assert await _count(system, "intake", "warnings") == 3
        assert await _count(system, "intake", "clues") == 3
        assert (await intake.get("/healthz")).status_code == 200


async def test_a_visit_at_a_bad_moment_is_refused_and_nothing_is_stored(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        assert (await intake.post("/v1/households", headers=system.token("county_officer", "410721"),
                                  json=household("N1", 1, grid_worker_id="gw-1"))).status_code == 201
        worker = system.token("grid_worker", VILLAGE, sub="gw-1")
        for value, rule in BAD_MOMENTS:
            r = await intake.post("/v1/visits", headers=worker, json={
                "household_id": "N1", "worker_id": "gw-1", "visited_at": value, "risk_types": ["illness"]})
            _names_the_rule(r, "visited_at", rule)
            assert (await intake.get("/healthz")).status_code == 200
        assert await _counts(system, "intake", "visits", "clues") == {"visits": 0, "clues": 0}


async def test_a_birth_date_out_of_its_window_is_refused_and_nothing_is_stored(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", "410721")
        head = household("N1", 1)["members"][0]
        cases = [
            ({**head, "id_number": id_number(1, birth="18991231")}, "members[0].id_number", "must not be before 1900-01-01"),
            ({**head, "id_number": id_number(1, birth="20990101")}, "members[0].id_number", "must not be after today"),
            ({**head, "birth_date": "1899-12-31"}, "members[0].birth_date", "must not be before 1900-01-01"),
            ({**head, "birth_date": "2099-01-01"}, "members[0].birth_date", "must not be after today"),
        ]
        for member, field, rule in cases:
            r = await intake.post("/v1/households", headers=county, json=household("N1", 1, members=[member]))
            _names_the_rule(r, field, rule)
            assert (await intake.get("/healthz")).status_code == 200
        assert await _counts(system, "intake", "households", "members") == {"households": 0, "members": 0}
        oldest = {**head, "id_number": id_number(1, birth="19000101"), "birth_date": "1900-01-01"}
        assert (await intake.post("/v1/households", headers=county,
                                  json=household("N1", 1, members=[oldest]))).status_code == 201


async def test_a_verification_with_a_negative_or_huge_income_is_refused(run_services):
    async with run_services("screening") as system:
        screening = system.clients["screening"]
        officer = system.token("township_officer", "410721001")
        findings = {"education_ok": True, "medical_ok": True, "housing_safe": True, "water_safe": True}
        before = await _count(system, "screening", "events")
        for field, values, rule in (
            ("per_capita_net_income", {"per_capita_net_income": "-0.01"}, "must be 0 or more"),
            ("per_capita_net_income", {"per_capita_net_income": "100000000.01"}, "must be at most 100,000,000"),
            ("rigid_expenditure", {"per_capita_net_income": "5000", "rigid_expenditure": "-5"}, "must be 0 or more"),
        ):
            r = await screening.post("/v1/cases/no-such-case/verification", headers=officer, json={**findings, **values})
            _names_the_rule(r, field, rule)
        assert await _count(system, "screening", "events") == before
        assert (await screening.get("/healthz")).status_code == 200
