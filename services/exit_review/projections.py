"""The only code that writes exit_review's read tables (runtime.projections).

Projected, rebuilt from exit_review's own events (stream `exit-{household_id}`, a household's exit
cases one after another):
- `exits`: each case's step, due date and outcome, the notice's end, the blockers' assessment, the
  look-back and the rollback.
- `exit_overdue`: ExitStepOverdue (the statistics' overdue steps).
- `filings`: StatisticsFiled, FilingOverdue (each township's and county's monthly filing).
- `exit_step_days`: the exit ladder's steps left per village, day and step, with the days they took.

Mirrored, rebuilt from the topics exit_review consumes (no event of its own): the evidence the seven
blockers read, exit_review reading no other database.
- `subjects`: screening's SubjectIdentified, SubjectRiskAdded, SubjectRemoved, SubjectProtected,
  SubjectRiskEliminated, SubjectMonitoredAgain; `subject_changes`: each of those changes but the new
  risks, with what it did to the counts the statistics sum; `subject_days`: those summed per village,
  day and category (what a region's statistics add up).
- `household_plans`: per household, whether monitored (screening's) and its measures and open gaps
  (assistance's), counted again from the evidence at each change: the plan figures without a join.
- `case_overdue`: screening's CaseStepOverdue.
- `case_progress`, `case_step_days`: the step each identification case stands at and since when, and
  the steps left per village, day and step with their days (screening's ladder events).
- `household_members`: the member ids of intake's HouseholdRegistered / HouseholdUpdated (who may sign
  the household's consent).
- `plan_evidence`, `measure_evidence`, `gap_evidence` (the gaps open now), `income_evidence` (a period
  recorded again replaces the earlier record): assistance's plan events.
- `difficulty_evidence`: intake's clues (RiskClueRaised, RiskCluesRaised) and screening's SubjectRiskAdded.
- `visit_evidence`: assistance's HelperVisitRecorded and intake's grid VisitRecorded.
"""
from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.base import current_payload
from contracts.envelope import EventEnvelope
from runtime.bulk import insert_rows, update_rows, upsert_rows
from runtime.projections import Projections
from services.exit_review.store import (
    case_overdue, case_progress, case_step_days, difficulty_evidence, exit_overdue, exit_step_days, exits, filings, gap_evidence, household_members, household_plans,
    income_evidence, measure_evidence, plan_evidence, subject_changes, subject_days, subjects, visit_evidence,
)

# --- exits -----------------------------------------------------------------------------------------


