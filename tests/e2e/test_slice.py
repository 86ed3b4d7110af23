"""The first slice end to end: household and warning on intake -> a case on screening -> a task
in the village cadre's inbox on notifier; through HTTP, the real store and the real broker."""
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from runtime.telemetry import setup_tracing
from tests.conftest import eventually
from tests.factories import OTHER_TOWNSHIP_VILLAGE, VILLAGE, household, id_number, warning

pytestmark = pytest.mark.integration


async def test_warning_reaches_the_village_cadres_inbox_once(run_services):
    async with run_services("intake", "screening", "notifier") as system:
        intake, screening, notifier = (system.clients[s] for s in ("intake", "screening", "notifier"))
        county = system.token("county_officer", "410721")
        cadre = system.token("village_cadre", VILLAGE, sub="cadre-1")
        department = system.token("department_system", kind="system", department="civil_affairs", sub="mca")

        r = await notifier.post("/v1/staff", headers=county, json={
            "staff_id": "cadre-1", "name": "李村", "role": "village_cadre", "region_code": VILLAGE})
        assert r.status_code == 201, r.text
        r = await intake.post("/v1/households", headers=county, json=household("H1", 1))
        assert r.status_code == 201, r.text
        assert r.json()["outcome"] == "registered"

        first = await intake.post("/v1/warnings", headers=department, json=warning("MCA-1", id_number(1)))
        assert first.status_code == 201, first.text
        assert first.json()["outcome"] == "accepted"
        again = await intake.post("/v1/warnings", headers=department, json=warning("MCA-1", id_number(1)))
        assert again.status_code == 200
        assert again.json()["outcome"] == "duplicate"
        assert again.json()["clue_id"] == first.json()["clue_id"]

        async def inbox():
            r = await notifier.get("/v1/inbox", headers=cadre)
            return r.json()["items"]

        items = await eventually(inbox)
        assert len(items) == 1 and items[0]["kind"] == "verify_household"

        cases = (await screening.get("/v1/cases", headers=county)).json()["items"]
        assert len(cases) == 1
        assert cases[0]["household_id"] == "H1" and cases[0]["step"] == "verification_visit"
        assert cases[0]["clue_ids"] == [first.json()["clue_id"]]
        assert items[0]["reference"] == f"case:{cases[0]['case_id']}"

        detail = (await screening.get(f"/v1/cases/{cases[0]['case_id']}", headers=cadre)).json()
        assert [h["event_type"] for h in detail["history"]] == ["VerificationCaseOpened"]

        # A second clue of another department attaches to the open case: still one case, one task.
        r = await intake.post("/v1/warnings", headers=system.token("department_system", kind="system", sub="mi",
                                                                   department="medical_insurance"),
                              json=warning("MI-9", id_number(1), department="medical_insurance",
                                           indicator="high_medical_expense", amount="23000.00"))
        assert r.status_code == 201, r.text

        async def attached():
            case = (await screening.get(f"/v1/cases/{cases[0]['case_id']}", headers=county)).json()
            return case if len(case["clue_ids"]) == 2 else None

        case = await eventually(attached)
        assert set(case["risk_types"]) == {"income_drop", "illness", "expense_surge"}
        assert len((await screening.get("/v1/cases", headers=county)).json()["items"]) == 1
        assert len(await inbox()) == 1


