"""What already held (issue 13), tried again against the running services so that it stays held:
forged, unsigned, `alg: none`, expired and foreign tokens are refused; village, township and county
act only in their region and at their level of the ladder; a household's token works for that
household only; SQL injection has no effect; deep JSON, invalid UTF-8 and malformed NDJSON lines are
refused (row by row in a batch); no raw ID number, name or phone number of a household is in any
database, log or topic.

Each refusal is a 4xx problem document (RFC 9457) naming the field or the rule, stores nothing, and
leaves the service answering."""
import base64
import json
import logging
import random
import re
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import jwt as pyjwt
import orjson
import pytest
import sqlalchemy as sa

from runtime.auth import issue_token
from runtime.clock import FixedClock
from tests.conftest import eventually, topic_records
from tests.factories import OTHER_TOWNSHIP_VILLAGE, VILLAGE, household, id_number, warning

pytestmark = pytest.mark.integration

COUNTY, TOWNSHIP = VILLAGE[:6], VILLAGE[:9]
NEIGHBOUR_VILLAGE = "410721001002"  # the same township as VILLAGE
NDJSON = {"Content-Type": "application/x-ndjson"}
JSON = {"Content-Type": "application/json"}
POOR = {"per_capita_net_income": "6200.00", "rigid_expenditure": "0", "education_ok": True, "medical_ok": True,
        "housing_safe": True, "water_safe": True}
INJECTIONS = ["x' OR '1'='1", "'; DROP TABLE households; --", "1; DELETE FROM members WHERE 1=1", "') OR 1=1 --",
              '" OR ""="', "%", "\\"]
DEEP = b"[" * 100_000 + b"]" * 100_000  # under max_body_bytes, far over any parser's nesting
DEEP_LINE = b"[" * 30_000 + b"]" * 30_000  # under max_ndjson_line_bytes


def assert_problem(r, status: int, *phrases: str) -> dict:
    """A problem document of `status` whose detail holds each phrase."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    doc = r.json()
    assert doc["status"] == status and doc["title"], doc
    for phrase in phrases:
        assert phrase in doc.get("detail", ""), doc
    return doc


def assert_field_error(r, status: int, field: str, *phrases: str) -> dict:
    doc = assert_problem(r, status, *phrases)
    assert [e["field"] for e in doc["errors"]] == [field], doc
    assert all(e["message"] for e in doc["errors"]), doc
    return doc


async def scalar(system, service: str, sql: str, **params):
    async with system.context(service).sessions() as session:
        return await session.scalar(sa.text(sql), params)


async def counts(system, service: str, *tables: str) -> dict[str, int]:
    return {t: await scalar(system, service, f"select count(*) from {t}") for t in tables}


async def healthy(system, *services: str) -> None:
    for service in services:
        assert (await system.clients[service].get("/healthz")).status_code == 200, service


def department(system, name: str = "civil_affairs") -> dict:
    return system.token("department_system", kind="system", sub=f"dept-{name}", department=name)


def ndjson(*lines: bytes | dict) -> bytes:
    return b"".join((line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines)


def cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


async def household_token(system, household_id: str) -> str:
    """The token of a household's QR link, as printed on its leaflet."""
    r = await system.clients["intake"].get(f"/v1/households/{household_id}/qr", headers=system.token("county_officer", COUNTY))
    assert r.status_code == 200, r.text
    return re.search(r"[?&]token=([^>&]+)", r.headers["link"]).group(1)


def declaration(**fields) -> dict:
    return {"phone": "13800138000", "risk_types": ["illness"], **fields}


# --- 1. tokens -------------------------------------------------------------------------------------

