"""Bulk writes on the session's own connection and transaction: PostgreSQL COPY for plain inserts,
and INSERT … SELECT / UPDATE … FROM json_to_recordset(rows) where ON CONFLICT, RETURNING or an
update is needed. At bulk rates the per-row cost of an ORM-compiled executemany is the bottleneck;
these send one message."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Sequence

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

_POSTGRESQL = postgresql.dialect()


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


def _json_default(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)  # numeric columns read the string exactly; a float would round it
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _recordset(table: sa.Table, columns: list[str]) -> str:
    """json_to_recordset($1) with `columns` typed as in `table`: the one parameter is the rows as JSON."""
    typed = ", ".join(f'"{c}" {table.c[c].type.compile(dialect=_POSTGRESQL)}' for c in columns)
    return f"json_to_recordset($1::json) AS r({typed})"


async def _run_with_rows(session: AsyncSession, sql: str, rows: Sequence[dict[str, Any]]) -> list:
    conn = await driver_connection(session)
    return await conn.fetch(sql, orjson.dumps(rows, default=_json_default).decode())


async def insert_rows(
    session: AsyncSession, table: sa.Table, rows: Sequence[dict[str, Any]], suffix: str = "",
) -> list:
    """INSERT INTO table (cols) SELECT cols FROM json_to_recordset($1) {suffix}: one statement, the
    rows (dicts with the same keys) sent as one JSON array. `suffix` holds ON CONFLICT / RETURNING;
    returns the rows it returns. JSON rather than one typed array per column: the driver checks
    every element of an array in Python, which at bulk rates costs more than PostgreSQL's parse."""
    if not rows:
        return []
    columns = list(rows[0])
    quoted = ", ".join(f'"{c}"' for c in columns)
    return await _run_with_rows(
        session, f'INSERT INTO "{table.name}" ({quoted}) SELECT {quoted} FROM {_recordset(table, columns)} {suffix}', rows)


async def upsert_rows(session: AsyncSession, table: sa.Table, rows: Sequence[dict[str, Any]], key: Sequence[str],
                      keep: Sequence[str] = ()) -> None:
    """INSERT … ON CONFLICT (key) DO UPDATE: one statement for all `rows` (dicts with the same keys).
    A row whose key exists sets its other columns, except those in `keep` (set only when the row is
    new). Of rows with one key the last stands, with the first one's `keep` columns: what applying
    them one by one gives (PostgreSQL refuses to update a row twice in one statement)."""
    if not rows:
        return
    standing: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        at = tuple(row[k] for k in key)
        first = standing.get(at)
        standing[at] = row if first is None else {**row, **{c: first[c] for c in keep}}
    sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in rows[0] if c not in key and c not in keep)
    conflict = ", ".join(f'"{k}"' for k in key)
    await insert_rows(session, table, list(standing.values()), f"ON CONFLICT ({conflict}) DO UPDATE SET {sets}")


async def update_rows(session: AsyncSession, table: sa.Table, rows: Sequence[dict[str, Any]], key: Sequence[str],
                      forward_only: Sequence[str] = ()) -> None:
    """UPDATE table SET … FROM json_to_recordset($1): each row (dicts with the same keys) sets its
    other columns on the rows of `table` whose `key` columns equal its own; one statement for all,
    with array columns as they are (JSON arrays). A column named in `forward_only` (a time that
    never goes back) takes the greater of its value and the row's. One row per key: of two,
    PostgreSQL would apply either."""
    if not rows:
        return
    columns = list(rows[0])
    sets = ", ".join(f'"{c}" = greatest(t."{c}", r."{c}")' if c in forward_only else f'"{c}" = r."{c}"'
                     for c in columns if c not in key)
    matches = " AND ".join(f't."{c}" = r."{c}"' for c in key)
    await _run_with_rows(
        session, f'UPDATE "{table.name}" AS t SET {sets} FROM {_recordset(table, columns)} WHERE {matches}', rows)