async def test_bad_input_is_refused_with_the_field_and_nothing_stored(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", "410721")

        bad_digit = household("H2", 2)
        bad_digit["members"][0]["id_number"] = id_number(2)[:17] + ("0" if id_number(2)[17] != "0" else "1")
        r = await intake.post("/v1/households", headers=county, json=bad_digit)
        assert r.status_code == 422
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["errors"][0]["field"] == "members[0].id_number"
        assert "check digit" in r.json()["errors"][0]["message"]

        r = await intake.post("/v1/households", headers=county, json=household("H2", 2, region_code="41072100100"))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "region_code"

        no_status = household("H2", 2)
        del no_status["poverty_status"]
        r = await intake.post("/v1/households", headers=county, json=no_status)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "poverty_status"

        r = await intake.post("/v1/households", headers={**county, "content-type": "application/json"}, content=b'{"household_id": ')
        assert r.status_code == 422 and "malformed JSON" in r.json()["detail"]

        r = await intake.post("/v1/warnings", headers=system.token("department_system", kind="system", department="civil_affairs"),
                              json=warning("X-1", id_number(2), indicator="no_such_indicator"))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "indicator"

        assert (await intake.get("/v1/households/H2", headers=county)).status_code == 404
        async with system.context("intake").sessions() as session:
            from sqlalchemy import text
            assert await session.scalar(text("select count(*) from events")) == 0


async def test_tokens_and_regions_are_enforced(run_services):
    async with run_services("intake", "screening") as system:
        intake, screening = system.clients["intake"], system.clients["screening"]
        r = await intake.post("/v1/households", json=household("H3", 3))
        assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")
        r = await intake.post("/v1/households", headers={"Authorization": "Bearer not-a-jwt"}, json=household("H3", 3))
        assert r.status_code == 401

        other_cadre = system.token("village_cadre", OTHER_TOWNSHIP_VILLAGE)
        r = await screening.get("/v1/cases", headers=other_cadre, params={"region": "410721001"})
        assert r.status_code == 403
        r = await intake.post("/v1/households", headers=other_cadre, json=household("H3", 3))
        assert r.status_code == 403
        assert (await screening.get("/v1/healthz")).status_code == 404  # health lives at the root
        assert (await screening.get("/healthz")).json()["status"] == "ok"
        ready = await screening.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": True, "broker": True, "background_tasks": True}
        assert {"state", "lag", "error"} <= set(ready.json()["relay"]) and "lag" in ready.json()["consumer"]


async def test_idempotency_key_gives_the_same_answer_and_no_second_effect(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = {**system.token("county_officer", "410721"), "Idempotency-Key": "k-1"}
        first = await intake.post("/v1/households", headers=county, json=household("H4", 4))
        second = await intake.post("/v1/households", headers=county, json=household("H4", 4))
        assert first.status_code == second.status_code == 201
        assert second.json() == first.json()
        assert second.headers.get("idempotent-replayed") == "true"
        changed = await intake.post("/v1/households", headers=county, json=household("H4", 4, group="9"))
        assert changed.status_code == 422 and changed.json()["errors"][0]["field"] == "Idempotency-Key"
        async with system.context("intake").sessions() as session:
            from sqlalchemy import text
            assert await session.scalar(text("select count(*) from events where stream_id = 'household-H4'")) == 1


async def test_trace_continues_from_the_intake_request_into_the_screening_consumer(run_services):
    exporter = InMemorySpanExporter()
    setup_tracing("tests", SimpleSpanProcessor(exporter))
    async with run_services("intake", "screening") as system:
        intake, screening = system.clients["intake"], system.clients["screening"]
        county = system.token("county_officer", "410721")
        await intake.post("/v1/households", headers=county, json=household("H5", 5))
        r = await intake.post("/v1/warnings", headers=system.token("department_system", kind="system", department="civil_affairs"),
                              json=warning("T-1", id_number(5)))
        request_trace_id = r.headers["traceparent"].split("-")[1]

        async def consumer_span():
            return [s for s in exporter.get_finished_spans()
                    if s.name == "consume RiskClueRaised" and s.attributes.get("fangpin.service") == "screening"]

        spans = await eventually(consumer_span)
        assert format(spans[0].context.trace_id, "032x") == request_trace_id
        server_spans = [s for s in exporter.get_finished_spans() if s.name == "POST /v1/warnings"]
        assert format(server_spans[-1].context.trace_id, "032x") == request_trace_id
