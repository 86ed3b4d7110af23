"""Bulk writes on the session's own connection and transaction: PostgreSQL COPY for plain inserts,
and INSERT … SELECT FROM unnest(arrays) where ON CONFLICT or RETURNING is needed. At bulk rates
the per-row cost of an ORM-compiled executemany is the bottleneck; these send one message."""
from __future__ import annotations

from typing import Any, Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession


async def driver_connection(session: AsyncSession):
    """The asyncpg connection under the session, inside its current transaction."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    if getattr(raw.dbapi_connection, "_transaction", True) is None:
        # SQLAlchemy's asyncpg adapter sends BEGIN lazily, with the first statement it runs;
        # a statement sent straight to the driver before that would run outside the transaction.
        await connection.exec_driver_sql("SELECT 1")
    return raw.driver_connection


async def copy_rows(session: AsyncSession, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """COPY `rows` (dicts with the same keys) into `table`; columns left out take their defaults."""
    if not rows:
        return
    columns = list(rows[0])
    await copy_records(session, table, columns, [[r[c] for c in columns] for r in rows])


async def copy_records(session: AsyncSession, table: sa.Table, columns: list[str], records: Sequence[Sequence]) -> None:
    """COPY `records` (value sequences in the order of `columns`) into `table`."""
    conn = await driver_connection(session)
    await conn.copy_records_to_table(table.name, columns=columns, records=records)


def _array_type(column: sa.Column) -> str:
    return column.type.compile(dialect=sa.dialects.postgresql.dialect()) + "[]"


async def insert_unnest(
    session: AsyncSession, table: sa.Table, rows: Sequence[dict[str, Any]], suffix: str = "",
) -> list:
    """INSERT INTO table (cols) SELECT * FROM unnest($1::type[], …) {suffix}: one statement, the
    values as typed arrays. `suffix` holds ON CONFLICT / RETURNING; returns the rows it returns.
    A nullable column without a default that is None in every row is left out: it ends up NULL
    all the same, and the driver checks each value of an array it is sent."""
    if not rows:
        return []
    columns, arrays = [], []
    for name in rows[0]:
        values = [r[name] for r in rows]
        column = table.c[name]
        if column.nullable and column.server_default is None and not any(v is not None for v in values):
            continue
        columns.append(name)
        arrays.append(values)
    params = ", ".join(f"${i}::{_array_type(table.c[c])}" for i, c in enumerate(columns, start=1))
    quoted = ", ".join(f'"{c}"' for c in columns)
    sql = f'INSERT INTO "{table.name}" ({quoted}) SELECT * FROM unnest({params}) {suffix}'
    conn = await driver_connection(session)
    return await conn.fetch(sql, *arrays)
