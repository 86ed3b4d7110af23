"""The notifier as it runs: other services' events taken from the broker by its consumer. The
household's helper is learned from assistance's HelperAssigned (a mirror), so a plan gap reaches
that helper as a task and the township as a message; an event delivered twice makes one task."""
import pytest
import sqlalchemy as sa

from contracts.assistance import HelperAssigned, PlanGapFound
from contracts.vocabulary import RiskType
from tests.conftest import eventually
from tests.integration.notifier.routing_helpers import publish, register_directory, sealed

pytestmark = pytest.mark.integration


async def test_a_plan_gap_reaches_the_households_helper_and_the_township_once(run_services):
    async with run_services("notifier", task_check_seconds=3600, delivery_poll_seconds=3600) as system:
        ctx = system.context("notifier")
        await register_directory(system)
        gap = sealed(PlanGapFound(household_id="H-1", gap="risk_unanswered", risk_type=RiskType.ILLNESS,
                                  detail="因病风险无对应措施"), household_id="H-1")
        await publish(ctx.settings, sealed(HelperAssigned(household_id="H-1", helper_id="helper-1", households_after=1),
                                           household_id="H-1"), gap, gap)  # the gap delivered twice

        async def told():
            async with ctx.sessions() as session:
                rows = (await session.execute(sa.text(
                    "select staff_id, kind, task_id is not null from notifications order by staff_id, inbox_seq"))).all()
            return [tuple(r) for r in rows] if len(rows) >= 4 else None

        assert await eventually(told) == [("helper-1", "helper_assigned", False), ("helper-1", "plan_gap", True),
                                          ("township-1", "helper_assigned", False), ("township-1", "plan_gap", False)]
        async with ctx.sessions() as session:
            tasks = (await session.execute(sa.text("select reference, role, state from tasks"))).all()
            applied = (await session.execute(sa.text("select count(*) from inbox where outcome = 'applied'"))).scalar()
        assert [tuple(t) for t in tasks] == [("gap:H-1:risk_unanswered:illness", "helper", "open")]
        assert applied == 2, "the repeated gap is absorbed by the consumer's inbox"
        assert len(await told()) == 4
