"""Who may do what (issue 13): each refusal is a 4xx problem document naming the rule, stores nothing,
and leaves the service answering. Items of issue 13 not yet done are not tested here yet."""
import orjson
import pytest
import sqlalchemy as sa

from tests.factories import VILLAGE, household, id_number, warning

pytestmark = pytest.mark.integration


async def _count(system, service: str, sql: str) -> int:
    async with system.context(service).sessions() as session:
        return await session.scalar(sa.text(sql))


async def test_a_department_token_acts_for_exactly_its_own_department(run_services):
    """A system token without a department, or a liaison's without one, posts no department's warnings."""
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        assert (await intake.post("/v1/households", headers=system.token("county_officer", "410721"),
                                  json=household("S1", 1))).status_code == 201
        no_department = [system.token("department_system", kind="system", sub="anyone"),
                         system.token("department_liaison", "410721", sub="liaison")]
        for token in no_department:
            for path, body, extra in (
                ("/v1/warnings", None, {}),
                ("/v1/warnings:batch", warning("SEC-B", id_number(1)), {"Content-Type": "application/x-ndjson"}),
            ):
                kwargs = {"json": warning("SEC-1", id_number(1))} if body is None else {
                    "content": orjson.dumps(body) + b"\n"}
                r = await intake.post(path, headers={**token, **extra}, **kwargs)
                assert r.status_code == 403, r.text
                assert r.headers["content-type"].startswith("application/problem+json")
                assert r.json()["errors"] == [{"field": "department", "message": "the token has no department claim",
                                               "code": "department_missing_in_token"}]
        # Another department's token: its warning names the token's department or is refused.
        health = system.token("department_system", kind="system", sub="nhc", department="health")
        r = await intake.post("/v1/warnings", headers=health, json=warning("SEC-2", id_number(1)))
        assert r.status_code == 403 and "posts for health, not civil_affairs" in r.json()["detail"], r.text
        assert await _count(system, "intake", "select count(*) from warnings") == 0, "a refused warning was stored"
        own = system.token("department_system", kind="system", sub="mca", department="civil_affairs")
        assert (await intake.post("/v1/warnings", headers=own, json=warning("SEC-3", id_number(1)))).status_code == 201


async def test_a_grid_worker_visits_their_own_households_only(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", "410721")
        assert (await intake.post("/v1/households", headers=county, json=household("G1", 1, grid_worker_id="gw-1"))).status_code == 201
        assert (await intake.post("/v1/households", headers=county, json=household("G2", 2, grid_worker_id="gw-2"))).status_code == 201
        worker = system.token("grid_worker", VILLAGE, sub="gw-1")

        def visit(household_id: str) -> dict:
            return {"household_id": household_id, "worker_id": "gw-1", "visited_at": "2026-11-19T09:00:00+08:00",
                    "risk_types": ["illness"]}

        r = await intake.post("/v1/visits", headers=worker, json=visit("G2"))  # the same village, another's household
        assert r.status_code == 403 and "own households" in r.json()["detail"], r.text
        assert await _count(system, "intake", "select count(*) from visits") == 0
        assert await _count(system, "intake", "select count(*) from clues") == 0
        assert (await intake.post("/v1/visits", headers=worker, json=visit("G1"))).status_code == 201


async def test_a_staff_token_without_a_region_acts_nowhere_unless_national(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        nowhere = system.token("county_officer")  # what `fangpin token` minted without --region
        r = await intake.post("/v1/households", headers=nowhere, json=household("N1", 1))
        assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json"), r.text
        assert r.json()["errors"] == [{"field": "region", "message": "empty in a staff token",
                                       "code": "region_missing_in_token"}]
        assert (await intake.get("/v1/clues", headers=nowhere)).status_code == 403
        assert await _count(system, "intake", "select count(*) from households") == 0
        assert (await intake.get("/healthz")).status_code == 200
        county = system.token("county_officer", "410721")
        assert (await intake.post("/v1/households", headers=county, json=household("N1", 1))).status_code == 201
        national = system.token("national_officer")
        assert (await intake.get("/v1/households/N1", headers=national)).status_code == 200
