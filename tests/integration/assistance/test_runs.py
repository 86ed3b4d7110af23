"""assistance takes a run of consumed events set-based (issue 19): the plans read at once, the decisions
taken in the run's order on the plans as the run leaves them, the helpers' load counted as households
are given to them, each plan event naming the event that caused it. The handler is fed a run
directly, in one unit of work, against the real store."""
from collections import Counter
from dataclasses import replace

import pytest
import sqlalchemy as sa

from contracts.envelope import Actor
from contracts.exit_review import ExitApproved
from contracts.screening import SubjectIdentified
from contracts.vocabulary import RiskType
from runtime.app import load_definition
from runtime.eventstore import EventMetadata
from runtime.service import unit_of_work
from services.assistance.handlers import HANDLERS
from services.assistance.store import helpers
from tests.factories import VILLAGE, envelope

pytestmark = pytest.mark.integration


def identified(household_id: str):
    return envelope("SubjectIdentified", SubjectIdentified(
        case_id=f"c-{household_id}", household_id=household_id, step="closed", category="sudden_hardship",
        risk_types=[RiskType.ILLNESS]).model_dump(mode="json"), stream_id=f"case-c-{household_id}", household_id=household_id)


async def test_a_run_of_subjects_is_decided_in_order_and_spread_over_the_helpers(service_context):
    ctx = await service_context("assistance")
    ctx = replace(ctx, projections=load_definition("assistance").projections)
    async with ctx.sessions() as session, session.begin():  # the directory, as notifier's events mirror it
        await session.execute(sa.insert(helpers), [{"helper_id": h, "region_code": VILLAGE, "active": True}
                                                   for h in ("h-a", "h-b")])
    run = [identified(f"H{i}") for i in range(1, 5)]
    run.append(envelope("ExitApproved", ExitApproved(exit_id="x-1", household_id="H1").model_dump(mode="json"),
                        stream_id="exit-x-1", household_id="H1"))
    meta = EventMetadata(actor=Actor(kind="system", id="fangpin-assistance", role="service"))
    async with unit_of_work(ctx, meta) as uow:
        await HANDLERS[run[0].event_type](uow, run)

    async with ctx.sessions() as session:
        rows = (await session.execute(sa.text(
            "select stream_id, event_type, payload, causation_id from events order by global_position"))).all()
    # Four households in one run, two helpers: the load counted as it goes, not as the tables stood.
    assert Counter(r.payload["helper_id"] for r in rows if r.event_type == "HelperAssigned") == {"h-a": 2, "h-b": 2}
    # A later event of the run finds the plan an earlier one opened.
    assert [r.event_type for r in rows if r.stream_id == "plan-H1"][:2] == ["PlanOpened", "HelperAssigned"]
    assert [r.event_type for r in rows if r.stream_id == "plan-H1"][-1] == "PlanClosed"
    # Each plan event names its own cause.
    causes = {e.household_id: e.event_id for e in run[:4]}
    for r in rows:
        if r.event_type == "PlanClosed":
            assert r.causation_id == run[4].event_id
        elif r.event_type in ("PlanOpened", "HelperAssigned"):
            assert r.causation_id == causes[r.stream_id.removeprefix("plan-")]
    async with ctx.sessions() as session:
        plans = dict((await session.execute(sa.text("select household_id, status from plans"))).all())
    assert plans == {"H1": "closed", "H2": "open", "H3": "open", "H4": "open"}
