"""The only code that writes assistance's read tables (runtime.projections).

Projected, rebuilt from assistance's own events (stream `plan-{household_id}`):
- `plans`: PlanOpened, PlanRiskAdded, PlanClosed, HelperAssigned / HelperReassigned / HelperNotFound.
- `measures`: MeasureAssigned, MeasureProgressNoted, MeasureCompleted, MeasureCancelled.
- `plan_gaps`: PlanGapFound, PlanGapClosed (the gaps open now).
- `incomes`: IncomeRecorded (a period recorded again replaces the earlier record).
- `helper_visits`: HelperVisitRecorded.

Mirrored, rebuilt from the topics assistance consumes (no event of its own):
- `helpers`: notifier's StaffRegistered, the staff whose role is helper.
- `household_facts`: whether a member can work (intake's HouseholdRegistered / HouseholdUpdated) and
  the protected mark (screening's SubjectProtected, cleared by SubjectRemoved).
"""
from __future__ import annotations

from datetime import date
from itertools import groupby

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.base import current_payload
from contracts.envelope import EventEnvelope
from contracts.intake import any_member_can_work
from runtime.bulk import insert_rows, update_rows, upsert_rows
from runtime.projections import Projections
from services.assistance.store import household_facts, helper_visits, helpers, incomes, measures, plan_gaps, plans

# --- plans ---------------------------------------------------------------------------------------


