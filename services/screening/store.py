"""screening's tables and queries; which tables are projections of its events and which mirror
intake's: projections.py."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncSession

from runtime.db import predicate
from services.screening.domain import MonitoredSubject, OpenCase

metadata = sa.MetaData()

cases = sa.Table(
    "cases", metadata,
    sa.Column("case_id", sa.Text, primary_key=True),
    sa.Column("household_id", sa.Text, nullable=False),
    sa.Column("region_code", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # open | closed
    sa.Column("step", sa.Text, nullable=False),
    sa.Column("due_date", sa.Date, nullable=False),
    sa.Column("risk_types", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("clue_ids", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("notice_ends", sa.Date),
    sa.Column("outcome", sa.Text),
    sa.Column("overdue_reported", sa.Text),
)

subjects = sa.Table(
    "subjects", metadata,
    sa.Column("household_id", sa.Text, primary_key=True),
    sa.Column("region_code", sa.Text, nullable=False),
    sa.Column("case_id", sa.Text, nullable=False),
    sa.Column("category", sa.Text, nullable=False),
    sa.Column("risk_types", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("protected", sa.Boolean, nullable=False),
    sa.Column("clue_ids", pg.ARRAY(sa.Text), nullable=False),  # clues taken as new risks while monitored
    sa.Column("removal_pending", sa.Boolean, nullable=False),
    sa.Column("protection_pending", sa.Boolean, nullable=False),
    sa.Column("identified_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

household_labour = sa.Table(
    "household_labour", metadata,
    sa.Column("household_id", sa.Text, primary_key=True),
    sa.Column("any_member_can_work", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

allowance_watch = sa.Table(
    "allowance_watch", metadata,
    sa.Column("clue_id", sa.Text, primary_key=True),
    sa.Column("household_id", sa.Text, nullable=False),
    sa.Column("region_code", sa.Text, nullable=False),
    sa.Column("indicator", sa.Text, nullable=False),
    sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
)

allowance_watch_checks = sa.Table(
    "allowance_watch_checks", metadata,
    sa.Column("clue_id", sa.Text, primary_key=True),
    sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
)

quality_issues = sa.Table(
    "quality_issues", metadata,
    sa.Column("issue_id", sa.Text, primary_key=True),
    sa.Column("household_id", sa.Text, nullable=False),
    sa.Column("region_code", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
)

# Indexes, as the migrations make them (tests/integration/runtime/test_tables_match_migrations.py).
sa.Index("cases_one_open_per_household", cases.c.household_id, unique=True, postgresql_where=sa.text("status = 'open'"))
sa.Index("cases_region", cases.c.region_code)
sa.Index("cases_notice_ends", cases.c.notice_ends, postgresql_where=sa.text("step = 'public_notice'"))
sa.Index("subjects_region", subjects.c.region_code)
sa.Index("allowance_watch_observed", allowance_watch.c.observed_at)
sa.Index("quality_issues_region", quality_issues.c.region_code)


async def open_cases_of(session: AsyncSession, household_ids: list[str]) -> dict[str, OpenCase]:
    """household_id -> its open case, for those of these households that have one (one query)."""
    if not household_ids:
        return {}
    rows = await session.execute(
        sa.select(cases.c.case_id, cases.c.household_id, cases.c.clue_ids, cases.c.risk_types)
        .where(cases.c.household_id == sa.any_(sa.bindparam("households", household_ids, type_=pg.ARRAY(sa.Text))),
               cases.c.status == predicate("open"))
    )
    return {r.household_id: OpenCase(r.case_id, r.household_id, tuple(r.clue_ids), tuple(r.risk_types)) for r in rows}


async def case_row(session: AsyncSession, case_id: str):
    return (await session.execute(sa.select(cases).where(cases.c.case_id == case_id))).first()


async def case_page(session: AsyncSession, region: str, status: str | None, after: str | None, limit: int,
                    overdue_on=None):
    query = sa.select(cases).where(cases.c.region_code.startswith(region, autoescape=True))
    if overdue_on is not None:
        query = query.where(cases.c.status == "open", cases.c.due_date < overdue_on)
    if status:
        query = query.where(cases.c.status == status)
    if after:
        query = query.where(cases.c.case_id < after)
    return (await session.execute(query.order_by(cases.c.case_id.desc()).limit(limit))).all()


async def subject_row(session: AsyncSession, household_id: str):
    return (await session.execute(sa.select(subjects).where(subjects.c.household_id == household_id))).first()


async def subject_page(session: AsyncSession, region: str, status: str | None, after: str | None, limit: int):
    query = sa.select(subjects).where(subjects.c.region_code.startswith(region, autoescape=True))
    if status:
        query = query.where(subjects.c.status == status)
    if after:
        query = query.where(subjects.c.household_id > after)
    return (await session.execute(query.order_by(subjects.c.household_id).limit(limit))).all()


async def notices_due(session: AsyncSession, today) -> list[str]:
    rows = await session.execute(
        sa.select(cases.c.case_id).where(cases.c.step == predicate("public_notice"), cases.c.notice_ends <= today)
        .order_by(cases.c.notice_ends).limit(500))
    return list(rows.scalars())


async def monitored_subjects(session: AsyncSession, household_ids: list[str]) -> dict[str, MonitoredSubject]:
    if not household_ids:
        return {}
    rows = await session.execute(sa.select(subjects.c.household_id, subjects.c.clue_ids).where(
        subjects.c.household_id == sa.any_(sa.bindparam("households", household_ids, type_=pg.ARRAY(sa.Text))),
        subjects.c.status == "monitored"))
    return {r.household_id: MonitoredSubject(r.household_id, tuple(r.clue_ids)) for r in rows}


async def subject_state(session: AsyncSession, household_id: str):
    """The subject row, locked: its marks are decided on and changed in this transaction."""
    return (await session.execute(
        sa.select(subjects).where(subjects.c.household_id == household_id).with_for_update())).first()


async def subject_regions(session: AsyncSession, household_ids: list[str]) -> dict[str, str]:
    """The region of each of these households that is a subject (its rows locked, as subject_state's)."""
    if not household_ids:
        return {}
    rows = await session.execute(sa.select(subjects.c.household_id, subjects.c.region_code).where(
        subjects.c.household_id == sa.any_(sa.bindparam("households", sorted(set(household_ids)), type_=pg.ARRAY(sa.Text))))
        .order_by(subjects.c.household_id).with_for_update())
    return {r.household_id: r.region_code for r in rows}


async def any_member_can_work(session: AsyncSession, household_id: str) -> bool | None:
    return await session.scalar(sa.select(household_labour.c.any_member_can_work)
                                .where(household_labour.c.household_id == household_id))


async def allowance_watches_due(session: AsyncSession, cutoff) -> list:
    """Watches whose days have run out, with whether the household is now a subject or in an open case."""
    in_loop = sa.or_(
        sa.exists().where(subjects.c.household_id == allowance_watch.c.household_id, subjects.c.status == "monitored"),
        sa.exists().where(cases.c.household_id == allowance_watch.c.household_id, cases.c.status == predicate("open")),
    )
    return (await session.execute(
        sa.select(allowance_watch, in_loop.label("in_loop"))
        .where(~sa.exists().where(allowance_watch_checks.c.clue_id == allowance_watch.c.clue_id),
               allowance_watch.c.observed_at <= cutoff)
        .order_by(allowance_watch.c.observed_at).limit(500).with_for_update(of=allowance_watch, skip_locked=True)
    )).all()


async def quality_issue_page(session: AsyncSession, region: str, after: str | None, limit: int):
    query = sa.select(quality_issues).where(quality_issues.c.region_code.startswith(region, autoescape=True))
    if after:
        query = query.where(quality_issues.c.issue_id < after)
    return (await session.execute(query.order_by(quality_issues.c.issue_id.desc()).limit(limit))).all()


_OVERDUE_MARK = cases.c.step + "@" + sa.cast(cases.c.due_date, sa.Text)  # the step and due date reported


async def overdue_unreported(session: AsyncSession, today) -> list:
    """Open cases past their step's due date whose overdue event for that step and date is not yet out."""
    return (await session.execute(
        sa.select(cases.c.case_id, cases.c.household_id, cases.c.region_code, cases.c.step, cases.c.due_date)
        .where(cases.c.status == "open", cases.c.due_date < today,
               cases.c.overdue_reported.is_distinct_from(_OVERDUE_MARK))
        .limit(500).with_for_update(skip_locked=True)
    )).all()