def forged_tokens(settings) -> dict[str, tuple[str, str]]:
    """name -> (token, words of the rule its refusal names)."""
    now = datetime.now(timezone.utc)
    claims = {"iss": settings.jwt_issuer, "sub": "forger", "kind": "staff", "role": "county_officer", "region": COUNTY,
              "iat": int(now.timestamp()), "exp": int((now + timedelta(hours=1)).timestamp())}
    kid = {"kid": settings.jwt_key_id}
    genuine = issue_token(settings, sub="forger", role="county_officer", region=COUNTY)
    header, payload, _ = genuine.split(".")
    wider = base64.urlsafe_b64encode(orjson.dumps({**claims, "region": ""})).rstrip(b"=").decode()
    return {
        "no signature": (f"{header}.{payload}.", "Signature verification failed"),
        "another secret": (pyjwt.encode(claims, "another-secret-" + "x" * 40, algorithm="HS256", headers=kid),
                           "Signature verification failed"),
        "a payload changed under its signature": (f"{header}.{wider}.{genuine.split('.')[2]}",
                                                  "Signature verification failed"),
        "alg none": (pyjwt.encode(claims, None, algorithm="none", headers=kid), "alg value is not allowed"),
        "HS512 with the right secret": (pyjwt.encode(claims, settings.jwt_secret, algorithm="HS512", headers=kid),
                                        "alg value is not allowed"),
        "expired": (issue_token(settings, sub="forger", role="county_officer", region=COUNTY, ttl=timedelta(seconds=-1)),
                    "Signature has expired"),
        "another issuer": (pyjwt.encode({**claims, "iss": "not-fangpin"}, settings.jwt_secret, algorithm="HS256",
                                        headers=kid), "Invalid issuer"),
        "no issuer": (pyjwt.encode({k: v for k, v in claims.items() if k != "iss"}, settings.jwt_secret,
                                   algorithm="HS256", headers=kid), "iss"),
        "garbage": ("not-a-token-at-all", "Not enough segments"),
    }


