"""exit_review's tables and queries; which are projections of its events and which mirror other
services' facts (the evidence the blockers read): projections.py."""
from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncSession

from runtime.db import predicate
from services.exit_review.domain.evidence import Difficulty, Evidence, Income, Measure, OpenGap, Visit
from services.exit_review.domain.ladder import Subject

metadata = sa.MetaData()

# --- projected from exit_review's own events -----------------------------------------------------

exits = sa.Table(
    "exits", metadata,
    sa.Column("exit_id", sa.Text, primary_key=True),
    sa.Column("household_id", sa.Text, nullable=False),
    sa.Column("region_code", sa.Text, nullable=False),
    sa.Column("step", sa.Text, nullable=False),
    sa.Column("outcome", sa.Text),  # approved, rejected, returned; None while open
    sa.Column("notice_ends", sa.Date),
    sa.Column("due_date", sa.Date),  # when the step it stands at is due (None: closed)
    sa.Column("step_since", sa.Date),  # the day it came to the step it stands at
    sa.Column("overdue_reported", sa.Text),  # step@due_date of the last ExitStepOverdue
    sa.Column("passed", sa.Boolean),  # the blockers' assessment, once judged
    sa.Column("blockers", pg.ARRAY(sa.Text), nullable=False),  # those that failed or were unknown
    sa.Column("decided_on", sa.Date),  # the county's approval
    sa.Column("look_back", sa.Text),  # due, completed
    sa.Column("flagged", sa.Boolean),  # the look-back found an income below the line or a new risk
    sa.Column("rollback", sa.Text),  # pending, rolled_back, refused
    sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("exits_household", exits.c.household_id)
sa.Index("exits_region", exits.c.region_code)
sa.Index("exits_notice_ends", exits.c.notice_ends, postgresql_where=sa.text("step = 'public_notice'"))

filings = sa.Table(  # StatisticsFiled, FilingOverdue: each township's and county's monthly filing
    "filings", metadata,
    sa.Column("region_code", sa.Text, primary_key=True),
    sa.Column("period", sa.Text, primary_key=True),
    sa.Column("level", sa.Text, primary_key=True),  # township, county
    sa.Column("due_on", sa.Date, nullable=False),
    sa.Column("filed_at", sa.DateTime(timezone=True)),
    sa.Column("late", sa.Boolean),
    sa.Column("overdue", sa.Boolean, nullable=False),  # FilingOverdue published
)
def _step_days(name: str) -> sa.Table:
    """Steps left per village, day and step: how many, and the days they took (statistics' averages)."""
    return sa.Table(
        name, metadata,
        sa.Column("region_code", sa.Text, primary_key=True),
        sa.Column("on", sa.Date, primary_key=True),  # the day the step was left
        sa.Column("step", sa.Text, primary_key=True),
        sa.Column("steps", sa.Integer, nullable=False),
        sa.Column("total_days", sa.Integer, nullable=False),
    )


exit_step_days = _step_days("exit_step_days")  # the exit ladder's, from exit_review's own events
case_step_days = _step_days("case_step_days")  # the identification ladder's, from screening's
case_progress = sa.Table(  # the step each identification case stands at, and since when (screening's)
    "case_progress", metadata,
    sa.Column("case_id", sa.Text, primary_key=True),
    sa.Column("region_code", sa.Text, nullable=False),
    sa.Column("step", sa.Text, nullable=False),
    sa.Column("since", sa.Date, nullable=False),
)
exit_overdue = sa.Table(  # ExitStepOverdue (statistics: overdue steps)
    "exit_overdue", metadata,
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("region_code", sa.Text, nullable=False),
    sa.Column("step", sa.Text, nullable=False),
    sa.Column("due_date", sa.Date, nullable=False),
)

# --- mirrored from screening, intake and assistance: the evidence --------------------------------

subjects = sa.Table(
    "subjects", metadata,
    sa.Column("household_id", sa.Text, primary_key=True),
    sa.Column("region_code", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # monitored, risk_eliminated, removed
    sa.Column("protected", sa.Boolean, nullable=False),
    sa.Column("category", sa.Text),
    sa.Column("risk_types", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("identified_on", sa.Date),
)
subject_changes = sa.Table(  # each change of a subject, with what it did to the counts (statistics)
    "subject_changes", metadata,
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("household_id", sa.Text, nullable=False),
    sa.Column("region_code", sa.Text, nullable=False),
    sa.Column("category", sa.Text),
    sa.Column("change", sa.Text, nullable=False),  # identified, removed, protected, risk_eliminated, rolled_back
    sa.Column("on", sa.Date, nullable=False),
    sa.Column("monitored_delta", sa.SmallInteger, nullable=False),
    sa.Column("eliminated_delta", sa.SmallInteger, nullable=False),
    sa.Column("protected_delta", sa.SmallInteger, nullable=False),
)
sa.Index("subject_changes_region_on", subject_changes.c.region_code, subject_changes.c.on,
         postgresql_ops={"region_code": "text_pattern_ops"})
subject_days = sa.Table(  # subject_changes summed per village, day and category: what a region's figures add up
    "subject_days", metadata,
    sa.Column("region_code", sa.Text, primary_key=True),
    sa.Column("on", sa.Date, primary_key=True),
    sa.Column("category", sa.Text, primary_key=True),  # '' when none
    sa.Column("monitored", sa.Integer, nullable=False),  # the day's deltas
    sa.Column("risk_eliminated", sa.Integer, nullable=False),
    sa.Column("protected", sa.Integer, nullable=False),
    sa.Column("identified_n", sa.Integer, nullable=False),  # the day's changes
    sa.Column("risk_eliminated_n", sa.Integer, nullable=False),
    sa.Column("rolled_back_n", sa.Integer, nullable=False),
    sa.Column("removed_n", sa.Integer, nullable=False),
)
household_plans = sa.Table(  # one row a household: what the plan figures count, without a join
    "household_plans", metadata,
    sa.Column("household_id", sa.Text, primary_key=True),
    sa.Column("region_code", sa.Text),  # screening's, once the subject is known
    sa.Column("monitored", sa.Boolean, nullable=False),
    sa.Column("measures", sa.Integer, nullable=False),  # active or completed
    sa.Column("developmental", sa.Integer, nullable=False),
    sa.Column("open_gaps", sa.Integer, nullable=False),
)
case_overdue = sa.Table(  # screening's CaseStepOverdue (statistics: overdue steps)
    "case_overdue", metadata,
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("region_code", sa.Text, nullable=False),
    sa.Column("step", sa.Text, nullable=False),
    sa.Column("due_date", sa.Date, nullable=False),
)
household_members = sa.Table(
    "household_members", metadata,
    sa.Column("household_id", sa.Text, primary_key=True),
    sa.Column("member_ids", pg.ARRAY(sa.Text), nullable=False),
)
plan_evidence = sa.Table(
    "plan_evidence", metadata,
    sa.Column("household_id", sa.Text, primary_key=True),
    sa.Column("open", sa.Boolean, nullable=False),
    sa.Column("helper_id", sa.Text),
)
measure_evidence = sa.Table(
    "measure_evidence", metadata,
    sa.Column("measure_id", sa.Text, primary_key=True),
    sa.Column("household_id", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("nature", sa.Text),  # developmental, safety_net
    sa.Column("answers", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("starts_on", sa.Date, nullable=False),
    sa.Column("planned_end", sa.Date),
    sa.Column("completed_on", sa.Date),
)
sa.Index("measure_evidence_household", measure_evidence.c.household_id)
gap_evidence = sa.Table(
    "gap_evidence", metadata,
    sa.Column("household_id", sa.Text, primary_key=True),
    sa.Column("gap", sa.Text, primary_key=True),
    sa.Column("risk_type", sa.Text, primary_key=True),  # '' when about no one risk
    sa.Column("found_on", sa.Date, nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
)
income_evidence = sa.Table(
    "income_evidence", metadata,
    sa.Column("household_id", sa.Text, primary_key=True),
    sa.Column("period", sa.Text, primary_key=True),
    sa.Column("amount", sa.Numeric(14, 2), nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
)
difficulty_evidence = sa.Table(
    "difficulty_evidence", metadata,
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("ref", sa.Text, primary_key=True),  # the clue id (a batch of clues is one event)
    sa.Column("household_id", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),  # clue, risk_added
    sa.Column("risk_types", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("raised_on", sa.Date, nullable=False),
)
sa.Index("difficulty_evidence_household", difficulty_evidence.c.household_id)
visit_evidence = sa.Table(
    "visit_evidence", metadata,
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("household_id", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),  # helper_visit, grid_visit
    sa.Column("visited_on", sa.Date, nullable=False),
)
sa.Index("visit_evidence_household", visit_evidence.c.household_id)


# --- queries ---------------------------------------------------------------------------------------

async def subject_of(session: AsyncSession, household_id: str) -> Subject | None:
    row = (await session.execute(sa.select(subjects).where(subjects.c.household_id == household_id))).first()
    if row is None:
        return None
    members = await session.scalar(sa.select(household_members.c.member_ids)
                                   .where(household_members.c.household_id == household_id))
    helper = await session.scalar(sa.select(plan_evidence.c.helper_id).where(plan_evidence.c.household_id == household_id))
    return Subject(household_id, row.region_code, row.status, row.protected, frozenset(members or ()), helper)


async def evidence_of(session: AsyncSession, household_id: str, region_code: str) -> Evidence:
    def where(table):
        return sa.select(table).where(table.c.household_id == household_id)

    plan_known = await session.scalar(sa.select(sa.func.count()).select_from(plan_evidence)
                                      .where(plan_evidence.c.household_id == household_id)) > 0
    incomes = [Income(r.period, r.amount, r.event_id) for r in await session.execute(where(income_evidence))]
    measures = [Measure(r.measure_id, r.kind, tuple(r.answers), r.status, r.starts_on, r.planned_end, r.completed_on)
                for r in await session.execute(where(measure_evidence).order_by(measure_evidence.c.starts_on,
                                                                                 measure_evidence.c.measure_id))]
    gaps = [OpenGap(r.gap, r.risk_type or None, r.found_on, r.event_id) for r in await session.execute(where(gap_evidence))]
    difficulties = [Difficulty(r.kind, r.ref, tuple(r.risk_types), r.raised_on, r.event_id)
                    for r in await session.execute(where(difficulty_evidence).order_by(difficulty_evidence.c.raised_on))]
    visits = [Visit(r.kind, r.visited_on, r.event_id)
              for r in await session.execute(where(visit_evidence).order_by(visit_evidence.c.visited_on))]
    return Evidence(household_id, region_code, plan_known, tuple(incomes), tuple(measures), tuple(gaps),
                    tuple(difficulties), tuple(visits))


async def exit_row(session: AsyncSession, exit_id: str):
    return (await session.execute(sa.select(exits).where(exits.c.exit_id == exit_id))).first()


async def exit_page(session: AsyncSession, region_prefix: str, step: str | None, after: str | None, limit: int,
                    look_back: str | None = None, flagged: bool | None = None, overdue_on: date | None = None):
    query = sa.select(exits).where(exits.c.region_code.startswith(region_prefix, autoescape=True))
    if step:
        query = query.where(exits.c.step == step)
    if look_back:
        query = query.where(exits.c.look_back == look_back)
    if flagged is not None:
        query = query.where(exits.c.flagged.is_(flagged))
    if overdue_on is not None:
        query = query.where(exits.c.step != "closed", exits.c.due_date < overdue_on)
    if after:
        query = query.where(exits.c.exit_id > after)
    return (await session.execute(query.order_by(exits.c.exit_id).limit(limit))).all()


async def last_approved_exit(session: AsyncSession, household_id: str) -> str | None:
    return await session.scalar(sa.select(exits.c.exit_id).where(exits.c.household_id == household_id,
                                                                  exits.c.outcome == "approved")
                                .order_by(exits.c.decided_on.desc(), exits.c.exit_id.desc()).limit(1))


async def look_backs_to_check(session: AsyncSession, approved_before: date, limit: int = 500) -> list[str]:
    """Households with an approved exit, not yet looked back at nor rolled back, approved on or
    before `approved_before` (the domain says whether each is due)."""
    return list(await session.scalars(
        sa.select(exits.c.household_id).where(exits.c.outcome == "approved", exits.c.look_back.is_(None),
                                              exits.c.rollback.is_distinct_from("rolled_back"),
                                              exits.c.decided_on <= approved_before)
        .order_by(exits.c.decided_on).limit(limit)))


_OVERDUE_MARK = exits.c.step + "@" + sa.cast(exits.c.due_date, sa.Text)


async def overdue_unreported(session: AsyncSession, today: date, limit: int = 500) -> list:
    """Open cases past their step's due date whose overdue event for that step and date is not out."""
    return (await session.execute(
        sa.select(exits.c.exit_id, exits.c.household_id, exits.c.region_code, exits.c.step, exits.c.due_date)
        .where(exits.c.step != "closed", exits.c.due_date < today, exits.c.overdue_reported.is_distinct_from(_OVERDUE_MARK))
        .limit(limit).with_for_update(skip_locked=True))).all()


async def notices_ended(session: AsyncSession, today: date, limit: int = 500) -> list[str]:
    """Households whose exit notice has run its days (the scheduler closes them)."""
    return list(await session.scalars(
        sa.select(exits.c.household_id).where(exits.c.step == predicate("public_notice"), exits.c.notice_ends <= today)
        .order_by(exits.c.notice_ends).limit(limit)))


# --- statistics --------------------------------------------------------------------------------------

FLOWS = ("identified", "risk_eliminated", "rolled_back", "removed")

def _in(table: sa.Table, region: str):
    return table.c.region_code.startswith(region, autoescape=True)


async def subject_stock(session: AsyncSession, region: str, end: date, group_length: int | None = None) -> list:
    """Per category (or, with `group_length`, per region code cut to that length): the subjects
    monitored, risk-eliminated and protected at the end of `end`, as the sum of their changes."""
    d = subject_days.c
    key = (sa.func.substr(d.region_code, 1, group_length) if group_length else sa.func.nullif(d.category, "")).label("key")
    return (await session.execute(
        sa.select(key, sa.func.sum(d.monitored).label("monitored"), sa.func.sum(d.risk_eliminated).label("risk_eliminated"),
                  sa.func.sum(d.protected).label("protected"))
        .where(_in(subject_days, region), d.on <= end).group_by(key))).all()


async def subject_flows(session: AsyncSession, region: str, start: date, end: date) -> dict[str, int]:
    d = subject_days.c
    row = (await session.execute(
        sa.select(*(sa.func.coalesce(sa.func.sum(getattr(d, f"{flow}_n")), 0) for flow in FLOWS))
        .where(_in(subject_days, region), d.on.between(start, end)))).one()
    return dict(zip(FLOWS, row))


async def plan_sums(session: AsyncSession, region: str) -> tuple[int, int, int, int, int]:
    """Of the subjects monitored now: how many, their measures (active or completed), how many of
    those developmental, households with a measure, households with an open gap."""
    p = household_plans.c
    row = (await session.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(p.measures), 0),
                  sa.func.coalesce(sa.func.sum(p.developmental), 0), sa.func.count().filter(p.measures > 0),
                  sa.func.count().filter(p.open_gaps > 0))
        .where(_in(household_plans, region), p.monitored))).one()
    return tuple(row)


async def average_step_days(session: AsyncSession, region: str, start: date, end: date) -> dict[str, dict]:
    """Per ladder, per step: the average days of the steps left in the period."""
    averages = {}
    for ladder, table in (("identification", case_step_days), ("exit", exit_step_days)):
        rows = await session.execute(
            sa.select(table.c.step, sa.func.sum(table.c.total_days), sa.func.sum(table.c.steps))
            .where(_in(table, region), table.c.on.between(start, end)).group_by(table.c.step).order_by(table.c.step))
        averages[ladder] = {step: (days, steps) for step, days, steps in rows}
    return averages


async def regions_with_subjects(session: AsyncSession, length: int) -> list[str]:
    """The townships (9) or counties (6) where any subject is: those that file each month."""
    region = sa.func.substr(subjects.c.region_code, 1, length).label("region")
    return list(await session.scalars(sa.select(region).group_by(region).order_by(region)))


async def filing_rows(session: AsyncSession, region: str, period: str, level: str | None = None) -> list:
    query = sa.select(filings).where(_in(filings, region), filings.c.period == period)
    if level:
        query = query.where(filings.c.level == level)
    return (await session.execute(query.order_by(filings.c.level, filings.c.region_code))).all()


async def overdue_steps(session: AsyncSession, region: str, start: date, end: date) -> dict[str, dict[str, int]]:
    """Per ladder (identification, exit), the steps whose due date inside the period passed without them."""
    counts = {}
    for ladder, table in (("identification", case_overdue), ("exit", exit_overdue)):
        rows = await session.execute(sa.select(table.c.step, sa.func.count())
                                     .where(_in(table, region), table.c.due_date.between(start, end))
                                     .group_by(table.c.step).order_by(table.c.step))
        counts[ladder] = {step: n for step, n in rows}
    return counts
