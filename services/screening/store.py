"""screening's tables and queries."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

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
    sa.Column("identified_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


async def open_case_of(session: AsyncSession, household_id: str) -> OpenCase | None:
    row = (
        await session.execute(
            sa.select(cases.c.case_id, cases.c.household_id, cases.c.clue_ids, cases.c.risk_types)
            .where(cases.c.household_id == household_id, cases.c.status == "open")
        )
    ).first()
    return OpenCase(row.case_id, row.household_id, tuple(row.clue_ids), tuple(row.risk_types)) if row else None


async def case_row(session: AsyncSession, case_id: str):
    return (await session.execute(sa.select(cases).where(cases.c.case_id == case_id))).first()


async def case_page(session: AsyncSession, region: str, status: str | None, after: str | None, limit: int):
    query = sa.select(cases).where(cases.c.region_code.startswith(region, autoescape=True))
    if status:
        query = query.where(cases.c.status == status)
    if after:
        query = query.where(cases.c.case_id < after)
    return (await session.execute(query.order_by(cases.c.case_id.desc()).limit(limit))).all()


async def save_case_progress(session: AsyncSession, case_id: str, values: dict) -> None:
    await session.execute(sa.update(cases).where(cases.c.case_id == case_id).values(**values))


async def save_subject(session: AsyncSession, row: dict) -> None:
    """A household identified again (after an exit, say) is monitored again under its new case."""
    stmt = pg_insert(subjects).values(**row)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["household_id"], set_={c: stmt.excluded[c] for c in row if c not in ("household_id",)}))


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
        sa.select(cases.c.case_id).where(cases.c.step == "public_notice", cases.c.notice_ends <= today)
        .order_by(cases.c.notice_ends).limit(500))
    return list(rows.scalars())


async def monitored_subject(session: AsyncSession, household_id: str) -> MonitoredSubject | None:
    row = (await session.execute(sa.select(subjects.c.household_id, subjects.c.clue_ids).where(
        subjects.c.household_id == household_id, subjects.c.status == "monitored"))).first()
    return MonitoredSubject(row.household_id, tuple(row.clue_ids)) if row else None


async def add_subject_risk(session: AsyncSession, household_id: str, clue_id: str, risk_types: list[str], now) -> None:
    await session.execute(sa.update(subjects).where(subjects.c.household_id == household_id).values(
        clue_ids=subjects.c.clue_ids + [clue_id],
        risk_types=sa.func.array(sa.select(sa.func.unnest(subjects.c.risk_types + risk_types)).distinct().scalar_subquery()),
        updated_at=now))