async def exits_proposed(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await insert_rows(session, exits, [
        {"exit_id": proposed["exit_id"], "household_id": proposed["household_id"], "region_code": proposed["region_code"],
         "step": proposed["step"], "step_since": envelope.recorded_at.date(), "outcome": None, "notice_ends": None,
         "due_date": proposed.get("due_date"),
         "passed": None, "blockers": [],
         "proposed_at": envelope.recorded_at, "updated_at": envelope.recorded_at}
        for envelope in envelopes for proposed in [current_payload(envelope)]])


def _exit_step(**extra):
    """An applier that moves the case to the event's step (after the exit: closed), with
    `extra(payload)` columns; an approval also records its day."""
    async def apply(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
        for envelope in envelopes:
            payload = current_payload(envelope)
            values = {name: value(payload) for name, value in extra.items()}
            if "step" in payload:  # a ladder event: a step left is counted with its days
                standing = (await session.execute(sa.select(exits.c.region_code, exits.c.step, exits.c.step_since)
                                                   .where(exits.c.exit_id == payload["exit_id"]))).first()
                if standing is not None and standing.step != payload["step"] and standing.step_since is not None:
                    today = envelope.recorded_at.date()
                    await add_step_days(session, exit_step_days, {
                        (standing.region_code, today, standing.step): (1, (today - standing.step_since).days)})
                    values["step_since"] = today
            if envelope.event_type == "ExitApproved":
                values["decided_on"] = envelope.recorded_at.date()
            if "due_date" in payload:  # a ladder event: the due date of the step it leaves the case at
                values["due_date"] = date.fromisoformat(payload["due_date"]) if payload["due_date"] else None
            await session.execute(sa.update(exits).where(exits.c.exit_id == payload["exit_id"])
                                  .values(step=payload.get("step", "closed"), updated_at=envelope.recorded_at, **values))
    return apply


def _blocking(assessed: dict) -> list[str]:
    return [v["blocker"] for v in assessed["verdicts"] if v["outcome"] != "pass"]


EXIT_APPLIERS = {
    "ExitProposed": exits_proposed,
    "ConsentRecorded": _exit_step(),
    "ExitAssessed": _exit_step(passed=lambda p: p["passed"], blockers=_blocking),
    "ExitNoticePosted": _exit_step(notice_ends=lambda p: date.fromisoformat(p["ends_on"])),
    "ExitObjectionRaised": _exit_step(),
    "ExitObjectionResolved": _exit_step(),
    "ExitNoticeClosed": _exit_step(),
    "ExitTownshipVerified": _exit_step(),
    "ExitReturned": _exit_step(outcome=lambda p: "returned"),
    "ExitRejected": _exit_step(outcome=lambda p: "rejected"),
    "ExitApproved": _exit_step(outcome=lambda p: "approved"),
    "LookBackDue": _exit_step(look_back=lambda p: "due"),
    "LookBackCompleted": _exit_step(look_back=lambda p: "completed", flagged=lambda p: p["flagged"]),
    "ExitRollbackRequested": _exit_step(rollback=lambda p: "pending"),
    "ExitRolledBack": _exit_step(rollback=lambda p: "rolled_back"),
    "ExitRollbackRefused": _exit_step(rollback=lambda p: "refused"),
}


async def steps_overdue(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    """The step and due date whose ExitStepOverdue is out (report_overdue_steps sends one each), and
    the overdue step counted for the statistics."""
    for overdue in map(current_payload, envelopes):
        await session.execute(sa.update(exits).where(exits.c.exit_id == overdue["exit_id"])
                              .values(overdue_reported=f"{overdue['step']}@{overdue['due_date']}"))
    await _overdue_rows(session, exit_overdue, envelopes)


async def _overdue_rows(session: AsyncSession, table: sa.Table, envelopes: list[EventEnvelope]) -> None:
    await upsert_rows(session, table, [
        {"event_id": str(envelope.event_id), "region_code": overdue["region_code"], "step": overdue["step"],
         "due_date": overdue["due_date"]} for envelope in envelopes for overdue in [current_payload(envelope)]],
        key=("event_id",))


async def cases_overdue(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await _overdue_rows(session, case_overdue, envelopes)


EXIT_APPLIERS["ExitStepOverdue"] = steps_overdue


def _filing(envelope: EventEnvelope, filed: dict) -> dict:
    return {"region_code": filed["region_code"], "period": filed["period"], "level": filed["level"],
            "due_on": filed["due_on"]}


async def statistics_filed(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await upsert_rows(session, filings, [
        {**_filing(envelope, filed), "filed_at": envelope.recorded_at, "late": filed["late"], "overdue": False}
        for envelope in envelopes for filed in [current_payload(envelope)]],
        key=("region_code", "period", "level"), keep=("overdue",))


async def filings_overdue(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await upsert_rows(session, filings, [
        {**_filing(envelope, late), "filed_at": None, "late": None, "overdue": True}
        for envelope in envelopes for late in [current_payload(envelope)]],
        key=("region_code", "period", "level"), keep=("filed_at", "late"))


EXIT_APPLIERS["StatisticsFiled"] = statistics_filed
EXIT_APPLIERS["FilingOverdue"] = filings_overdue

async def add_step_days(session: AsyncSession, table: sa.Table, left: dict[tuple, tuple[int, int]]) -> None:
    """Add steps left, (village, day, step) -> (steps, days), to a step-days table."""
    if not left:
        return
    insert = pg_insert(table).values([{"region_code": region, "on": on, "step": step, "steps": n, "total_days": days}
                                      for (region, on, step), (n, days) in sorted(left.items())])
    await session.execute(insert.on_conflict_do_update(
        index_elements=["region_code", "on", "step"],
        set_={"steps": table.c.steps + insert.excluded.steps, "total_days": table.c.total_days + insert.excluded.total_days}))


# --- mirrors: subjects and members -----------------------------------------------------------------


def _day(moment: datetime | str | None, envelope: EventEnvelope) -> date:
    if moment is None:
        return envelope.recorded_at.date()
    return (datetime.fromisoformat(moment) if isinstance(moment, str) else moment).date()


SUBJECT_CHANGES = {  # screening's event -> the change, and what it sets on the subject
    "SubjectIdentified": ("identified", {"status": "monitored", "protected": False}),
    "SubjectRemoved": ("removed", {"status": "removed", "protected": False}),
    "SubjectProtected": ("protected", {"protected": True}),
    "SubjectRiskEliminated": ("risk_eliminated", {"status": "risk_eliminated"}),
    "SubjectMonitoredAgain": ("rolled_back", {"status": "monitored"}),  # 风险消除回退
}


async def subjects_changed(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    """The subject as it stands, and each change with what it did to the counts statistics sum
    (monitored, risk-eliminated, protected: +1, -1 or 0), so that a region's subjects on any day are a
    sum of the changes up to it. A change of a household not identified here changes nothing."""
    ids = list({e.household_id for e in envelopes})
    standing = {row.household_id: row._asdict() for row in await session.execute(
        sa.select(subjects).where(subjects.c.household_id.in_(ids)))}
    changes = []
    for envelope in envelopes:
        change, values = SUBJECT_CHANGES[envelope.event_type]
        before = standing.get(envelope.household_id)
        if envelope.event_type == "SubjectIdentified":
            identified = current_payload(envelope)
            values = {**values, "region_code": envelope.region_code, "category": identified["category"],
                      "risk_types": identified["risk_types"], "identified_on": envelope.recorded_at.date()}
            before = before or {"household_id": envelope.household_id, "status": None, "protected": False}
        elif before is None:
            continue
        after = {**before, **values}
        standing[envelope.household_id] = after
        changes.append({
            "event_id": str(envelope.event_id), "household_id": envelope.household_id,
            "region_code": after["region_code"], "category": after["category"], "change": change,
            "on": envelope.recorded_at.date(),
            "monitored_delta": (after["status"] == "monitored") - (before["status"] == "monitored"),
            "eliminated_delta": (after["status"] == "risk_eliminated") - (before["status"] == "risk_eliminated"),
            "protected_delta": int(after["protected"]) - int(before["protected"])})
    await upsert_rows(session, subjects, [{str(c.name): row[c.name] for c in subjects.columns}
                                          for hid, row in standing.items() if "region_code" in row], key=("household_id",))
    await insert_rows(session, subject_changes, changes)
    await _sum_days(session, {(c["region_code"], c["on"], c["category"] or "") for c in changes})
    await upsert_rows(session, household_plans, [
        {"household_id": hid, "region_code": row["region_code"], "monitored": row["status"] == "monitored",
         "measures": 0, "developmental": 0, "open_gaps": 0}
        for hid, row in standing.items() if "region_code" in row],
        key=("household_id",), keep=("measures", "developmental", "open_gaps"))


async def _sum_days(session: AsyncSession, days: set[tuple]) -> None:
    """subject_days of the (village, day, category) the changes fell on, summed again from them."""
    if not days:
        return
    c = subject_changes.c
    category = sa.func.coalesce(c.category, "")
    summed = (sa.select(c.region_code, c.on, category, sa.func.sum(c.monitored_delta), sa.func.sum(c.eliminated_delta),
                        sa.func.sum(c.protected_delta),
                        *(sa.func.count().filter(c.change == change) for change in
                          ("identified", "risk_eliminated", "rolled_back", "removed")))
              .where(sa.tuple_(c.region_code, c.on, category).in_(sorted(days)))
              .group_by(c.region_code, c.on, category))
    columns = [str(col.name) for col in subject_days.columns]
    insert = pg_insert(subject_days).from_select(columns, summed)
    await session.execute(insert.on_conflict_do_update(
        index_elements=["region_code", "on", "category"],
        set_={name: insert.excluded[name] for name in columns[3:]}))


async def subject_risks_added(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    risks = dict((await session.execute(sa.select(subjects.c.household_id, subjects.c.risk_types).where(
        subjects.c.household_id.in_({e.household_id for e in envelopes})))).all())
    for envelope in envelopes:
        if envelope.household_id in risks:
            risks[envelope.household_id] = list(dict.fromkeys([*risks[envelope.household_id],
                                                               *current_payload(envelope)["risk_types"]]))
    await update_rows(session, subjects, [{"household_id": h, "risk_types": r} for h, r in risks.items()],
                      key=("household_id",))
    await _difficulties(session, [(envelope, {**current_payload(envelope), "kind": "risk_added"}) for envelope in envelopes])


async def case_steps(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    """Identification cases' steps (screening's ladder events, whose `step` is where the case stands
    after them): a step left is counted with its days in case_step_days."""
    payloads = [current_payload(e) for e in envelopes]
    progress = {row.case_id: {str(k): v for k, v in row._asdict().items()} for row in await session.execute(
        sa.select(case_progress).where(case_progress.c.case_id.in_({p["case_id"] for p in payloads})))}
    left: dict[tuple, list[int]] = {}
    for envelope, payload in zip(envelopes, payloads):
        on, standing = envelope.recorded_at.date(), progress.get(payload["case_id"])
        if standing is None:
            progress[payload["case_id"]] = {"case_id": payload["case_id"], "step": payload["step"], "since": on,
                                            "region_code": envelope.region_code or payload.get("region_code") or ""}
        elif standing["step"] != payload["step"]:
            counted = left.setdefault((standing["region_code"], on, standing["step"]), [0, 0])
            counted[0], counted[1] = counted[0] + 1, counted[1] + (on - standing["since"]).days
            standing.update(step=payload["step"], since=on)
    await upsert_rows(session, case_progress, list(progress.values()), key=("case_id",))
    await add_step_days(session, case_step_days, {key: tuple(value) for key, value in left.items()})


async def identified(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await subjects_changed(session, envelopes)
    await case_steps(session, envelopes)


CASE_STEP_EVENTS = ("VerificationCaseOpened", "HouseholdVerified", "VillageDeliberated", "PublicNoticePosted",
                    "ObjectionRaised", "ObjectionResolved", "CaseReturned", "PublicNoticeClosed", "TownshipReviewed",
                    "CountyDecided", "IdentificationRejected")


async def members_registered(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await upsert_rows(session, household_members, [
        {"household_id": household["household_id"], "member_ids": [m["member_id"] for m in household["members"]]}
        for household in map(current_payload, envelopes)], key=("household_id",))


# --- mirrors: difficulties and visits --------------------------------------------------------------


async def _difficulties(session: AsyncSession, raised: list[tuple[EventEnvelope, dict]]) -> None:
    await upsert_rows(session, difficulty_evidence, [
        {"event_id": str(envelope.event_id), "ref": clue["clue_id"], "household_id": clue["household_id"],
         "kind": clue["kind"], "risk_types": clue["risk_types"],
         "raised_on": _day(clue.get("observed_at"), envelope) if clue["kind"] == "clue" else envelope.recorded_at.date()}
        for envelope, clue in raised], key=("event_id", "ref"))


async def clue_raised(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await _difficulties(session, [(envelope, {**current_payload(envelope), "kind": "clue"}) for envelope in envelopes])


async def clues_raised(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await _difficulties(session, [(envelope, {**clue, "kind": "clue"})
                                  for envelope in envelopes for clue in current_payload(envelope)["clues"]])


async def grid_visits(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await upsert_rows(session, visit_evidence, [
        {"event_id": str(envelope.event_id), "household_id": visit["household_id"], "kind": "grid_visit",
         "visited_on": _day(visit["visited_at"], envelope)}
        for envelope in envelopes for visit in [current_payload(envelope)]], key=("event_id",))


async def helper_visits(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await upsert_rows(session, visit_evidence, [
        {"event_id": str(envelope.event_id), "household_id": visit["household_id"], "kind": "helper_visit",
         "visited_on": visit["visited_on"]}
        for envelope in envelopes for visit in [current_payload(envelope)]], key=("event_id",))


# --- mirrors: plans, measures, gaps, incomes -------------------------------------------------------


async def plans_opened(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await upsert_rows(session, plan_evidence, [{"household_id": e.household_id, "open": True, "helper_id": None}
                                               for e in envelopes], key=("household_id",), keep=("helper_id",))


async def plans_closed(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await session.execute(sa.update(plan_evidence).where(
        plan_evidence.c.household_id.in_([e.household_id for e in envelopes])).values(open=False))


async def helpers_named(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    helpers = {e.household_id: p.get("helper_id") or p.get("to_helper_id")  # the last of a household stands
               for e in envelopes for p in [current_payload(e)]}
    await update_rows(session, plan_evidence, [{"household_id": h, "helper_id": helper} for h, helper in helpers.items()],
                      key=("household_id",))


async def measures_assigned(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await upsert_rows(session, measure_evidence, [
        {"measure_id": m["measure_id"], "household_id": m["household_id"], "kind": m["kind"], "nature": m["nature"],
         "answers": m["answers"],
         "status": "active", "starts_on": m["starts_on"], "planned_end": m.get("planned_end"), "completed_on": None}
        for m in map(current_payload, envelopes)], key=("measure_id",))
    await _count_plans(session, {e.household_id for e in envelopes})


async def _count_plans(session: AsyncSession, households: set[str]) -> None:
    """household_plans' measures and open gaps of `households`, counted again from the evidence."""
    m, g = measure_evidence.c, gap_evidence.c
    carried = m.status.in_(("active", "completed"))
    measures = {row.household_id: row for row in await session.execute(
        sa.select(m.household_id, sa.func.count().filter(carried).label("measures"),
                  sa.func.count().filter(carried, m.nature == "developmental").label("developmental"))
        .where(m.household_id.in_(households)).group_by(m.household_id))}
    gaps = dict((await session.execute(sa.select(g.household_id, sa.func.count()).where(g.household_id.in_(households))
                                       .group_by(g.household_id))).all())
    await upsert_rows(session, household_plans, [
        {"household_id": hid, "region_code": None, "monitored": False,
         "measures": measures[hid].measures if hid in measures else 0,
         "developmental": measures[hid].developmental if hid in measures else 0, "open_gaps": gaps.get(hid, 0)}
        for hid in sorted(households)], key=("household_id",), keep=("region_code", "monitored"))


async def measures_completed(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    completed = {done["measure_id"]: done["completed_on"] for done in map(current_payload, envelopes)}
    await update_rows(session, measure_evidence, [{"measure_id": m, "status": "completed", "completed_on": on}
                                                  for m, on in completed.items()], key=("measure_id",))


async def measures_cancelled(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await session.execute(sa.update(measure_evidence).where(measure_evidence.c.measure_id.in_(
        [current_payload(e)["measure_id"] for e in envelopes])).values(status="cancelled"))
    await _count_plans(session, {e.household_id for e in envelopes})


async def gaps_found(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await upsert_rows(session, gap_evidence, [
        {"household_id": gap["household_id"], "gap": gap["gap"], "risk_type": gap.get("risk_type") or "",
         "found_on": envelope.recorded_at.date(), "event_id": str(envelope.event_id)}
        for envelope in envelopes for gap in [current_payload(envelope)]], key=("household_id", "gap", "risk_type"))
    await _count_plans(session, {e.household_id for e in envelopes})


async def gaps_closed(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    g = gap_evidence.c
    await session.execute(sa.delete(gap_evidence).where(sa.tuple_(g.household_id, g.gap, g.risk_type).in_(
        [(gap["household_id"], gap["gap"], gap.get("risk_type") or "") for gap in map(current_payload, envelopes)])))
    await _count_plans(session, {e.household_id for e in envelopes})


async def incomes_recorded(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await upsert_rows(session, income_evidence, [
        {"household_id": income["household_id"], "period": income["period"], "amount": income["net_income_per_person"],
         "event_id": str(envelope.event_id)}
        for envelope in envelopes for income in [current_payload(envelope)]], key=("household_id", "period"))


PROJECTIONS = Projections(
    tables=(exits, exit_overdue, exit_step_days, filings),
    appliers=EXIT_APPLIERS,
    mirrored_tables=(subjects, subject_changes, subject_days, household_plans, case_overdue, case_progress, case_step_days,
                     household_members, plan_evidence, measure_evidence, gap_evidence, income_evidence,
                     difficulty_evidence, visit_evidence),
    mirrors={
        **{event_type: subjects_changed for event_type in SUBJECT_CHANGES}, "SubjectIdentified": identified,
        **{event_type: case_steps for event_type in CASE_STEP_EVENTS}, "SubjectRiskAdded": subject_risks_added,
        "CaseStepOverdue": cases_overdue,
        "HouseholdRegistered": members_registered, "HouseholdUpdated": members_registered,
        "RiskClueRaised": clue_raised, "RiskCluesRaised": clues_raised, "VisitRecorded": grid_visits,
        "PlanOpened": plans_opened, "PlanClosed": plans_closed,
        "HelperAssigned": helpers_named, "HelperReassigned": helpers_named,
        "MeasureAssigned": measures_assigned, "MeasureCompleted": measures_completed,
        "MeasureCancelled": measures_cancelled, "PlanGapFound": gaps_found, "PlanGapClosed": gaps_closed,
        "IncomeRecorded": incomes_recorded, "HelperVisitRecorded": helper_visits,
    },
)
