"""screening's views (issue 15, step 2): cases, subjects and the out-of-loop check's progress are
projections of screening's own events; household_labour and allowance_watch mirror intake's facts
and are rebuilt from the topics screening consumes (only the events it took). run_services rebuilds
both kinds when a scenario ends and compares them with the live tables; a row written behind the
events' back, in either kind, is caught."""
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from contracts.screening import _CaseStep
from contracts.base import all_payload_classes
from runtime.clock import FixedClock
from services.screening.projections import PROJECTIONS
from tests.conftest import eventually
from tests.factories import VILLAGE, household, id_number, warning

pytestmark = pytest.mark.integration
START = datetime(2026, 11, 20, 1, 0, tzinfo=timezone.utc)
POOR = {"per_capita_net_income": "6200.00", "rigid_expenditure": "0", "education_ok": True, "medical_ok": True,
        "housing_safe": True, "water_safe": True}


def test_every_ladder_step_has_its_projection():
    steps = {name for name, cls in all_payload_classes().items() if issubclass(cls, _CaseStep) and cls is not _CaseStep
             and not name.startswith("_")}
    assert steps and steps <= set(PROJECTIONS.appliers)


async def _a_case_at_deliberation(system) -> str:
    """A household registered on intake, a new minimum-allowance warning (a clue watched for 体外循环)
    that opens its case on screening, and the verification visit recorded."""
    intake, screening = system.clients["intake"], system.clients["screening"]
    county = system.token("county_officer", "410721", sub="county-1")
    department = system.token("department_system", kind="system", department="civil_affairs", sub="mca")
    assert (await intake.post("/v1/households", headers=county, json=household("PJ", 1))).status_code == 201
    assert (await intake.post("/v1/warnings", headers=department, json=warning("PJ-1", id_number(1)))).status_code == 201

    async def opened():
        items = (await screening.get("/v1/cases", headers=county)).json()["items"]
        return items[0]["case_id"] if items else None

    case_id = await eventually(opened)
    worker = system.token("grid_worker", VILLAGE, sub="gw-1")
    visited = await screening.post(f"/v1/cases/{case_id}/verification", headers=worker, json=POOR)
    assert visited.status_code == 200 and visited.json()["step"] == "village_deliberation", visited.text
    return case_id


async def test_cases_and_the_mirrored_facts_rebuild_from_the_events_and_the_topics(run_services):
    async with run_services("intake", "screening", clock=FixedClock(START)) as system:
        await _a_case_at_deliberation(system)
        async with system.context("screening").sessions() as session:
            counts = (await session.execute(sa.text(
                "select (select count(*) from household_labour), (select count(*) from allowance_watch), "
                "(select count(*) from cases where due_date is not null and step = 'village_deliberation')"))).one()
        assert tuple(counts) == (1, 1, 1)
    # leaving run_services rebuilt cases and subjects from screening's events, household_labour and
    # allowance_watch from intake's topic, and compared each with the live table


@pytest.mark.parametrize("behind_the_back", [
    "update cases set step = 'county_decision'",
    "update cases set due_date = due_date + 1",
    "update household_labour set any_member_can_work = not any_member_can_work",
    "delete from allowance_watch",
])
async def test_a_screening_view_written_behind_the_events_back_is_caught(run_services, behind_the_back):
    with pytest.raises(AssertionError, match=r"screening\.\w+ rebuilt from the events differs"):
        async with run_services("intake", "screening", clock=FixedClock(START)) as system:
            await _a_case_at_deliberation(system)
            async with system.context("screening").sessions() as session, session.begin():
                await session.execute(sa.text(behind_the_back))
