"""The only code that writes screening's read tables (runtime.projections).

Projected, rebuilt from screening's own events:
- `cases`: VerificationCaseOpened, ClueAttachedToCase (the batch path: read in their JSON form), every
  ladder step (where the case stands, its due date, the notice's end, the outcome), CaseStepOverdue.
- `subjects`: SubjectIdentified, SubjectRiskAdded, the removal and protection steps, and the exit
  outcomes screening records from exit_review's decisions (SubjectRiskEliminated, SubjectMonitoredAgain).
- `allowance_watch_checks`: AllowanceWatchesChecked, one per run of the out-of-loop check.
- `quality_issues`: QualityIssueRaised.

Mirrored, rebuilt from the topics screening consumes (no event of screening's own):
- `household_labour`: whether any member can work, from intake's HouseholdRegistered / HouseholdUpdated.
- `allowance_watch`: intake's new minimum-allowance and extreme-poverty clues, watched for 体外循环.
"""
from __future__ import annotations

from dataclasses import asdict

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.base import current_payload, decode_payload
from contracts.envelope import EventEnvelope
from contracts.intake import any_member_can_work
from contracts.screening import (
    CaseReturned, HouseholdVerified, IdentificationRejected, PublicNoticePosted, SubjectIdentified,
)
from runtime.bulk import insert_rows, update_rows, upsert_rows
from runtime.projections import Projections
from services.screening.domain import subjects as subject_rules
from services.screening.store import (
    allowance_watch, allowance_watch_checks, cases, household_labour, quality_issues, subjects,
)

# --- cases -------------------------------------------------------------------------------------


