"""intake's tables and queries. ID numbers, names and phones are kept sealed by the IdentityVault
(vault.py); a keyed hash of the ID number is what matching uses. Which tables are projections of
intake's events and which are primary records: projections.py."""
from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncSession

from runtime.bulk import insert_rows, update_rows
from runtime.db import predicate
from services.intake.vault import IdentityVault

metadata = sa.MetaData()

households = sa.Table(
    "households", metadata,
    sa.Column("household_id", sa.Text, primary_key=True),
    sa.Column("region_code", sa.Text, nullable=False),
    sa.Column("group", sa.Text),
    sa.Column("poverty_status", sa.Text, nullable=False),
    sa.Column("grid_worker_id", sa.Text),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_visited_at", sa.DateTime(timezone=True)),
)

members = sa.Table(
    "members", metadata,
    sa.Column("member_id", sa.Text, primary_key=True),
    sa.Column("household_id", sa.Text, nullable=False),
    sa.Column("id_hash", sa.Text, nullable=False, unique=True),
    sa.Column("id_cipher", sa.LargeBinary, nullable=False),
    sa.Column("name_cipher", sa.LargeBinary, nullable=False),
    sa.Column("relation", sa.Text, nullable=False),
    sa.Column("birth_date", sa.Date, nullable=False),
    sa.Column("labor_capacity", sa.Text, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("in_school", sa.Boolean, nullable=False),
)

warnings = sa.Table(
    "warnings", metadata,
    sa.Column("department", sa.Text, primary_key=True),
    sa.Column("source_record_id", sa.Text, primary_key=True),
    sa.Column("warning_id", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # accepted | unmatched | below_threshold
    sa.Column("household_id", sa.Text),
    sa.Column("id_hash", sa.Text),
    sa.Column("clue_id", sa.Text),
    sa.Column("indicator", sa.Text, nullable=False),
    sa.Column("amount", sa.Numeric(14, 2)),
    sa.Column("observed_at", sa.DateTime(timezone=True)),
    sa.Column("detail", sa.Text),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    # The department's own judgement of its indicator's threshold, taken as given (null: none sent),
    # and the threshold the amount was held to when intake judged it against the table.
    sa.Column("over_threshold", sa.Boolean),
    sa.Column("threshold", sa.Numeric(14, 2)),
)

clues = sa.Table(
    "clues", metadata,
    sa.Column("clue_id", sa.Text, primary_key=True),
    sa.Column("household_id", sa.Text, nullable=False),
    sa.Column("region_code", sa.Text, nullable=False),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("source", pg.JSONB, nullable=False),
    sa.Column("indicator", sa.Text),
    sa.Column("risk_types", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("priority_groups", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("period_year", sa.Integer, nullable=False),  # the year its priority groups are judged for
)

visits = sa.Table(
    "visits", metadata,
    sa.Column("visit_id", sa.Text, primary_key=True),
    sa.Column("household_id", sa.Text, nullable=False),
    sa.Column("worker_id", sa.Text, nullable=False),
    sa.Column("visited_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("risk_types", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("notes", sa.Text),
    sa.Column("clue_id", sa.Text),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)

declarations = sa.Table(
    "declarations", metadata,
    sa.Column("declaration_id", sa.Text, primary_key=True),
    sa.Column("household_id", sa.Text, nullable=False),
    sa.Column("phone_cipher", sa.LargeBinary),
    sa.Column("risk_types", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("clue_id", sa.Text, nullable=False),
    sa.Column("declared_at", sa.DateTime(timezone=True), nullable=False),
)

# Indexes, as the migrations make them (tests/integration/runtime/test_tables_match_migrations.py).
sa.Index("households_region", households.c.region_code)
sa.Index("households_region_last_visit", households.c.region_code, households.c.last_visited_at)
sa.Index("households_grid_worker", households.c.grid_worker_id)
sa.Index("members_household", members.c.household_id)
sa.Index("warnings_unmatched", warnings.c.id_hash, postgresql_where=sa.text("status = 'unmatched'"))
sa.Index("warnings_below_threshold", warnings.c.department, warnings.c.source_record_id,
         postgresql_where=sa.text("status = 'below_threshold'"))
sa.Index("clues_region", clues.c.region_code)
sa.Index("clues_priority_groups", clues.c.priority_groups, postgresql_using="gin")
sa.Index("visits_household", visits.c.household_id, visits.c.visited_at)
sa.Index("declarations_household", declarations.c.household_id)


# Columns holding values sealed by the vault: (table, its key column, sealed columns).
SEALED_COLUMNS = (
    (members, "member_id", ("id_cipher", "name_cipher")),
    (declarations, "declaration_id", ("phone_cipher",)),
)


def _sealed_elsewhere(table: sa.Table, columns: tuple[str, ...], header: bytes):
    """Rows with a value sealed under another key than the one `header` names."""
    return sa.or_(*(sa.func.substring(table.c[c], 1, len(header)) != header for c in columns))


async def count_sealed_elsewhere(session: AsyncSession, vault: IdentityVault) -> int:
    total = 0
    for table, _, columns in SEALED_COLUMNS:
        total += await session.scalar(sa.select(sa.func.count()).select_from(table)
                                      .where(_sealed_elsewhere(table, columns, vault.header)))
    return total


async def reseal_some(session: AsyncSession, vault: IdentityVault, limit: int) -> int:
    """Seal up to `limit` rows' values under the current key. The rows are locked (one registration
    rewriting a household's members waits, so neither undoes the other); rows another call holds are
    skipped for the next call."""
    done = 0
    for table, key, columns in SEALED_COLUMNS:
        if done >= limit:
            break
        rows = (await session.execute(
            sa.select(table.c[key], *(table.c[c] for c in columns))
            .where(_sealed_elsewhere(table, columns, vault.header))
            .limit(limit - done).with_for_update(skip_locked=True))).all()
        if rows:
            await session.execute(
                sa.update(table).where(table.c[key] == sa.bindparam("row_key")),
                [{"row_key": row[0], **{c: None if row[i + 1] is None else vault.reseal(row[i + 1])
                                        for i, c in enumerate(columns)}} for row in rows])
        done += len(rows)
    return done


async def household_row(session: AsyncSession, household_id: str):
    return (await session.execute(sa.select(households).where(households.c.household_id == household_id))).first()


async def member_rows(session: AsyncSession, household_id: str):
    return (
        await session.execute(sa.select(members).where(members.c.household_id == household_id).order_by(members.c.member_id))
    ).all()


async def save_members(session: AsyncSession, household_ids: list[str], member_rows: list[dict]) -> None:
    """Replace the members of these households (a primary record: the sealed values no event carries)."""
    if not household_ids:
        return
    await session.execute(sa.delete(members).where(members.c.household_id.in_(household_ids)))
    if member_rows:
        await session.execute(sa.insert(members), member_rows)


async def grid_worker_loads(session: AsyncSession, worker_ids: list[str]) -> dict[str, int]:
    if not worker_ids:
        return {}
    rows = await session.execute(
        sa.select(households.c.grid_worker_id, sa.func.count()).where(households.c.grid_worker_id.in_(worker_ids))
        .group_by(households.c.grid_worker_id)
    )
    return {worker: count for worker, count in rows}


async def unmatched_warnings_of(session: AsyncSession, id_hashes: list[str]):
    """Warnings kept as unmatched for these people, locked so that one registration re-matches them."""
    if not id_hashes:
        return []
    return (await session.execute(
        sa.select(warnings).where(warnings.c.status == predicate("unmatched"), warnings.c.id_hash.in_(id_hashes)).with_for_update()
    )).all()


async def mark_matched(session: AsyncSession, matched: list[dict]) -> None:
    """matched: department, source_record_id, status (accepted or below_threshold), household_id,
    clue_id, threshold (one statement for them all)."""
    await update_rows(session, warnings, matched, key=("department", "source_record_id"))


async def warnings_page(session: AsyncSession, status: str, department: str | None, after: tuple[str, str] | None,
                        limit: int):
    query = sa.select(warnings).where(warnings.c.status == status)
    if department:
        query = query.where(warnings.c.department == department)
    if after:
        query = query.where(sa.tuple_(warnings.c.department, warnings.c.source_record_id) > after)
    return (await session.execute(query.order_by(warnings.c.department, warnings.c.source_record_id).limit(limit))).all()


class HouseholdRef(NamedTuple):
    """What matching needs to know of a registered household."""

    household_id: str
    region_code: str
    poverty_status: str


async def households_of_people(session: AsyncSession, id_hashes: list[str]) -> dict[str, HouseholdRef]:
    """id_hash -> its household, for the registered people among `id_hashes` (one query)."""
    if not id_hashes:
        return {}
    rows = await session.execute(
        sa.select(members.c.id_hash, households.c.household_id, households.c.region_code, households.c.poverty_status)
        .join(households, members.c.household_id == households.c.household_id)
        .where(members.c.id_hash == sa.any_(sa.bindparam("hashes", id_hashes, type_=pg.ARRAY(sa.Text))))
    )
    return {id_hash: HouseholdRef(*ref) for id_hash, *ref in rows}


async def household_ref(session: AsyncSession, household_id: str) -> HouseholdRef | None:
    return (await households_by_id(session, [household_id])).get(household_id)


async def grid_worker_of(session: AsyncSession, household_id: str) -> str | None:
    return await session.scalar(sa.select(households.c.grid_worker_id).where(households.c.household_id == household_id))


async def households_by_id(session: AsyncSession, household_ids: list[str]) -> dict[str, HouseholdRef]:
    if not household_ids:
        return {}
    rows = await session.execute(
        sa.select(households.c.household_id, households.c.region_code, households.c.poverty_status)
        .where(households.c.household_id.in_(household_ids))
    )
    return {r.household_id: HouseholdRef(*r) for r in rows}


async def claim_warnings(session: AsyncSession, rows: list[dict]) -> set[tuple[str, str]]:
    """Record warnings; returns the (department, source_record_id) keys that were new.
    A key sent before, in this batch or any earlier one, is not returned: a duplicate."""
    returned = await insert_rows(session, warnings, rows, "ON CONFLICT DO NOTHING RETURNING department, source_record_id")
    return {(r["department"], r["source_record_id"]) for r in returned}


async def earlier_warnings(session: AsyncSession, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    if not keys:
        return {}
    rows = await session.execute(
        sa.select(warnings).where(sa.tuple_(warnings.c.department, warnings.c.source_record_id).in_(keys))
    )
    return {(r.department, r.source_record_id): r for r in rows}


async def clue_page(session: AsyncSession, region: str, status: str | None, channel: str | None,
                    priority_group: str | None, after: str | None, limit: int, period_year: int | None = None):
    """Clues, newest id first; of `priority_group` and, if given, of `period_year` (a group of 'this year')."""
    query = sa.select(clues).where(clues.c.region_code.startswith(region, autoescape=True))
    if priority_group:
        query = query.where(clues.c.priority_groups.contains([priority_group]))
    if period_year is not None:
        query = query.where(clues.c.period_year == period_year)
    if status:
        query = query.where(clues.c.status == status)
    if channel:
        query = query.where(clues.c.channel == channel)
    if after:
        query = query.where(clues.c.clue_id < after)
    return (await session.execute(query.order_by(clues.c.clue_id.desc()).limit(limit))).all()


async def overdue_visits_page(session: AsyncSession, region: str, as_of: datetime | None, before: datetime,
                              after: str | None, limit: int):
    """Households of `region` whose last visit (by `as_of`, if given) is before `before`, or who had
    none, by household id. Counted from the visits themselves, not households.last_visited_at: a
    visit after `as_of` must not hide a household that was overdue then."""
    visited = [visits.c.household_id == households.c.household_id]
    if as_of is not None:
        visited.append(visits.c.visited_at <= as_of)
    last_visit = sa.select(sa.func.max(visits.c.visited_at).label("last_visited_at")).where(*visited).lateral("last_visit")
    query = (
        sa.select(households.c.household_id, households.c.region_code, households.c.grid_worker_id,
                  last_visit.c.last_visited_at)
        .select_from(households.join(last_visit, sa.true()))
        .where(households.c.region_code.startswith(region, autoescape=True))
        .where(sa.or_(last_visit.c.last_visited_at.is_(None), last_visit.c.last_visited_at < before))
    )
    if after:
        query = query.where(households.c.household_id > after)
    return (await session.execute(query.order_by(households.c.household_id).limit(limit))).all()


async def household_page(session: AsyncSession, region: str, grid_worker_id: str | None, poverty_status: str | None,
                         after: str | None, limit: int):
    """Households of `region` by household id, with their number of members (no member's data)."""
    member_count = (sa.select(sa.func.count()).where(members.c.household_id == households.c.household_id)
                    .scalar_subquery().label("member_count"))
    query = (
        sa.select(households.c.household_id, households.c.region_code, households.c.group, households.c.poverty_status,
                  households.c.grid_worker_id, households.c.last_visited_at, member_count)
        .where(households.c.region_code.startswith(region, autoescape=True))
    )
    if grid_worker_id:
        query = query.where(households.c.grid_worker_id == grid_worker_id)
    if poverty_status:
        query = query.where(households.c.poverty_status == poverty_status)
    if after:
        query = query.where(households.c.household_id > after)
    return (await session.execute(query.order_by(households.c.household_id).limit(limit))).all()


async def grid_worker_page(session: AsyncSession, region: str, more_than: int | None, at_most: int | None,
                           after: str | None, limit: int):
    """Grid workers with a household in `region`, by id, each with the count of all their households
    (the load the limit is about), kept if it is above `more_than` / not above `at_most`."""
    in_region = (sa.select(households.c.grid_worker_id)
                 .where(households.c.region_code.startswith(region, autoescape=True), households.c.grid_worker_id.is_not(None)))
    count = sa.func.count()
    query = (sa.select(households.c.grid_worker_id, count.label("household_count"))
             .where(households.c.grid_worker_id.in_(in_region)).group_by(households.c.grid_worker_id))
    if more_than is not None:
        query = query.having(count > more_than)
    if at_most is not None:
        query = query.having(count <= at_most)
    if after:
        query = query.where(households.c.grid_worker_id > after)
    return (await session.execute(query.order_by(households.c.grid_worker_id).limit(limit))).all()


async def record_declaration(session: AsyncSession, row: dict) -> None:
    await session.execute(sa.insert(declarations).values(**row))
