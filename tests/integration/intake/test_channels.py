"""The two channels besides department warnings — grid-worker visits and self-declaration by QR
code — and the priority groups clues are marked with."""
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlparse

import pytest
import sqlalchemy as sa

from runtime.clock import FixedClock
from services.intake.api.declarations import qr_png
from tests.factories import household, id_number, warning

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)


async def test_visits_record_risk_or_none_and_the_overdue_list_follows_the_weekly_rule(run_services):
    clock = FixedClock(NOW)
    async with run_services("intake", clock=clock) as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", "410721")
        for n, hid in enumerate(("V1", "V2", "V3"), start=1):
            assert (await intake.post("/v1/households", headers=county, json=household(hid, n))).status_code == 201
        worker = system.token("grid_worker", "410721001001", sub="gw-1")

        calm = await intake.post("/v1/visits", headers=worker, json={
            "household_id": "V1", "worker_id": "gw-1", "visited_at": "2026-11-19T09:00:00+08:00", "risk_types": []})
        assert calm.status_code == 201 and calm.json()["clue_id"] is None
        risky = await intake.post("/v1/visits", headers=worker, json={
            "household_id": "V2", "worker_id": "gw-1", "visited_at": "2026-11-10T09:00:00+08:00",
            "risk_types": ["illness"], "notes": "head of household in hospital"})
        assert risky.status_code == 201 and risky.json()["clue_id"]

        other_worker = await intake.post("/v1/visits", headers=worker, json={
            "household_id": "V3", "worker_id": "gw-2", "visited_at": "2026-11-19T09:00:00+08:00"})
        assert other_worker.status_code == 403
        future = await intake.post("/v1/visits", headers=worker, json={
            "household_id": "V3", "worker_id": "gw-1", "visited_at": "2026-12-30T09:00:00+08:00"})
        assert future.status_code == 422 and future.json()["errors"][0]["field"] == "visited_at"

        clues = (await intake.get("/v1/clues?channel=grid_visit", headers=county)).json()["items"]
        assert [(c["household_id"], c["risk_types"], c["source"]["worker_id"]) for c in clues] == [("V2", ["illness"], "gw-1")]

        overdue = (await intake.get("/v1/visits/overdue?region=410721001", headers=county)).json()["items"]
        assert [(o["household_id"], o["last_visited_at"] is None) for o in overdue] == [("V2", False), ("V3", True)]
        clock.advance(timedelta(days=7))
        overdue = (await intake.get("/v1/visits/overdue", headers=county)).json()["items"]
        assert [o["household_id"] for o in overdue] == ["V1", "V2", "V3"]
        other = system.token("village_cadre", "410721002001")
        assert (await intake.get("/v1/visits/overdue?region=410721001", headers=other)).status_code == 403

        async with system.context("intake").sessions() as session:
            types = (await session.execute(sa.text("select event_type from events where stream_id like 'visit-%'"))).scalars().all()
        assert sorted(types) == ["VisitRecorded", "VisitRecorded"]


