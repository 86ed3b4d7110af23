"""assistance's tables and queries; which are projections of its events, which mirror other
services' facts and which are primary records: projections.py."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncSession

from services.assistance.domain import Helper

metadata = sa.MetaData()

plans = sa.Table(
    "plans", metadata,
    sa.Column("household_id", sa.Text, primary_key=True),
    sa.Column("region_code", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # open | closed
    sa.Column("case_id", sa.Text),
    sa.Column("category", sa.Text),
    sa.Column("risk_types", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("identified_on", sa.Date, nullable=False),
    sa.Column("helper_id", sa.Text),
    sa.Column("unassigned", sa.Boolean, nullable=False),  # no helper in reach when it was looked for
    sa.Column("closed_reason", sa.Text),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

measures = sa.Table(
    "measures", metadata,
    sa.Column("measure_id", sa.Text, primary_key=True),
    sa.Column("household_id", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("nature", sa.Text, nullable=False),
    sa.Column("answers", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("department", sa.Text, nullable=False),
    sa.Column("member_id", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("amount", sa.Numeric(14, 2)),
    sa.Column("quantity", sa.Integer),
    sa.Column("starts_on", sa.Date, nullable=False),
    sa.Column("planned_end", sa.Date),
    sa.Column("status", sa.Text, nullable=False),  # active | completed | cancelled
    sa.Column("note", sa.Text),  # the last progress note, the delivery or the reason it was cancelled
    sa.Column("completed_on", sa.Date),
    sa.Column("confirmed_by", sa.Text),
    sa.Column("source_record_id", sa.Text),
    sa.Column("assigned_by", sa.Text, nullable=False),
    sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

plan_gaps = sa.Table(
    "plan_gaps", metadata,
    sa.Column("household_id", sa.Text, primary_key=True),
    sa.Column("gap", sa.Text, primary_key=True),
    sa.Column("risk_type", sa.Text, primary_key=True),  # '' when the gap is about no one risk
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
)

incomes = sa.Table(
    "incomes", metadata,
    sa.Column("household_id", sa.Text, primary_key=True),
    sa.Column("period", sa.Text, primary_key=True),
    sa.Column("net_income_per_person", sa.Numeric(14, 2), nullable=False),
    sa.Column("rigid_expenditure", sa.Numeric(14, 2), nullable=False),
    sa.Column("sources", pg.JSONB, nullable=False),
    sa.Column("recorded_by", sa.Text, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)

helper_visits = sa.Table(
    "helper_visits", metadata,
    sa.Column("visit_id", sa.Text, primary_key=True),
    sa.Column("household_id", sa.Text, nullable=False),
    sa.Column("helper_id", sa.Text, nullable=False),
    sa.Column("visited_on", sa.Date, nullable=False),
    sa.Column("findings", sa.Text, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)

# Mirrors of other services' facts.
helpers = sa.Table(  # notifier's directory: the staff whose role is helper
    "helpers", metadata,
    sa.Column("helper_id", sa.Text, primary_key=True),
    sa.Column("region_code", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),  # still a helper (a later registration may change the role)
)

household_facts = sa.Table(  # intake's labour facts and screening's protected mark
    "household_facts", metadata,
    sa.Column("household_id", sa.Text, primary_key=True),
    sa.Column("any_member_can_work", sa.Boolean),
    sa.Column("protected", sa.Boolean, nullable=False, server_default=sa.false()),
)

# Indexes, as the migrations make them (tests/integration/runtime/test_tables_match_migrations.py).
sa.Index("plans_region", plans.c.region_code)
sa.Index("plans_helper", plans.c.helper_id)
sa.Index("measures_household", measures.c.household_id)
sa.Index("helpers_region", helpers.c.region_code)
sa.Index("helper_visits_household", helper_visits.c.household_id, helper_visits.c.visited_on)


async def helpers_near(session: AsyncSession, region_codes: set[str]) -> list[Helper]:
    """The active helpers of these households' villages and townships, each with their open plans, in
    one query (domain.choose_helper picks a household's among them)."""
    if not region_codes:
        return []
    load = (sa.select(sa.func.count()).where(plans.c.helper_id == helpers.c.helper_id, plans.c.status == "open")
            .scalar_subquery())
    townships = sorted({code[:9] for code in region_codes})
    rows = (await session.execute(sa.select(helpers.c.helper_id, helpers.c.region_code, load).where(
        helpers.c.active, sa.func.left(helpers.c.region_code, 9) == sa.any_(sa.bindparam(
            "townships", townships, type_=pg.ARRAY(sa.Text)))))).all()
    return [Helper(*row) for row in rows]


async def helper_load(session: AsyncSession, helper_id: str) -> int:
    return await session.scalar(sa.select(sa.func.count()).where(plans.c.helper_id == helper_id, plans.c.status == "open"))


async def helper_of(session: AsyncSession, helper_id: str):
    return (await session.execute(sa.select(helpers).where(helpers.c.helper_id == helper_id))).first()


async def household_facts_of(session: AsyncSession, household_id: str):
    return (await session.execute(sa.select(household_facts).where(household_facts.c.household_id == household_id))).first()


async def household_facts_of_many(session: AsyncSession, household_ids: list[str]) -> dict:
    if not household_ids:
        return {}
    rows = await session.execute(sa.select(household_facts).where(household_facts.c.household_id == sa.any_(
        sa.bindparam("households", household_ids, type_=pg.ARRAY(sa.Text)))))
    return {row.household_id: row for row in rows}


async def plan_row(session: AsyncSession, household_id: str):
    return (await session.execute(sa.select(plans).where(plans.c.household_id == household_id))).first()


async def measures_of(session: AsyncSession, household_id: str):
    return (await session.execute(sa.select(measures).where(measures.c.household_id == household_id)
                                  .order_by(measures.c.assigned_at, measures.c.measure_id))).all()


async def gaps_of(session: AsyncSession, household_id: str):
    return (await session.execute(sa.select(plan_gaps).where(plan_gaps.c.household_id == household_id)
                                  .order_by(plan_gaps.c.gap, plan_gaps.c.risk_type))).all()


async def incomes_of(session: AsyncSession, household_id: str):
    return (await session.execute(sa.select(incomes).where(incomes.c.household_id == household_id)
                                  .order_by(incomes.c.period))).all()


async def measure_row(session: AsyncSession, measure_id: str):
    return (await session.execute(sa.select(measures).where(measures.c.measure_id == measure_id))).first()


async def plan_page(session: AsyncSession, region: str, with_gaps: bool, helper_id: str | None, after: str | None,
                    limit: int, unassigned: bool = False):
    query = sa.select(plans).where(plans.c.region_code.startswith(region, autoescape=True))
    if unassigned:
        query = query.where(plans.c.status == "open", plans.c.helper_id.is_(None))
    if with_gaps:
        query = query.where(sa.exists().where(plan_gaps.c.household_id == plans.c.household_id))
    if helper_id:
        query = query.where(plans.c.helper_id == helper_id)
    if after:
        query = query.where(plans.c.household_id > after)
    return (await session.execute(query.order_by(plans.c.household_id).limit(limit))).all()


async def open_plan_ids(session: AsyncSession, after: str | None, limit: int) -> list[str]:
    query = sa.select(plans.c.household_id).where(plans.c.status == "open")
    if after:
        query = query.where(plans.c.household_id > after)
    return list((await session.execute(query.order_by(plans.c.household_id).limit(limit))).scalars())


async def visits_of(session: AsyncSession, household_id: str):
    return (await session.execute(sa.select(helper_visits).where(helper_visits.c.household_id == household_id)
                                  .order_by(helper_visits.c.visited_on, helper_visits.c.visit_id))).all()


async def overdue_visits_page(session: AsyncSession, region: str, helper_id: str | None, before, after: str | None,
                              limit: int):
    """Open plans of `region` whose helper's last visit is before `before`, or who had none, by household."""
    last_visit = (sa.select(sa.func.max(helper_visits.c.visited_on))
                  .where(helper_visits.c.household_id == plans.c.household_id).scalar_subquery())
    query = (sa.select(plans.c.household_id, plans.c.region_code, plans.c.helper_id, last_visit.label("last_visited_on"))
             .where(plans.c.status == "open", plans.c.region_code.startswith(region, autoescape=True))
             .where(sa.or_(last_visit.is_(None), last_visit < before)))
    if helper_id:
        query = query.where(plans.c.helper_id == helper_id)
    if after:
        query = query.where(plans.c.household_id > after)
    return (await session.execute(query.order_by(plans.c.household_id).limit(limit))).all()


async def helper_page(session: AsyncSession, region: str, more_than: int | None, after: str | None, limit: int):
    """Active helpers of `region` by id, each with their open plans (kept if above `more_than`)."""
    load = sa.func.count(plans.c.household_id)
    query = (sa.select(helpers.c.helper_id, helpers.c.region_code, load.label("households"))
             .select_from(helpers.outerjoin(plans, sa.and_(plans.c.helper_id == helpers.c.helper_id,
                                                           plans.c.status == "open")))
             .where(helpers.c.active, helpers.c.region_code.startswith(region, autoescape=True))
             .group_by(helpers.c.helper_id, helpers.c.region_code))
    if more_than is not None:
        query = query.having(load > more_than)
    if after:
        query = query.where(helpers.c.helper_id > after)
    return (await session.execute(query.order_by(helpers.c.helper_id).limit(limit))).all()
