"""Bad input and exposure (issue 13, items 6 and 8): an oversized body or NDJSON line is refused with
413 naming the limit, stores nothing beyond what the problem says, and leaves the service answering;
the API description and the metrics are open, behind a token, or off, as the settings say."""
import orjson
import pydantic
import pytest
import sqlalchemy as sa

from runtime.settings import Settings
from tests.factories import household, id_number, warning

pytestmark = pytest.mark.integration

MiB = 1 << 20
LINE_LIMIT = 65_536  # the default max_ndjson_line_bytes
NDJSON = {"Content-Type": "application/x-ndjson"}


async def _count(system, service: str, sql: str) -> int:
    async with system.context(service).sessions() as session:
        return await session.scalar(sa.text(sql))


def _assert_problem(r, status: int, *phrases: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    doc = r.json()
    assert doc["status"] == status, doc
    for phrase in phrases:
        assert phrase in doc["detail"], doc
    return doc


class Pieces:
    """A request body sent piece by piece (chunked, no Content-Length); counts what was taken."""

    def __init__(self, *parts: bytes, then: bytes = b"", times: int = 0):
        self.parts, self.then, self.times, self.taken = parts, then, times, 0

    async def __aiter__(self):
        for part in (*self.parts, *(self.then for _ in range(self.times))):
            self.taken += len(part)
            yield part


def line(body: dict, length: int | None = None) -> bytes:
    """One NDJSON line, padded with JSON whitespace to `length` bytes (the newline not counted)."""
    raw = orjson.dumps(body)
    return raw + b" " * ((length or len(raw)) - len(raw)) + b"\n"


async def test_a_json_body_over_max_body_bytes_is_refused_before_it_is_read(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", "410721")
        r = await intake.post("/v1/households", headers=county, json=household("BIG-1", 1, padding="x" * (2 * MiB)))
        doc = _assert_problem(r, 413, "exceeds 1048576 bytes (max_body_bytes)", "NDJSON")
        assert doc["errors"] == [{"field": "(body)",
                                  "message": "the request body exceeds 1048576 bytes (max_body_bytes)",
                                  "code": "body_too_large"}]

        # Declared too large: refused on the header alone, not a byte of the body taken.
        declared = Pieces(orjson.dumps(household("BIG-2", 2)))
        r = await intake.post("/v1/households", headers={**county, "Content-Length": str(2 * MiB)}, content=declared)
        _assert_problem(r, 413, "max_body_bytes")
        assert declared.taken == 0

        # Undeclared (chunked), through the Idempotency-Key path that reads whole bodies: refused once
        # the count passes the limit, the rest never read, the key not claimed.
        endless = Pieces(b'{"household_id": "BIG-3", "padding": "', then=b"x" * 65_536, times=48)
        keyed = {**county, "Idempotency-Key": "limits-1"}
        _assert_problem(await intake.post("/v1/households", headers=keyed, content=endless), 413, "max_body_bytes")
        assert endless.taken <= MiB + 2 * 65_536, f"{endless.taken} bytes read of a body refused at 1 MiB"
        assert await _count(system, "intake", "select count(*) from idempotency_keys") == 0
        assert await _count(system, "intake", "select count(*) from households") == 0

        assert (await intake.get("/healthz")).status_code == 200
        r = await intake.post("/v1/households", headers=keyed, json=household("OK-1", 3))
        assert r.status_code == 201, r.text


async def test_a_lower_max_body_bytes_is_the_one_named(run_services):
    async with run_services("intake", max_body_bytes=2_000) as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", "410721")
        r = await intake.post("/v1/households", headers=county, json=household("S-1", 1, padding="p" * 2_000))
        _assert_problem(r, 413, "exceeds 2000 bytes (max_body_bytes)")
        assert (await intake.post("/v1/households", headers=county, json=household("S-2", 2))).status_code == 201


async def test_an_ndjson_batch_has_no_total_limit_only_one_per_line(run_services):
    """2.5 MB of rows, each just under the line limit, and one exactly at it: all taken."""
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", "410721")
        body = b"".join(line(household(f"N-{i}", i), LINE_LIMIT - i) for i in range(40))
        assert len(body) > 2 * MiB
        r = await intake.post("/v1/households:import", headers={**county, **NDJSON}, content=body)
        assert r.status_code == 200, r.text
        assert r.json()["registered"] == 40 and r.json()["invalid"] == 0, r.json()
        assert await _count(system, "intake", "select count(*) from households") == 40


async def test_a_line_over_max_ndjson_line_bytes_ends_the_batch_with_413_naming_it(run_services):
    """The lines before the long one are committed (a batch commits as it goes) and the problem says
    so; the long line and every line after it are not handled."""
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", "410721")
        headers = {**county, **NDJSON}
        before = line(household("L-1", 1)) + b"\n" + line(household("L-2", 2)) + b"not json\n"
        after = line(household("L-9", 9))

        # Just over the limit: line 5 (line 2 is blank, line 4 malformed).
        r = await intake.post("/v1/households:import", headers=headers,
                              content=before + line(household("L-5", 5), LINE_LIMIT + 1) + after)
        doc = _assert_problem(r, 413, "line 5 is longer than 65536 bytes (max_ndjson_line_bytes)", "lines 1-4")
        assert doc["errors"] == [{"field": "(line 5)", "message": "longer than 65536 bytes (max_ndjson_line_bytes)",
                                  "code": "ndjson_line_too_long"}]
        assert (doc["line"], doc["lines_done"], doc["max_ndjson_line_bytes"]) == (5, 4, LINE_LIMIT)
        stored = "select string_agg(household_id, ',' order by household_id) from households"
        assert await _count(system, "intake", stored) == "L-1,L-2"

        # 5 MB of one line, sent in pieces: refused once it passes the limit, the rest not read.
        long_line = Pieces(before, b'{"household_id": "', then=b"x" * 65_536, times=80)
        r = await intake.post("/v1/households:import", headers=headers, content=long_line)
        _assert_problem(r, 413, "line 5 is longer than 65536 bytes")
        assert long_line.taken <= len(before) + 3 * 65_536, f"{long_line.taken} bytes read"

        # Sent again with the line shortened: what was done answers unchanged.
        r = await intake.post("/v1/households:import", headers=headers,
                              content=before + line(household("L-5", 5)) + after)
        assert r.status_code == 200, r.text
        counts = {k: r.json()[k] for k in ("registered", "unchanged", "invalid")}
        assert counts == {"registered": 2, "unchanged": 2, "invalid": 1}, r.json()
        assert (await intake.get("/healthz")).status_code == 200


async def test_the_warnings_batch_refuses_a_long_line_the_same_way(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        department = system.token("department_system", kind="system", sub="mca", department="civil_affairs")
        body = line(warning("W-1", id_number(1))) + b"x" * (LINE_LIMIT + 1) + b"\n" + line(warning("W-3", id_number(3)))
        r = await intake.post("/v1/warnings:batch", headers={**department, **NDJSON}, content=body)
        doc = _assert_problem(r, 413, "line 2 is longer than 65536 bytes (max_ndjson_line_bytes)", "line 1 was handled")
        assert doc["errors"] == [{"field": "(line 2)", "message": "longer than 65536 bytes (max_ndjson_line_bytes)",
                                  "code": "ndjson_line_too_long"}]
        assert await _count(system, "intake", "select count(*) from warnings") == 1


DOCS = ("/docs", "/redoc", "/openapi.json")


async def test_docs_and_metrics_are_open_by_default(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        for path in (*DOCS, "/metrics", "/healthz"):
            assert (await intake.get(path)).status_code == 200, path
        assert "/v1/households" in (await intake.get("/openapi.json")).json()["paths"]


async def test_docs_and_metrics_can_be_turned_off(run_services):
    async with run_services("intake", docs_access="off", metrics_access="off") as system:
        intake = system.clients["intake"]
        administrator = system.token("administrator", kind="system", sub="ops")
        for path in (*DOCS, "/metrics", "/docs-assets/swagger-ui-bundle.js"):
            for headers in ({}, administrator):
                _assert_problem(await intake.get(path, headers=headers), 404)
        assert (await intake.get("/healthz")).status_code == 200
        assert (await intake.get("/readyz")).status_code in (200, 503)  # answers, open


async def test_docs_and_metrics_behind_a_token_need_an_administrator_or_operator(run_services):
    async with run_services("intake", docs_access="token", metrics_access="token") as system:
        intake = system.clients["intake"]
        operator = system.token("operator", "41", sub="op")
        for path in (*DOCS, "/metrics"):
            _assert_problem(await intake.get(path), 401)
            r = await intake.get(path, headers=system.token("village_cadre", "410721001001"))
            _assert_problem(r, 403, "administrator, operator")
            for allowed in (system.token("administrator", kind="system", sub="ops"), operator):
                r = await intake.get(path, headers=allowed)
                assert r.status_code == 200, (path, r.text)
        r = await intake.get("/openapi.json", headers=operator)
        assert "/v1/households" in r.json()["paths"] and "/openapi.json" not in r.json()["paths"]
        assert "fangpin_http_requests_total" in (await intake.get("/metrics", headers=operator)).text
        assert (await intake.get("/healthz")).status_code == 200


def test_access_settings_take_only_open_token_or_off():
    for wrong in ("public", "", "TOKEN"):
        with pytest.raises(pydantic.ValidationError):
            Settings(docs_access=wrong)
        with pytest.raises(pydantic.ValidationError):
            Settings(metrics_access=wrong)