async def plans_opened(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    """A plan opens, or reopens keeping its helper and the time it first opened."""
    await upsert_rows(session, plans, [
        {"household_id": opened["household_id"], "region_code": opened["region_code"], "status": "open",
         "case_id": opened.get("case_id"), "category": opened.get("category"), "risk_types": opened["risk_types"],
         "identified_on": opened["identified_on"], "helper_id": None, "unassigned": False, "closed_reason": None,
         "opened_at": envelope.recorded_at, "updated_at": envelope.recorded_at}
        for envelope in envelopes for opened in [current_payload(envelope)]],
        key=("household_id",), keep=("helper_id", "unassigned", "opened_at"))


async def _update_plans(session: AsyncSession, envelopes: list[EventEnvelope], values) -> None:
    """Each plan's row set by the last of its events here (`values(envelope)`), one statement for all."""
    latest = {e.household_id: {"household_id": e.household_id, **values(e), "updated_at": e.recorded_at}
              for e in envelopes}
    await update_rows(session, plans, list(latest.values()), key=("household_id",))


async def plan_risks_added(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    known = dict((await session.execute(sa.select(plans.c.household_id, plans.c.risk_types).where(
        plans.c.household_id.in_({e.household_id for e in envelopes})))).all())
    for envelope in envelopes:  # in order: each adds to what the ones before it left
        known[envelope.household_id] = list(dict.fromkeys([*known[envelope.household_id],
                                                           *current_payload(envelope)["risk_types"]]))
    await _update_plans(session, envelopes, lambda e: {"risk_types": known[e.household_id]})


async def plans_closed(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await _update_plans(session, envelopes, lambda e: {"status": "closed", "closed_reason": current_payload(e)["reason"]})


async def helpers_assigned(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    def helper(e: EventEnvelope) -> dict:
        assigned = current_payload(e)
        return {"helper_id": assigned.get("helper_id") or assigned.get("to_helper_id"), "unassigned": False}
    await _update_plans(session, envelopes, helper)


async def helpers_not_found(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await _update_plans(session, envelopes, lambda e: {"unassigned": True})


# --- measures ------------------------------------------------------------------------------------

MEASURE_FIELDS = ("measure_id", "household_id", "kind", "nature", "answers", "department", "member_id", "description",
                  "amount", "quantity", "starts_on", "planned_end", "assigned_by")


async def measures_assigned(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await insert_rows(session, measures, [
        {**{f: measure.get(f) for f in MEASURE_FIELDS}, "status": "active", "assigned_at": envelope.recorded_at,
         "updated_at": envelope.recorded_at}
        for envelope in envelopes for measure in [current_payload(envelope)]])


async def _update_measure(session: AsyncSession, envelope: EventEnvelope, **values) -> None:
    await session.execute(sa.update(measures).where(measures.c.measure_id == current_payload(envelope)["measure_id"])
                          .values(**values, updated_at=envelope.recorded_at))


async def measures_progressed(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    for envelope in envelopes:
        await _update_measure(session, envelope, note=current_payload(envelope)["note"])


async def measures_completed(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    for envelope in envelopes:
        done = current_payload(envelope)
        await _update_measure(session, envelope, status="completed", note=done.get("delivered") or None,
                              completed_on=date.fromisoformat(done["completed_on"]), confirmed_by=done["confirmed_by"],
                              source_record_id=done.get("source_record_id"))


async def measures_cancelled(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    for envelope in envelopes:
        await _update_measure(session, envelope, status="cancelled", note=current_payload(envelope)["reason"])


# --- gaps and incomes ----------------------------------------------------------------------------


async def gaps_found(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await insert_rows(session, plan_gaps, [
        {"household_id": gap["household_id"], "gap": gap["gap"], "risk_type": gap.get("risk_type") or "",
         "detail": gap["detail"], "found_at": envelope.recorded_at}
        for envelope in envelopes for gap in [current_payload(envelope)]])


async def gaps_closed(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    closed = {(gap["household_id"], gap["gap"], gap.get("risk_type") or "") for gap in map(current_payload, envelopes)}
    await session.execute(sa.delete(plan_gaps).where(
        sa.tuple_(plan_gaps.c.household_id, plan_gaps.c.gap, plan_gaps.c.risk_type).in_(sorted(closed))))


async def incomes_recorded(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await upsert_rows(session, incomes, [
        {"household_id": income["household_id"], "period": income["period"],
         "net_income_per_person": income["net_income_per_person"],
         "rigid_expenditure": income.get("rigid_expenditure", "0"), "sources": income.get("sources", []),
         "recorded_by": income["recorded_by"], "recorded_at": envelope.recorded_at}
        for envelope in envelopes for income in [current_payload(envelope)]], key=("household_id", "period"))


async def visits_recorded(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await insert_rows(session, helper_visits, [
        {**{f: visit[f] for f in ("visit_id", "household_id", "helper_id", "visited_on")},
         "findings": visit.get("findings", ""), "recorded_at": envelope.recorded_at}
        for envelope in envelopes for visit in [current_payload(envelope)]])


# --- mirrors -------------------------------------------------------------------------------------


async def staff_registered(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    """A helper joins (or moves); a member of staff whose role changed from helper is no longer one."""
    for is_helper, run in groupby(map(current_payload, envelopes), key=lambda staff: staff["role"] == "helper"):
        ids_and_regions = [(staff["staff_id"], staff["region_code"]) for staff in run]
        if is_helper:
            await upsert_rows(session, helpers, [{"helper_id": staff_id, "region_code": region, "active": True}
                                                 for staff_id, region in ids_and_regions], key=("helper_id",))
        else:
            await session.execute(sa.update(helpers).where(helpers.c.helper_id.in_([i for i, _ in ids_and_regions]))
                                  .values(active=False))


async def labour_facts(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await upsert_rows(session, household_facts, [
        {"household_id": household["household_id"], "any_member_can_work": any_member_can_work(household)}
        for household in map(current_payload, envelopes)], key=("household_id",))


async def protected_marks(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    """SubjectProtected sets the mark, SubjectRemoved clears it (as screening's subjects do)."""
    await upsert_rows(session, household_facts, [
        {"household_id": envelope.household_id, "protected": envelope.event_type == "SubjectProtected"}
        for envelope in envelopes], key=("household_id",))


PROJECTIONS = Projections(
    tables=(plans, measures, plan_gaps, incomes, helper_visits),
    appliers={
        "PlanOpened": plans_opened, "PlanRiskAdded": plan_risks_added, "PlanClosed": plans_closed,
        "HelperAssigned": helpers_assigned, "HelperReassigned": helpers_assigned, "HelperNotFound": helpers_not_found,
        "MeasureAssigned": measures_assigned, "MeasureProgressNoted": measures_progressed,
        "MeasureCompleted": measures_completed, "MeasureCancelled": measures_cancelled,
        "PlanGapFound": gaps_found, "PlanGapClosed": gaps_closed, "IncomeRecorded": incomes_recorded,
        "HelperVisitRecorded": visits_recorded,
    },
    mirrored_tables=(helpers, household_facts),
    mirrors={"StaffRegistered": staff_registered, "HouseholdRegistered": labour_facts, "HouseholdUpdated": labour_facts,
             "SubjectProtected": protected_marks, "SubjectRemoved": protected_marks},
)