async def test_a_household_declares_with_its_own_qr_token_and_no_other(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", "410721")
        for n, hid in ((1, "Q1"), (2, "Q2")):
            assert (await intake.post("/v1/households", headers=county, json=household(hid, n))).status_code == 201

        qr = await intake.get("/v1/households/Q1/qr", headers=county)
        assert qr.status_code == 200 and qr.headers["content-type"] == "image/png"
        link = qr.headers["link"].split(">")[0].lstrip("<")
        assert qr.content == qr_png(link), "the PNG encodes the link it announces"
        token = parse_qs(urlparse(link).query)["token"][0]
        other_token = parse_qs(urlparse((await intake.get("/v1/households/Q2/qr", headers=county)).headers["link"]
                                        .split(">")[0].lstrip("<")).query)["token"][0]
        body = {"household_id": "Q1", "phone": "13800000000", "risk_types": ["illness", "expense_surge"],
                "description": "my husband fell ill"}

        ok = await intake.post(f"/v1/declarations?token={token}", json=body)
        assert ok.status_code == 201, ok.text
        by_id_number = await intake.post("/v1/declarations", headers={"Authorization": f"Bearer {token}"},
                                         json={**body, "household_id": None, "id_number": id_number(1)})
        assert by_id_number.status_code == 201

        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        assert (await intake.post(f"/v1/declarations?token={forged}", json=body)).status_code == 401
        assert (await intake.post(f"/v1/declarations?token={other_token}", json=body)).status_code == 403
        foreign_member = {**body, "household_id": None, "id_number": id_number(2)}
        assert (await intake.post(f"/v1/declarations?token={token}", json=foreign_member)).status_code == 403
        staff_token = system.token("village_cadre", "410721001001")["Authorization"].split()[1]
        assert (await intake.post(f"/v1/declarations?token={staff_token}", json=body)).status_code == 403
        assert (await intake.post("/v1/declarations", json=body)).status_code == 401

        clues = (await intake.get("/v1/clues?channel=self_declaration", headers=county)).json()["items"]
        assert [c["household_id"] for c in clues] == ["Q1", "Q1"]
        assert clues[0]["risk_types"] == ["illness", "expense_surge"]
        async with system.context("intake").sessions() as session:
            stored = (await session.execute(sa.text("select phone_cipher from declarations"))).scalars().all()
            published = (await session.execute(sa.text("select payload::text from events"))).scalars().all()
        assert len(stored) == 2 and all(b"13800000000" not in p for p in stored)
        assert not any("13800000000" in p for p in published), "the phone number stays out of events"


async def test_the_qr_link_opens_the_declaration_page_at_the_public_base_url(run_services):
    """The link is built from the one public address a deployment sets (a trailing slash or not)."""
    async with run_services("intake", public_base_url="https://fangpin.county.gov.cn/") as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", "410721")
        assert (await intake.post("/v1/households", headers=county, json=household("QB1", 1))).status_code == 201
        qr = await intake.get("/v1/households/QB1/qr", headers=county)
        link = qr.headers["link"].split(">")[0].lstrip("<")
        assert link.startswith("https://fangpin.county.gov.cn/declare?token="), link
        assert qr.content == qr_png(link)
        token = parse_qs(urlparse(link).query)["token"][0]
        declared = await intake.post(f"/v1/declarations?token={token}",
                                     json={"household_id": "QB1", "phone": "13800000000", "risk_types": ["illness"]})
        assert declared.status_code == 201, declared.text


async def test_the_declaration_page_reads_its_household_masked_with_the_households_token_only(run_services):
    async with run_services("intake") as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", "410721")
        body = household("M1", 1)
        body["members"][0]["name"] = "王建国"
        assert (await intake.post("/v1/households", headers=county, json=body)).status_code == 201
        link = (await intake.get("/v1/households/M1/qr", headers=county)).headers["link"].split(">")[0].lstrip("<")
        token = parse_qs(urlparse(link).query)["token"][0]

        seen = await intake.get("/v1/declarations/household", headers={"Authorization": f"Bearer {token}"})
        assert seen.status_code == 200 and seen.headers["cache-control"] == "no-store"
        assert seen.json() == {"household_id": "M1", "region_code": "410721001001", "village": "示范镇1示范村1",
                               "head_name": "王*国", "members": 2}
        assert "建国" not in seen.text and "410721" not in seen.text.replace("410721001001", "")

        refusals = {None: (401, "token_missing"), token[:-8] + token[-4:] + token[-8:-4]: (401, "token_invalid"),
                    system.token("village_cadre", "410721001001")["Authorization"].split()[1]: (403, "household_token_required")}
        for bad, (status, code) in refusals.items():
            refused = await intake.get("/v1/declarations/household", headers={"Authorization": f"Bearer {bad}"} if bad else {})
            assert (refused.status_code, refused.json()["code"]) == (status, code)
            assert "M1" not in refused.text


async def test_clues_are_marked_with_their_priority_group(run_services):
    async with run_services("intake", clock=FixedClock(NOW)) as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", "410721")
        poor = household("PG1", 1)  # out_of_poverty: a formerly-poor household
        ordinary = household("PG2", 2, poverty_status="ordinary")
        for body in (poor, ordinary):
            assert (await intake.post("/v1/households", headers=county, json=body)).status_code == 201

        async def send(department, source, id_no, indicator, **extra):
            token = system.token("department_system", kind="system", department=department)
            r = await intake.post("/v1/warnings", headers=token, json=warning(source, id_no, department, indicator, **extra))
            assert r.status_code == 201, r.text
            return r.json()["clue_id"]

        marks = {
            await send("civil_affairs", "W1", id_number(2), "new_dibao"): ["new_allowance_or_extreme_poverty"],
            # of 2025's group, its own year's: listed by ?priority_group= as of 2025 only (see the new-year test)
            await send("civil_affairs", "W2", id_number(2), "new_dibao", observed_at="2025-03-01T08:00:00+08:00"):
                ["new_allowance_or_extreme_poverty"],
            await send("rural_revitalization", "W3", id_number(1), "income_fell_two_years"): ["formerly_poor_income_fell"],
            await send("rural_revitalization", "W4", id_number(2), "income_fell_last_year"): [],  # not formerly poor
            await send("rural_revitalization", "W5", id_number(1), "quarterly_income_fall"): ["formerly_poor_quarterly_income_fall"],
            await send("human_resources", "W6", id_number(2), "unemployment"): ["employment_business_or_accident_shock"],
            await send("civil_affairs", "W7", id_number(2), "relief_application"): ["relief_application"],
        }
        clues = {c["clue_id"]: c["priority_groups"]
                 for c in (await intake.get("/v1/clues?limit=50", headers=county)).json()["items"]}
        assert clues == marks
        shocked = (await intake.get("/v1/clues?priority_group=employment_business_or_accident_shock", headers=county)).json()
        assert [c["indicator"] for c in shocked["items"]] == ["unemployment"]
        async with system.context("intake").sessions() as session:
            payloads = (await session.execute(sa.text(
                "select payload from events where event_type = 'RiskClueRaised'"))).scalars().all()
        assert {p["clue_id"]: p["priority_groups"] for p in payloads} == marks


JANUARY = datetime(2026, 1, 10, 2, 0, tzinfo=timezone.utc)


async def test_the_overdue_visit_list_as_of_a_past_or_a_future_moment(run_services):
    """Issue 14: ?as_of= judges the weekly rule at another moment; only visits made by then count."""
    async with run_services("intake", clock=FixedClock(JANUARY)) as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", "410721")
        worker = system.token("grid_worker", "410721001001", sub="gw-1")
        for n, hid in enumerate(("A1", "A2", "A3"), start=1):
            assert (await intake.post("/v1/households", headers=county, json=household(hid, n))).status_code == 201
        for hid, visited_at in (("A1", "2025-12-20T09:00:00+08:00"), ("A1", "2026-01-09T09:00:00+08:00"),
                                ("A2", "2026-01-06T09:00:00+08:00")):
            r = await intake.post("/v1/visits", headers=worker, json={"household_id": hid, "worker_id": "gw-1",
                                                                        "visited_at": visited_at})
            assert r.status_code == 201, r.text

        async def overdue(**params):
            r = await intake.get("/v1/visits/overdue", headers=county, params=params)
            assert r.status_code == 200, r.text
            return [(o["household_id"], o["last_visited_at"]) for o in r.json()["items"]]

        assert await overdue() == [("A3", None)]
        # 5 January (a date: its start, UTC): A1's visit of the 9th had not happened, A2 had none yet
        assert await overdue(as_of="2026-01-05") == [("A1", "2025-12-20T01:00:00Z"), ("A2", None), ("A3", None)]
        # a week on from A2's visit: due by then, A1 not yet
        assert await overdue(as_of="2026-01-14T12:00:00+08:00") == [("A2", "2026-01-06T01:00:00Z"), ("A3", None)]
        naive = await intake.get("/v1/visits/overdue", headers=county, params={"as_of": "2026-01-14T12:00:00"})
        assert naive.status_code == 422 and naive.json()["errors"][0]["field"] == "as_of"


async def test_a_priority_group_of_the_year_is_judged_by_the_warnings_own_year(run_services):
    """Issue 14: a new allowance observed in December 2025 and raised in January 2026 is in 2025's
    group 'new this year' (当年新识别), listed as of 2025 and not as of 2026."""
    async with run_services("intake", clock=FixedClock(JANUARY)) as system:
        intake = system.clients["intake"]
        county = system.token("county_officer", "410721")
        civil_affairs = system.token("department_system", kind="system", department="civil_affairs")
        clue_of = {}
        for n, (hid, observed_at) in enumerate((("N1", "2025-12-28T09:00:00+08:00"),
                                                ("N2", "2026-01-03T09:00:00+08:00")), start=1):
            assert (await intake.post("/v1/households", headers=county, json=household(hid, n))).status_code == 201
            r = await intake.post("/v1/warnings", headers=civil_affairs,
                                  json=warning(f"MCA-{n}", id_number(n), observed_at=observed_at))
            assert r.status_code == 201, r.text
            clue_of[hid] = r.json()["clue_id"]

        listed = {c["household_id"]: (c["priority_groups"], c["period_year"])
                  for c in (await intake.get("/v1/clues", headers=county)).json()["items"]}
        assert listed == {"N1": (["new_allowance_or_extreme_poverty"], 2025),
                          "N2": (["new_allowance_or_extreme_poverty"], 2026)}

        async def group(**params):
            r = await intake.get("/v1/clues", headers=county,
                                 params={"priority_group": "new_allowance_or_extreme_poverty", **params})
            assert r.status_code == 200, r.text
            return [c["clue_id"] for c in r.json()["items"]]

        assert await group() == [clue_of["N2"]]  # as of now: 2026's
        assert await group(as_of="2025-12-31") == [clue_of["N1"]]
        assert await group(as_of="2026-06-30T00:00:00+08:00") == [clue_of["N2"]]
        alone = await intake.get("/v1/clues", headers=county, params={"as_of": "2025-12-31"})
        assert alone.status_code == 422 and alone.json()["errors"][0]["field"] == "as_of"
