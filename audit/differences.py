"""The differences between a service's live read tables and the same tables rebuilt elsewhere (a
scratch schema of its database, or a replay's fresh database), found by walking both in primary-key
order, a page at a time: memory stays flat however large the tables."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator

import asyncpg
import sqlalchemy as sa

PAGE_ROWS = 5000
SHOWN = 5  # differences named per table; the rest are counted


@dataclass(frozen=True)
class Difference:
    table: str
    key: dict[str, Any]
    kind: str  # "live only" | "rebuilt only" | "differs"
    columns: tuple[str, ...] = ()  # differs: the columns that do
    last_event: str | None = None  # the last event that names the key, as "type at global position P (stream S)"

    def __str__(self) -> str:
        key = ", ".join(f"{name}={value}" for name, value in self.key.items())
        what = {"live only": "in the live table, not in the rebuild (written behind the events' back?)",
                "rebuilt only": "in the rebuild, missing from the live table",
                "differs": f"differs in {', '.join(self.columns)}"}[self.kind]
        touched = f"; last event naming it: {self.last_event}" if self.last_event else "; no event names it"
        return f"{self.table} [{key}]: {what}{touched}"


@dataclass
class TableComparison:
    table: str
    rows_live: int = 0
    rows_rebuilt: int = 0
    different: int = 0
    shown: list[Difference] | None = None

    @property
    def equal(self) -> bool:
        return self.different == 0


async def _pages(connection: asyncpg.Connection, schema: str, table: sa.Table) -> AsyncIterator[list[asyncpg.Record]]:
    key = [c.name for c in table.primary_key.columns]
    columns = ", ".join(f'"{c.name}"' for c in table.columns)
    # Text keys in byte order (COLLATE "C"): the order Python compares str in, whatever the database's locale.
    order = ", ".join(f'"{k}" COLLATE "C"' if isinstance(table.c[k].type, sa.String) else f'"{k}"' for k in key)
    after: tuple | None = None
    while True:
        where = f"where ({order}) > ({', '.join(f'${i + 1}' for i in range(len(key)))})" if after else ""
        rows = await connection.fetch(
            f'select {columns} from "{schema}"."{table.name}" {where} order by {order} limit {PAGE_ROWS}', *(after or ()))
        if not rows:
            return
        yield rows
        after = tuple(rows[-1][k] for k in key)


async def _rows(connection, schema: str, table: sa.Table):
    async for page in _pages(connection, schema, table):
        for row in page:
            yield row


async def compare_table(live: asyncpg.Connection, live_schema: str, rebuilt: asyncpg.Connection, rebuilt_schema: str,
                        table: sa.Table) -> TableComparison:
    """Merge-join the two copies of `table` on its primary key (each read in key order; PostgreSQL
    sorts both the same way, so the walk is exact)."""
    key = [c.name for c in table.primary_key.columns]
    result = TableComparison(table.name, shown=[])
    live_rows, rebuilt_rows = _rows(live, live_schema, table), _rows(rebuilt, rebuilt_schema, table)
    left, right = await anext(live_rows, None), await anext(rebuilt_rows, None)

    def note(kind: str, row, columns: tuple[str, ...] = ()) -> None:
        result.different += 1
        if len(result.shown) < SHOWN:
            result.shown.append(Difference(table.name, {k: row[k] for k in key}, kind, columns))

    while left is not None or right is not None:
        left_key = tuple(left[k] for k in key) if left is not None else None
        right_key = tuple(right[k] for k in key) if right is not None else None
        if right_key is None or (left_key is not None and left_key < right_key):
            result.rows_live += 1
            note("live only", left)
            left = await anext(live_rows, None)
        elif left_key is None or right_key < left_key:
            result.rows_rebuilt += 1
            note("rebuilt only", right)
            right = await anext(rebuilt_rows, None)
        else:
            result.rows_live += 1
            result.rows_rebuilt += 1
            if changed := tuple(c.name for c in table.columns if left[c.name] != right[c.name]):
                note("differs", left, changed)
            left, right = await anext(live_rows, None), await anext(rebuilt_rows, None)
    return result


async def last_event_naming(connection: asyncpg.Connection, key: dict[str, Any], upto_position: int | None) -> str | None:
    """The last event (up to `upto_position`) whose stream, household or payload names the key's
    first value: where an operator starts reading. A scan of the payloads: used for the few
    differences shown only."""
    value = str(next(iter(key.values())))
    row = await connection.fetchrow(
        "select global_position, event_type, stream_id from events"
        " where (household_id = $1 or stream_id like '%' || $1 or strpos(payload::text, '\"' || $1 || '\"') > 0)"
        " and ($2::bigint is null or global_position <= $2) order by global_position desc limit 1", value, upto_position)
    return f"{row['event_type']} at global position {row['global_position']} (stream {row['stream_id']})" if row else None
