"""screening's tables and queries."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncSession

from services.screening.domain import OpenCase

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
