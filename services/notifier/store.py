"""notifier's tables and queries. (`notifications` is the staff inbox; the runtime's `inbox`
table is the consumer's record of events already applied.)"""
from __future__ import annotations


import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.vocabulary import StaffRole
from services.notifier.domain import StaffMember

metadata = sa.MetaData()

staff = sa.Table(
    "staff", metadata,
    sa.Column("staff_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("region_code", sa.Text, nullable=False),
    sa.Column("email", sa.Text),
    sa.Column("webhook_url", sa.Text),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

notifications = sa.Table(
    "notifications", metadata,
    sa.Column("notification_id", sa.Text, primary_key=True),
    sa.Column("staff_id", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("reference", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("read_at", sa.DateTime(timezone=True)),
)

# Indexes, as the migrations make them (tests/integration/runtime/test_tables_match_migrations.py).
sa.Index("staff_region", staff.c.region_code)
sa.Index("notifications_staff", notifications.c.staff_id, notifications.c.notification_id)


async def save_staff(session: AsyncSession, row: dict) -> None:
    stmt = pg_insert(staff).values(**row)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["staff_id"], set_={k: stmt.excluded[k] for k in row if k != "staff_id"}
    ))


async def staff_of_region(session: AsyncSession, region_code: str) -> list[StaffMember]:
    """Staff whose region contains `region_code` (a village's cadres, its township, its county...)."""
    rows = await session.execute(
        sa.select(staff.c.staff_id, staff.c.role, staff.c.region_code)
        .where(sa.literal(region_code).startswith(staff.c.region_code))
    )
    return [StaffMember(r.staff_id, StaffRole(r.role), r.region_code) for r in rows]


async def notification_of(session: AsyncSession, staff_id: str, notification_id: str):
    """The notification if it is in this member of staff's inbox, else None."""
    return (await session.execute(sa.select(notifications).where(
        notifications.c.notification_id == notification_id, notifications.c.staff_id == staff_id))).first()


async def inbox_page(session: AsyncSession, staff_id: str, unread_only: bool, after: str | None, limit: int):
    query = sa.select(notifications).where(notifications.c.staff_id == staff_id)
    if unread_only:
        query = query.where(notifications.c.read_at.is_(None))
    if after:
        query = query.where(notifications.c.notification_id < after)
    return (await session.execute(query.order_by(notifications.c.notification_id.desc()).limit(limit))).all()