@pytest.mark.filterwarnings("ignore:The HMAC key is .* bytes long")  # the HS512 forgery
async def test_unsigned_forged_alg_none_expired_and_foreign_tokens_are_refused_and_store_nothing(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", COUNTY)
        assert (await intake.post("/v1/households", headers=county, json=household("T-1", 1))).status_code == 201
        before = await counts(system, "intake", "households", "members", "events", "idempotency_keys")
        for name, (token, rule) in forged_tokens(system.context("intake").settings).items():
            bearer = {"Authorization": f"Bearer {token}"}
            attempts = [
                await intake.post("/v1/households", headers=bearer, json=household("T-2", 2)),
                await intake.post("/v1/households", headers={**bearer, "Idempotency-Key": f"forged-{name}"},
                                  json=household("T-2", 2)),
                await intake.get("/v1/households/T-1", headers=bearer),
                await intake.get("/v1/clues", headers=bearer),
            ]
            for r in attempts:
                doc = assert_problem(r, 401, "invalid bearer token", rule)
                assert doc["title"] == "Unauthorized" and r.headers["www-authenticate"] == "Bearer", (name, doc)
                assert "members" not in r.text, (name, r.text)
            await healthy(system, "intake")
        assert await counts(system, "intake", "households", "members", "events", "idempotency_keys") == before
        r = await intake.post("/v1/households", headers={"Authorization": "Bearer"}, json=household("T-2", 2))
        assert_problem(r, 401, "send Authorization: Bearer")
        assert (await intake.post("/v1/households", headers=county, json=household("T-2", 2))).status_code == 201


# --- 2. region and level ---------------------------------------------------------------------------

async def test_village_township_and_county_act_only_inside_their_region(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", COUNTY)
        places = {"R-own": VILLAGE, "R-neighbour": NEIGHBOUR_VILLAGE, "R-far": OTHER_TOWNSHIP_VILLAGE}
        for n, (household_id, region) in enumerate(places.items(), start=1):
            assert (await intake.post("/v1/households", headers=county,
                                      json=household(household_id, n, region_code=region))).status_code == 201
            r = await intake.post("/v1/warnings", headers=department(system), json=warning(f"R-{n}", id_number(n)))
            assert r.status_code == 201, r.text
        cadre = system.token("village_cadre", VILLAGE, sub="cadre-1")
        township = system.token("township_officer", TOWNSHIP, sub="town-1")
        other_county = system.token("county_officer", "410722", sub="county-9")
        before = await counts(system, "intake", "households", "members", "events", "clues")

        async def clue_households(who, region: str | None = None) -> set[str]:
            r = await intake.get("/v1/clues", headers=who, params={"region": region} if region else None)
            assert r.status_code == 200, r.text
            return {c["household_id"] for c in r.json()["items"]}

        # Each reads its own region and nothing beyond it.
        assert await clue_households(cadre) == {"R-own"}
        assert await clue_households(township) == {"R-own", "R-neighbour"}
        assert await clue_households(county) == set(places)
        assert await clue_households(other_county) == set()
        outside = [(cadre, "R-neighbour", NEIGHBOUR_VILLAGE), (cadre, "R-far", OTHER_TOWNSHIP_VILLAGE),
                   (township, "R-far", OTHER_TOWNSHIP_VILLAGE), (other_county, "R-own", VILLAGE)]
        for who, household_id, region in outside:
            for path in (f"/v1/households/{household_id}", f"/v1/households/{household_id}/qr"):
                assert_problem(await intake.get(path, headers=who), 403, f"region {region} is outside your region")
            assert_problem(await intake.get("/v1/clues", headers=who, params={"region": region}), 403, "outside your region")
        for who, wider in ((cadre, TOWNSHIP), (cadre, COUNTY), (township, COUNTY), (township, "4")):
            assert_problem(await intake.get("/v1/clues", headers=who, params={"region": wider}), 403, "outside your region")
        assert (await intake.get("/v1/households/R-own", headers=cadre)).status_code == 200

        # Nor do they register there, nor pull a household of another region into their own.
        for who, region in ((cadre, NEIGHBOUR_VILLAGE), (township, OTHER_TOWNSHIP_VILLAGE), (other_county, VILLAGE)):
            r = await intake.post("/v1/households", headers=who, json=household("R-new", 7, region_code=region))
            assert_field_error(r, 403, "region_code", "outside your region")
        r = await intake.post("/v1/households", headers=cadre, json=household("R-neighbour", 2, region_code=VILLAGE))
        assert_field_error(r, 403, "region_code", f"registered in {NEIGHBOUR_VILLAGE}, outside your region")
        r = await intake.post("/v1/households:import", headers={**township, **NDJSON},
                              content=ndjson(household("R-far", 3, region_code=VILLAGE)))
        assert r.status_code == 200 and r.json()["rejected"][0]["field"] == "region_code", r.text

        # A region filter is a digit prefix of a region code, nothing else (no LIKE wildcards).
        for bad in ("%", "_", "41072100100_", "4107210010011", "41 07", "x"):
            r = await intake.get("/v1/clues", headers=county, params={"region": bad})
            assert_field_error(r, 422, "region", "a prefix of a 12-digit region code")
        assert await counts(system, "intake", "households", "members", "events", "clues") == before
        assert (await intake.get("/v1/households/R-neighbour", headers=county)).json()["region_code"] == NEIGHBOUR_VILLAGE
        await healthy(system, "intake")


async def test_a_ladder_step_is_taken_only_by_the_role_of_its_level_and_region(run_services):
    clock = FixedClock(datetime(2026, 11, 20, 1, 0, tzinfo=timezone.utc))
    async with run_services("intake", "screening", clock=clock, scheduler_seconds=0.2) as system:
        intake, screening = system.clients["intake"], system.clients["screening"]
        county = system.token("county_officer", COUNTY, sub="county-1")
        township = system.token("township_officer", TOWNSHIP, sub="town-1")
        cadre = system.token("village_cadre", VILLAGE, sub="cadre-1")
        worker = system.token("grid_worker", VILLAGE, sub="gw-1")
        assert (await intake.post("/v1/households", headers=county, json=household("L-1", 1))).status_code == 201
        assert (await intake.post("/v1/warnings", headers=department(system), json=warning("L-1", id_number(1)))).status_code == 201

        async def the_case():
            items = (await screening.get("/v1/cases", headers=county)).json()["items"]
            return items[0]["case_id"] if items else None

        case_id = await eventually(the_case)

        async def step(who, path: str, body: dict):
            return await screening.post(f"/v1/cases/{case_id}/{path}", headers=who, json=body)

        async def refused_at_level(expected_step: str, allowed: list[str], attempts) -> None:
            before = await counts(system, "screening", "events")
            for who, path, body in attempts:
                doc = assert_problem(await step(who, path, body), 403, f"{expected_step} is for")
                assert (doc["expected_step"], doc["allowed_roles"]) == (expected_step, allowed), doc
            assert await counts(system, "screening", "events") == before
            assert (await screening.get(f"/v1/cases/{case_id}", headers=county)).json()["step"] == expected_step

        assert (await step(worker, "verification", POOR)).status_code == 200
        assert (await step(cadre, "village-deliberation", {"decision": "propose", "attendees": 12})).status_code == 200
        clock.advance(timedelta(days=5))

        async def at_township_review():
            return (await screening.get(f"/v1/cases/{case_id}", headers=county)).json()["step"] == "township_review"

        await eventually(at_township_review)
        await refused_at_level("township_review", ["township_officer"], [
            (cadre, "township-review", {"decision": "pass"}),
            (worker, "township-review", {"decision": "pass"}),
            (county, "township-review", {"decision": "pass"}),  # a level above is not the township either
        ])
        other_township = system.token("township_officer", OTHER_TOWNSHIP_VILLAGE[:9], sub="town-2")
        assert_problem(await step(other_township, "township-review", {"decision": "pass"}), 403,
                       f"region {VILLAGE} is outside your region {OTHER_TOWNSHIP_VILLAGE[:9]}")
        assert (await step(township, "township-review", {"decision": "pass"})).status_code == 200

        approve = {"decision": "approve", "category": "sudden_hardship", "risk_types": ["income_drop"]}
        await refused_at_level("county_decision", ["county_officer"], [
            (cadre, "county-decision", approve), (township, "county-decision", approve),
            (worker, "county-decision", {"decision": "reject", "reason": "x"}),
        ])
        assert_problem(await step(system.token("county_officer", "410722", sub="county-9"), "county-decision", approve),
                       403, f"region {VILLAGE} is outside your region 410722")
        assert (await screening.get("/v1/subjects", headers=county)).json()["items"] == []
        r = await step(county, "county-decision", approve)
        assert r.status_code == 200 and r.json()["outcome"] == "identified", r.text
        await healthy(system, "intake", "screening")


# --- 3. a household's token ------------------------------------------------------------------------

async def test_a_households_token_declares_for_that_household_only(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", COUNTY)
        for n, household_id in enumerate(("HT-A", "HT-B"), start=1):
            assert (await intake.post("/v1/households", headers=county, json=household(household_id, n))).status_code == 201
        token = await household_token(system, "HT-A")
        bearer = {"Authorization": f"Bearer {token}"}
        assert pyjwt.decode(token, options={"verify_signature": False})["sub"] == "HT-A"

        r = await intake.post("/v1/declarations", params={"token": token}, json=declaration(household_id="HT-A"))
        assert r.status_code == 201, r.text
        r = await intake.post("/v1/declarations", headers=bearer, json=declaration(id_number=id_number(1)))
        assert r.status_code == 201, r.text
        before = await counts(system, "intake", "declarations", "clues", "events")

        other_member = id_number(2 + 500, birth="20100305")
        for body, rule in (
            (declaration(household_id="HT-B"), "this token belongs to another household"),
            (declaration(id_number=id_number(2)), "not a member of the token's household"),
            (declaration(id_number=other_member), "not a member of the token's household"),
            (declaration(household_id="HT-A", id_number=id_number(2)), "not a member of the token's household"),
        ):
            assert_problem(await intake.post("/v1/declarations", params={"token": token}, json=body), 403, rule)
            assert_problem(await intake.post("/v1/declarations", headers=bearer, json=body), 403, rule)

        # Its token is not a member of staff's, nor a department's; and staff do not declare for a household.
        staff_calls = [("GET", "/v1/clues", None), ("GET", "/v1/households/HT-A", None),
                       ("GET", "/v1/households/HT-A/qr", None), ("POST", "/v1/households", household("HT-C", 3)),
                       ("POST", "/v1/warnings", warning("HT-1", id_number(1))),
                       ("POST", "/v1/visits", {"household_id": "HT-A", "worker_id": "HT-A",
                                               "visited_at": "2026-11-19T09:00:00+08:00", "risk_types": ["illness"]}),
                       ("GET", "/v1/warnings/unmatched", None), ("GET", "/v1/visits/overdue", None)]
        for method, path, body in staff_calls:
            r = await intake.request(method, path, headers=bearer, json=body)
            assert_problem(r, 403, "the token is household/household")
        for staff in (county, system.token("village_cadre", VILLAGE)):
            assert_problem(await intake.post("/v1/declarations", headers=staff, json=declaration(household_id="HT-A")),
                           403, "made by the household itself")
        assert await counts(system, "intake", "declarations", "clues", "events") == before
        assert await counts(system, "intake", "households", "visits", "warnings") == {"households": 2, "visits": 0, "warnings": 0}
        await healthy(system, "intake")


# --- 4. SQL injection ------------------------------------------------------------------------------

async def test_sql_injection_in_paths_queries_cursors_and_bodies_has_no_effect(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", COUNTY)
        mca = department(system)
        assert (await intake.post("/v1/households", headers=county, json=household("SQ-1", 1))).status_code == 201
        assert (await intake.post("/v1/warnings", headers=mca, json=warning("SQ-1", id_number(1)))).status_code == 201
        assert (await intake.post("/v1/warnings", headers=mca, json=warning("SQ-2", id_number(9)))).status_code == 202
        tables = ("households", "members", "warnings", "clues", "events", "declarations", "visits")
        before = await counts(system, "intake", *tables)
        clue_ids = {c["clue_id"] for c in (await intake.get("/v1/clues", headers=county)).json()["items"]}

        for text in INJECTIONS:
            assert_problem(await intake.get(f"/v1/households/{quote(text, safe='')}", headers=county), 404, "no household")
            assert_field_error(await intake.get("/v1/clues", headers=county, params={"region": text}), 422, "region")
            for params in ({"status": text}, {"cursor": cursor(text)}, {"cursor": cursor(text), "status": text}):
                r = await intake.get("/v1/clues", headers=county, params=params)
                assert r.status_code == 200, (params, r.text)
                assert {c["clue_id"] for c in r.json()["items"]} <= clue_ids, r.text
            r = await intake.get("/v1/warnings/unmatched", headers=county, params={"department": text})
            assert r.status_code == 200 and r.json()["items"] == [], r.text
            assert_problem(await intake.get("/v1/warnings/unmatched", headers=mca, params={"department": text}), 403)
            r = await intake.get("/v1/visits/overdue", headers=county, params={"cursor": cursor(text)})
            assert r.status_code == 200, r.text
            for path in ("/v1/clues", "/v1/visits/overdue"):
                r = await intake.get(path, headers=county, params={"cursor": text})
                if r.status_code != 200:
                    assert_field_error(r, 422, "cursor", "not a cursor this API gave out")
        assert await counts(system, "intake", *tables) == before
        await healthy(system, "intake")

        # In a body: refused by validation where the field has a shape, kept verbatim as data where it has none.
        for n, text in enumerate(INJECTIONS, start=1):
            r = await intake.post("/v1/households", headers=county, json=household(text, 100 + n))
            assert_field_error(r, 422, "household_id", "should match pattern")
        for n, text in enumerate(INJECTIONS, start=1):
            r = await intake.post("/v1/warnings", headers=mca, json=warning(text, id_number(1), detail=text))
            assert r.status_code == 201, r.text
            r = await intake.post("/v1/warnings", headers=mca, json=warning(f"SQH-{n}", None, household_id=text))
            assert r.status_code == 202 and r.json()["outcome"] == "unmatched", r.text
        r = await intake.post("/v1/households", headers=county, json=household("SQ-1", 1, group=INJECTIONS[1]))
        assert r.status_code == 200 and r.json()["outcome"] == "updated", r.text

        after = await counts(system, "intake", *tables)
        assert after["households"] == before["households"] and after["members"] == before["members"], after
        assert after["warnings"] == before["warnings"] + 2 * len(INJECTIONS), after
        async with system.context("intake").sessions() as session:
            kept = set((await session.execute(sa.text("select source_record_id, detail from warnings"))).all())
            unmatched = (await session.execute(sa.text(
                "select household_id, status from warnings where source_record_id like 'SQH-%'"))).all()
        assert {(text, text) for text in INJECTIONS} <= kept
        assert unmatched == [(None, "unmatched")] * len(INJECTIONS), unmatched
        assert (await intake.get("/v1/households/SQ-1", headers=county)).json()["group"] == INJECTIONS[1]
        await healthy(system, "intake")


async def test_a_forged_cursor_of_the_unmatched_list_is_refused_not_a_server_error(run_services):
    """A cursor of /v1/warnings/unmatched is department + U+001F + source record id; a forged one
    without the separator was compared as a 1-tuple against a 2-column tuple."""
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", COUNTY)
        assert (await intake.post("/v1/warnings", headers=department(system), json=warning("UC-1", id_number(9)))).status_code == 202
        for text in INJECTIONS:
            r = await intake.get("/v1/warnings/unmatched", headers=county, params={"cursor": cursor(text)})
            assert r.status_code != 500, r.text
            assert r.status_code == 200 or r.headers["content-type"].startswith("application/problem+json"), r.text
        await healthy(system, "intake")


# --- 5. bad JSON -----------------------------------------------------------------------------------

def non_utf8(body: dict, field: str) -> bytes:
    """`body` as JSON with bytes that are not UTF-8 inside the string value of `field`."""
    marker = "NOT-UTF8-MARKER"
    raw = orjson.dumps({**body, field: marker})
    return raw.replace(marker.encode(), b"ab\xff\xfe\xc3(cd")


async def test_deep_json_and_invalid_utf8_are_refused_and_a_batch_refuses_them_row_by_row(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", COUNTY)
        mca = department(system)
        tables = ("households", "members", "warnings", "clues", "events")
        before = await counts(system, "intake", *tables)
        bodies = [
            ("/v1/households", county, DEEP),
            ("/v1/households", county, b'{"household_id": "J-1", "members": ' + DEEP + b"}"),
            ("/v1/warnings", mca, DEEP),
            ("/v1/households", county, non_utf8(household("J-2", 2), "group")),
            ("/v1/households", county, non_utf8(household("J-3", 3), "household_id")),
            ("/v1/warnings", mca, non_utf8(warning("J-4", id_number(4)), "detail")),
        ]
        for path, who, body in bodies:
            for extra in ({}, {"Idempotency-Key": f"bad-json-{uuid.uuid4()}"}):
                r = await intake.post(path, headers={**who, **JSON, **extra}, content=body)
                assert 400 <= r.status_code < 500, r.text
                assert_problem(r, r.status_code)
                await healthy(system, "intake")
        assert await counts(system, "intake", *tables) == before
        remembered = "select count(*) from idempotency_keys where status_code between 400 and 499"
        assert await scalar(system, "intake", remembered) == len(bodies), "only the refusals are remembered"

        # In a batch, each bad line is rejected with its line number and the good lines around it go in.
        for path, who, good, bad_utf8 in (
            ("/v1/households:import", county, [household("J-6", 6), household("J-7", 7)],
             non_utf8(household("J-8", 8), "group")),
            ("/v1/warnings:batch", mca, [warning("J-6", id_number(6)), warning("J-7", id_number(7))],
             non_utf8(warning("J-8", id_number(8)), "detail")),
        ):
            lines = [good[0], b'{"household_id": "J-5", ', bad_utf8, DEEP_LINE, good[1]]
            r = await intake.post(path, headers={**who, **NDJSON}, content=ndjson(*lines))
            assert r.status_code == 200, r.text
            result = r.json()
            assert result["rows"] == 5 and result["invalid"] == 3, result
            rejected = {row["line"]: row["reason"] for row in result["rejected"]}
            assert sorted(rejected) == [2, 3, 4], result
            assert all("JSON" in reason for reason in rejected.values()), result
            await healthy(system, "intake")
        after = await counts(system, "intake", *tables)
        assert (after["households"], after["warnings"]) == (before["households"] + 2, before["warnings"] + 2), after
        assert await scalar(system, "intake", "select string_agg(household_id, ',' order by household_id) from households") == "J-6,J-7"


async def test_deep_json_and_invalid_utf8_bodies_are_refused_naming_the_rule(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", COUNTY)
        for body, words in ((DEEP, ("nest", "deep", "depth")), (non_utf8(household("J-2", 2), "group"), ("UTF-8", "utf-8"))):
            r = await intake.post("/v1/households", headers={**county, **JSON}, content=body)
            doc = assert_problem(r, r.status_code)
            assert r.status_code in (400, 422), r.text
            assert doc.get("detail") and any(word in doc["detail"] for word in words), doc
            assert doc.get("errors") and all(e.get("field") and e.get("message") for e in doc["errors"]), doc


# --- 6. personal data ------------------------------------------------------------------------------

def unique_name(rng: random.Random, surname: str) -> str:
    return surname + "".join(chr(rng.randrange(0x4E00, 0x9FA5)) for _ in range(3))


def spellings(secret: str) -> list[str]:
    """How a value could appear in text: as is, JSON-escaped, and as the hex of its UTF-8 bytes (bytea)."""
    forms = {secret, json.dumps(secret)[1:-1], secret.encode().hex()}
    return sorted(forms)


async def all_rows_as_text(system, service: str) -> dict[str, list[str]]:
    async with system.context(service).sessions() as session:
        tables = (await session.execute(sa.text(
            "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE' "
            "and table_schema not in ('pg_catalog', 'information_schema')"))).all()
        return {f"{schema}.{name}": list((await session.execute(sa.text(f'select t::text from "{schema}"."{name}" t'))).scalars())
                for schema, name in tables}


def leaks(secrets: dict[str, str], text: str) -> list[str]:
    lowered = text.lower()
    return [what for what, secret in secrets.items() for form in spellings(secret) if form.lower() in lowered]


async def test_no_raw_id_number_name_or_phone_of_a_household_is_in_any_database_log_or_topic(run_services, caplog):
    caplog.set_level(logging.DEBUG)
    rng = random.Random(uuid.uuid4().int)
    names = {f"name {n}": unique_name(rng, surname) for n, surname in enumerate(("欧阳", "司马", "诸葛", "上官", "王"))}
    phone = f"139{rng.randrange(10**8):08d}"
    heads = [id_number(1), id_number(2)]  # the first ends in X
    assert heads[0].endswith("X")
    unregistered = id_number(77, birth="19700707")
    invalid = id_number(78)[:17] + ("0" if id_number(78)[17] != "0" else "1")  # a wrong check digit
    people = {
        "PD-A": [{"id_number": heads[0], "name": names["name 0"], "relation": "head", "labor_capacity": "full"},
                 {"id_number": id_number(501, birth="20100305"), "name": names["name 1"], "relation": "child",
                  "labor_capacity": "none", "in_school": True}],
        "PD-B": [{"id_number": heads[1], "name": names["name 2"], "relation": "head", "labor_capacity": "weak"},
                 {"id_number": id_number(502, birth="19500202"), "name": names["name 3"], "relation": "spouse",
                  "labor_capacity": "none", "disabled": True}],
    }
    secrets = {**names, "phone": phone, "unregistered id": unregistered, "invalid id": invalid}
    secrets.update({f"id of {m['name']}": m["id_number"] for members in people.values() for m in members})

    async with run_services("intake", "screening") as system:
        intake, screening = system.clients["intake"], system.clients["screening"]
        county = system.token("county_officer", COUNTY, sub="county-1")
        mca = department(system)
        r = await intake.post("/v1/households", headers={**county, "Idempotency-Key": "pd-a"},
                              json=household("PD-A", 1, members=people["PD-A"], grid_worker_id="gw-1"))
        assert r.status_code == 201, r.text
        r = await intake.post("/v1/households:import", headers={**county, **NDJSON},
                              content=ndjson(household("PD-B", 2, members=people["PD-B"])))
        assert r.json()["registered"] == 1, r.text
        refused = household("PD-C", 3, members=[{**people["PD-A"][0], "id_number": invalid, "name": names["name 4"]}])
        assert (await intake.post("/v1/households", headers=county, json=refused)).status_code == 422
        taken = household("PD-C", 3, members=[{**people["PD-A"][0], "name": names["name 4"]}])
        assert (await intake.post("/v1/households", headers=county, json=taken)).status_code == 409
        shown = (await intake.get("/v1/households/PD-A", headers=county)).json()["members"]
        assert {m["name"] for m in shown} == {names["name 0"], names["name 1"]}, shown

        r = await intake.post("/v1/warnings", headers={**mca, "Idempotency-Key": "pd-w1"},
                              json=warning("PD-W1", heads[0].lower()))
        assert r.status_code == 201, r.text
        r = await intake.post("/v1/warnings:batch", headers={**mca, **NDJSON},
                              content=ndjson(warning("PD-W2", heads[1]), warning("PD-W3", unregistered)))
        assert (r.json()["accepted"], r.json()["unmatched"]) == (1, 1), r.text
        assert (await intake.post("/v1/warnings", headers=mca, json=warning("PD-W4", unregistered))).status_code == 202
        token = await household_token(system, "PD-A")
        r = await intake.post("/v1/declarations", params={"token": token}, headers={"Idempotency-Key": "pd-d1"},
                              json=declaration(id_number=people["PD-A"][1]["id_number"].lower(), phone=phone,
                                               description="the roof leaks"))
        assert r.status_code == 201, r.text
        r = await intake.post("/v1/visits", headers=system.token("grid_worker", VILLAGE, sub="gw-1"), json={
            "household_id": "PD-A", "worker_id": "gw-1", "visited_at": "2026-11-19T09:00:00+08:00",
            "risk_types": ["illness"], "notes": "the head of the household was in hospital last week"})
        assert r.status_code == 201, r.text

        async def cases_opened():
            items = (await screening.get("/v1/cases", headers=county)).json()["items"]
            return {c["household_id"] for c in items} == {"PD-A", "PD-B"}

        await eventually(cases_opened)
        records = []
        for service in ("intake", "screening"):
            stored = await scalar(system, service, "select count(*) from events")
            on_topic = await topic_records(system.context(service), stored)
            assert len(on_topic) >= stored > 0, (service, len(on_topic), stored)
            records.extend(on_topic)
        rows = {f"{service}:{table}": texts for service in ("intake", "screening")
                for table, texts in (await all_rows_as_text(system, service)).items()}

    assert sum(map(len, rows.values())) > 20 and any("PD-A" in t for texts in rows.values() for t in texts)
    for table, texts in rows.items():
        for text in texts:
            assert not leaks(secrets, text), (table, leaks(secrets, text), text)
    for record in records:
        parts = [record.key or b"", record.value or b"", *(k.encode() + b"=" + (v or b"") for k, v in record.headers)]
        text = b"\n".join(parts).decode("utf-8", "replace")
        assert not leaks(secrets, text), (leaks(secrets, text), text)
    log = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert any(r.levelno == logging.DEBUG for r in caplog.records) and "PD-" in log, "the log was not captured"
    assert not leaks(secrets, log), leaks(secrets, log)
