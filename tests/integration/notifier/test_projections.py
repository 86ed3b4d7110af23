"""notifier's inbox is a projection of its own events (issue 15, step 2): what a member of staff is
sent and reads is recorded as events, the `notifications` table is written only from them, and
rebuilding it from the event store gives the live table (run_services checks that when a scenario
ends); a row written behind the events' back is caught."""
from datetime import date

import pytest
import sqlalchemy as sa

from contracts.screening import VerificationCaseOpened
from contracts.vocabulary import RiskType
from tests.integration.notifier.routing_helpers import consume

pytestmark = pytest.mark.integration
VILLAGE = "410721001001"


async def _cadre_with_a_task(system) -> str:
    """A village cadre in the directory, and the task a newly opened case of their village sends them."""
    notifier = system.clients["notifier"]
    county = system.token("county_officer", "410721")
    staff = {"staff_id": "cadre-p1", "name": "村干部", "role": "village_cadre", "region_code": VILLAGE}
    assert (await notifier.post("/v1/staff", headers=county, json=staff)).status_code == 201
    case = VerificationCaseOpened(case_id="case-p1", household_id="H-P1", region_code=VILLAGE, clue_id="clue-p1",
                                  risk_types=[RiskType.ILLNESS], step="verification_visit", due_date=date(2026, 12, 1))
    await consume(system.context("notifier"), case, household_id="H-P1")
    inbox = (await notifier.get("/v1/inbox", headers=system.token("village_cadre", VILLAGE, sub="cadre-p1"))).json()
    [task] = inbox["items"]
    return task["notification_id"]


async def test_reading_a_task_is_an_event_and_the_inbox_rebuilds_from_the_events(run_services):
    async with run_services("notifier") as system:
        notifier = system.clients["notifier"]
        cadre = system.token("village_cadre", VILLAGE, sub="cadre-p1")
        notification_id = await _cadre_with_a_task(system)
        first = (await notifier.post(f"/v1/inbox/{notification_id}/read", headers=cadre)).json()
        again = (await notifier.post(f"/v1/inbox/{notification_id}/read", headers=cadre)).json()
        assert first["read_at"] and again["read_at"] == first["read_at"], "the first reading's time is kept"
        async with system.context("notifier").sessions() as session:
            types = (await session.execute(sa.text(
                "select event_type from events where stream_id = :s order by stream_position"),
                {"s": f"notification-{notification_id}"})).scalars().all()
        assert types == ["NotificationSent", "NotificationRead"], "read twice, recorded once"
    # leaving run_services rebuilt `notifications` from the events and compared it with the live table


async def test_a_view_written_behind_the_events_back_is_caught(run_services):
    with pytest.raises(AssertionError, match="notifier.notifications rebuilt from the events differs"):
        async with run_services("notifier") as system:
            notification_id = await _cadre_with_a_task(system)
            async with system.context("notifier").sessions() as session, session.begin():
                await session.execute(sa.text("update notifications set read_at = now() where notification_id = :n"),
                                      {"n": notification_id})