async def cases_opened(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    rows = []
    for envelope in envelopes:
        case = current_payload(envelope)
        rows.append({"case_id": case["case_id"], "household_id": case["household_id"], "region_code": case["region_code"],
                     "status": "open", "step": case["step"], "due_date": case["due_date"],
                     "risk_types": case["risk_types"], "clue_ids": [case["clue_id"]],
                     "opened_at": envelope.recorded_at, "updated_at": envelope.recorded_at})
    await insert_rows(session, cases, rows)


async def clues_attached(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    """A clue joins its household's open case: its id appended, its risk types merged (in one order)."""
    attached = [(current_payload(envelope), envelope.recorded_at) for envelope in envelopes]
    case_ids = list({clue["case_id"] for clue, _ in attached})
    found = await session.execute(sa.select(cases.c.case_id, cases.c.clue_ids, cases.c.risk_types)
                                  .where(cases.c.case_id.in_(case_ids)))
    now_stands = {row.case_id: {"case_id": row.case_id, "clue_ids": list(row.clue_ids), "risk_types": list(row.risk_types)}
                  for row in found}
    for clue, recorded_at in attached:
        case = now_stands[clue["case_id"]]
        case["clue_ids"].append(clue["clue_id"])
        case["risk_types"] = sorted(set(case["risk_types"]) | set(clue["risk_types"]))
        case["updated_at"] = recorded_at
    await update_rows(session, cases, list(now_stands.values()), key=("case_id",))


async def case_steps(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    """A ladder step: where the case stands and, as the step set it, its due date, the public notice's
    end and the outcome (a subject identified, or the identification rejected)."""
    for envelope in envelopes:
        step = decode_payload(envelope)
        values = {"step": step.step, "updated_at": envelope.recorded_at}
        if step.due_date is not None:
            values["due_date"] = step.due_date
        match step:
            case HouseholdVerified():
                values["risk_types"] = [r.value for r in step.risk_types]
            case PublicNoticePosted():
                values["notice_ends"] = step.ends_on
            case CaseReturned():
                values["notice_ends"] = None
            case SubjectIdentified():
                values.update(status="closed", outcome="identified")
                await _subject_identified(session, step, envelope)
            case IdentificationRejected():
                values.update(status="closed", outcome="rejected")
        await session.execute(sa.update(cases).where(cases.c.case_id == step.case_id).values(**values))


async def steps_overdue(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    """The step and due date whose CaseStepOverdue is out (report_overdue_steps sends one each)."""
    await update_rows(session, cases, [
        {"case_id": overdue["case_id"], "overdue_reported": f"{overdue['step']}@{overdue['due_date']}"}
        for overdue in map(current_payload, envelopes)], key=("case_id",))


# --- subjects ----------------------------------------------------------------------------------


async def _subject_identified(session: AsyncSession, identified: SubjectIdentified, envelope: EventEnvelope) -> None:
    """A household identified again (after an exit, say) is monitored again under its new case."""
    row = {"household_id": identified.household_id, "region_code": envelope.region_code, "case_id": identified.case_id,
           "category": identified.category, "risk_types": [r.value for r in identified.risk_types],
           "status": subject_rules.MONITORED, "protected": False, "clue_ids": [], "removal_pending": False,
           "protection_pending": False, "identified_at": envelope.recorded_at, "updated_at": envelope.recorded_at}
    await upsert_rows(session, subjects, [row], key=("household_id",))


async def subject_risks_added(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    added = [current_payload(envelope) for envelope in envelopes]
    standing = {row.household_id: {"household_id": row.household_id, "clue_ids": list(row.clue_ids),
                                   "risk_types": list(row.risk_types)}
                for row in await session.execute(sa.select(subjects.c.household_id, subjects.c.clue_ids, subjects.c.risk_types)
                                                 .where(subjects.c.household_id.in_({a["household_id"] for a in added})))}
    for envelope, risk in zip(envelopes, added):  # in order: each adds to what the ones before it left
        row = standing[risk["household_id"]]
        row.update(clue_ids=[*row["clue_ids"], risk["clue_id"]], risk_types=sorted(set(row["risk_types"]) | set(risk["risk_types"])),
                   updated_at=envelope.recorded_at)
    await update_rows(session, subjects, list(standing.values()), key=("household_id",))


async def subject_changes(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    """Removal, protection and the exit outcomes: the marks as domain.subjects.apply leaves them."""
    changes = [decode_payload(envelope) for envelope in envelopes]
    states = {row.household_id: subject_rules.SubjectState(
        row.household_id, row.region_code, row.status, row.protected, row.removal_pending, row.protection_pending)
        for row in await session.execute(sa.select(subjects).where(
            subjects.c.household_id.in_({change.household_id for change in changes})))}
    updated_at = {}
    for envelope, change in zip(envelopes, changes):  # in order, on the marks the ones before left
        states[change.household_id] = subject_rules.apply(states[change.household_id], change)
        updated_at[change.household_id] = envelope.recorded_at
    await update_rows(session, subjects, [
        {**asdict(state), "updated_at": updated_at[household]} for household, state in states.items()
        if household in updated_at], key=("household_id",))


# --- the out-of-loop check and quality issues ---------------------------------------------------


async def watches_checked(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await insert_rows(session, allowance_watch_checks, [
        {"clue_id": clue_id, "checked_at": envelope.recorded_at}
        for envelope in envelopes for clue_id in current_payload(envelope)["clue_ids"]], "ON CONFLICT DO NOTHING")


async def quality_issues_raised(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await session.execute(sa.insert(quality_issues), [
        {**decode_payload(envelope).model_dump(), "raised_at": envelope.recorded_at} for envelope in envelopes])


# --- mirrors of intake's facts -----------------------------------------------------------------

ALLOWANCE_INDICATORS = {("civil_affairs", "new_dibao"), ("civil_affairs", "new_tekun")}


async def household_labour_of(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    """Whether any member can work decides the protected mark; screening keeps just that."""
    await upsert_rows(session, household_labour, [
        {"household_id": household["household_id"], "any_member_can_work": any_member_can_work(household),
         "updated_at": envelope.recorded_at} for envelope in envelopes for household in [current_payload(envelope)]],
        key=("household_id",))


def _watches(clues: list[dict], default_region: str | None, occurred_at) -> list[dict]:
    return [{"clue_id": clue["clue_id"], "household_id": clue["household_id"],
             "region_code": clue.get("region_code") or default_region, "indicator": clue["indicator"],
             "observed_at": clue.get("observed_at") or occurred_at}
            for clue in clues if (clue["source"].get("department"), clue.get("indicator")) in ALLOWANCE_INDICATORS]


async def allowance_clue_watched(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    """A new minimum-allowance or extreme-poverty clue must end in a subject or an open case within
    out_of_loop_days (体外循环): watched from its own date."""
    await insert_rows(session, allowance_watch, [
        watch for envelope in envelopes
        for watch in _watches([current_payload(envelope)], envelope.region_code, envelope.occurred_at)],
        "ON CONFLICT DO NOTHING")


async def allowance_clues_watched(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await insert_rows(session, allowance_watch, [
        watch for envelope in envelopes
        for watch in _watches(current_payload(envelope)["clues"], None, envelope.occurred_at)], "ON CONFLICT DO NOTHING")


PROJECTIONS = Projections(
    tables=(cases, subjects, allowance_watch_checks, quality_issues),
    appliers={
        "VerificationCaseOpened": cases_opened, "ClueAttachedToCase": clues_attached,
        **{step: case_steps for step in (
            "HouseholdVerified", "VillageDeliberated", "PublicNoticePosted", "ObjectionRaised", "ObjectionResolved",
            "CaseReturned", "PublicNoticeClosed", "TownshipReviewed", "CountyDecided", "SubjectIdentified",
            "IdentificationRejected")},
        "CaseStepOverdue": steps_overdue,
        "SubjectRiskAdded": subject_risks_added,
        **{change: subject_changes for change in (
            "RemovalProposed", "SubjectRemoved", "RemovalRejected", "ProtectionProposed", "SubjectProtected",
            "ProtectionDeclined", "SubjectRiskEliminated", "SubjectMonitoredAgain")},
        "AllowanceWatchesChecked": watches_checked,
        "QualityIssueRaised": quality_issues_raised,
    },
    mirrored_tables=(household_labour, allowance_watch),
    mirrors={"HouseholdRegistered": household_labour_of, "HouseholdUpdated": household_labour_of,
             "RiskClueRaised": allowance_clue_watched, "RiskCluesRaised": allowance_clues_watched},
)
