"""Bulk writes (runtime/bulk.py) on a real PostgreSQL: every column type the services use comes back
as it went in."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from runtime.bulk import insert_rows, update_rows, upsert_rows

pytestmark = pytest.mark.integration

sample = sa.Table(
    "bulk_sample", sa.MetaData(),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("amount", sa.Numeric(14, 2)),
    sa.Column("at", sa.DateTime(timezone=True)),
    sa.Column("flag", sa.Boolean),
    sa.Column("count", sa.Integer),
    sa.Column("tags", pg.ARRAY(sa.Text)),
    sa.Column("doc", pg.JSONB),
    sa.Column("note", sa.Text),
)


async def test_insert_rows_keeps_every_value_and_reports_only_new_keys(service_context):
    ctx = await service_context()
    east8 = timezone(timedelta(hours=8))
    rows = [
        {"key": "a", "amount": Decimal("23000.05"), "at": datetime(2026, 11, 1, 8, 0, 0, 123456, tzinfo=east8),
         "flag": True, "count": 3, "tags": ["low_income", "引号\"与,逗号"], "doc": {"n": 1, "s": "x"}, "note": "多行\n文本"},
        {"key": "b", "amount": None, "at": None, "flag": False, "count": None, "tags": [], "doc": None, "note": None},
    ]
    async with ctx.sessions() as session, session.begin():
        await session.run_sync(lambda s: sample.create(s.connection()))
        first = await insert_rows(session, sample, rows, "ON CONFLICT DO NOTHING RETURNING key")
        again = await insert_rows(session, sample, [{**rows[0], "note": "changed"}, {**rows[1], "key": "c"}],
                                  "ON CONFLICT DO NOTHING RETURNING key")
        stored = {r.key: r._asdict() for r in await session.execute(sa.select(sample))}
        await session.rollback()
    assert sorted(r["key"] for r in first) == ["a", "b"]
    assert [r["key"] for r in again] == ["c"]
    assert stored["a"] == rows[0]
    assert stored["b"] == rows[1]
    assert stored["a"]["at"].utcoffset() == timedelta(0) and stored["a"]["at"] == rows[0]["at"]


async def test_update_rows_sets_each_keyed_row_to_its_own_values(service_context):
    ctx = await service_context()
    later = datetime(2026, 11, 2, 9, 30, tzinfo=timezone.utc)
    async with ctx.sessions() as session, session.begin():
        await session.run_sync(lambda s: sample.create(s.connection()))
        await insert_rows(session, sample, [{"key": k, "tags": ["old"], "note": "old"} for k in ("a", "b", "c")])
        await update_rows(session, sample, [{"key": "a", "tags": ["x", "y,z"], "at": later},
                                            {"key": "c", "tags": [], "at": None}], key=("key",))
        stored = {r.key: (r.tags, r.at, r.note) for r in await session.execute(sa.select(sample))}
        await session.rollback()
    assert stored == {"a": (["x", "y,z"], later, "old"), "b": (["old"], None, "old"), "c": ([], None, "old")}


async def test_update_rows_moves_a_forward_only_column_forward_never_back(service_context):
    ctx = await service_context()
    earlier, later = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc), datetime(2026, 11, 3, 8, 0, tzinfo=timezone.utc)
    async with ctx.sessions() as session, session.begin():
        await session.run_sync(lambda s: sample.create(s.connection()))
        await insert_rows(session, sample, [{"key": "a", "at": later, "note": "old"}, {"key": "b", "at": earlier, "note": "old"},
                                            {"key": "c", "at": None, "note": "old"}])
        await update_rows(session, sample, [{"key": k, "at": earlier + timedelta(days=1), "note": "new"} for k in "abc"],
                          key=("key",), forward_only=("at",))
        stored = {r.key: (r.at, r.note) for r in await session.execute(sa.select(sample))}
        await session.rollback()
    assert stored == {"a": (later, "new"), "b": (earlier + timedelta(days=1), "new"), "c": (earlier + timedelta(days=1), "new")}


async def test_upsert_rows_gives_what_applying_the_rows_one_by_one_gives(service_context):
    """A new row inserts, a known key sets its columns but the kept ones, and of two rows with one key
    the last stands with the first one's kept columns (one statement, which PostgreSQL would refuse
    if it touched a row twice)."""
    ctx = await service_context()
    async with ctx.sessions() as session, session.begin():
        await session.run_sync(lambda s: sample.create(s.connection()))
        await insert_rows(session, sample, [{"key": "a", "count": 1, "note": "first"}])
        await upsert_rows(session, sample, [{"key": "a", "count": 2, "note": "again"},
                                            {"key": "b", "count": 3, "note": "new"},
                                            {"key": "b", "count": 4, "note": "newer"}], key=("key",), keep=("note",))
        stored = {r.key: (r.count, r.note) for r in await session.execute(sa.select(sample))}
        await session.rollback()
    assert stored == {"a": (2, "first"), "b": (4, "new")}
