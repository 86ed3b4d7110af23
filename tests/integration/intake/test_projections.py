"""intake's households, clues and visits are projections of its own events (issue 15, step 2): written
only from them, so that rebuilding them from the event store gives the live tables (run_services
checks that when a scenario ends); members, warnings and declarations are primary records, kept as
they are. A row written behind the events' back is caught."""
import json
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from runtime.clock import FixedClock
from tests.factories import VILLAGE, household, id_number, warning

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)


async def _every_channel(system) -> None:
    """Households registered and updated, warnings one by one and in a batch (matched, unmatched and
    re-matched at registration), a visit with notes and a self-declaration."""
    intake = system.clients["intake"]
    county = system.token("county_officer", "410721")
    civil = system.token("department_system", kind="system", department="civil_affairs")
    for n, hid in enumerate(("P1", "P2"), start=1):
        assert (await intake.post("/v1/households", headers=county, json=household(hid, n))).status_code == 201
    updated = household("P1", 1, poverty_status="ordinary", grid_worker_id="gw-2")
    assert (await intake.post("/v1/households", headers=county, json=updated)).status_code == 200
    assert (await intake.post("/v1/warnings", headers=civil, json=warning("W1", id_number(1)))).status_code == 201
    batch = "\n".join(json.dumps(warning(f"B{n}", id_number(n))) for n in (2, 3))
    answer = await intake.post("/v1/warnings:batch", headers={**civil, "Content-Type": "application/x-ndjson"},
                               content=batch)
    assert answer.status_code == 200 and (answer.json()["accepted"], answer.json()["unmatched"]) == (1, 1), answer.text
    assert (await intake.post("/v1/households", headers=county, json=household("P3", 3))).status_code == 201
    worker = system.token("grid_worker", VILLAGE, sub="gw-1")
    visit = await intake.post("/v1/visits", headers=worker, json={
        "household_id": "P2", "worker_id": "gw-1", "visited_at": "2026-11-19T09:00:00+08:00",
        "risk_types": ["illness"], "notes": "in hospital since Monday"})
    assert visit.status_code == 201, visit.text


async def test_households_clues_and_visits_rebuild_from_intakes_events(run_services):
    async with run_services("intake", clock=FixedClock(NOW)) as system:
        await _every_channel(system)
        async with system.context("intake").sessions() as session:
            counts = dict((await session.execute(sa.text(
                "select 'households', count(*) from households union all select 'clues', count(*) from clues "
                "union all select 'visits', count(*) from visits where notes = 'in hospital since Monday'"))).all())
            p1 = (await session.execute(sa.text(
                "select poverty_status, grid_worker_id from households where household_id = 'P1'"))).one()
            p2_visited = await session.scalar(sa.text("select last_visited_at from households where household_id = 'P2'"))
        # W1 and B2 matched, B3 re-matched when P3 was registered, one from the visit
        assert counts == {"households": 3, "clues": 4, "visits": 1}
        assert tuple(p1) == ("ordinary", "gw-2") and p2_visited is not None
    # leaving run_services rebuilt intake's projected tables from its events and compared them with the live ones


@pytest.mark.parametrize("behind_the_back", [
    "update households set poverty_status = 'ordinary' where household_id = 'P2'",
    "delete from clues where household_id = 'P1'",
    "update visits set notes = 'edited'",
])
async def test_an_intake_view_written_behind_the_events_back_is_caught(run_services, behind_the_back):
    with pytest.raises(AssertionError, match=r"intake\.\w+ rebuilt from the events differs"):
        async with run_services("intake", clock=FixedClock(NOW)) as system:
            await _every_channel(system)
            async with system.context("intake").sessions() as session, session.begin():
                await session.execute(sa.text(behind_the_back))
