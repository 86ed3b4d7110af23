"""Tables are defined once (issue 15): what a service's migrations build is what its code declares,
runtime/tables.py for the tables every service has and services/<name>/store.py for its own.
alembic's autogenerate comparison names every column, type, nullability, constraint or index on
which the two disagree."""
import importlib
import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from contracts.topics import SERVICES
from runtime import tables
from runtime.db import ensure_database, make_engine, migrate
from runtime.settings import Settings

pytestmark = pytest.mark.integration


def declared_tables(service: str) -> sa.MetaData:
    declared = sa.MetaData()
    for table in tables.metadata.tables.values():
        table.to_metadata(declared)
    try:
        store = importlib.import_module(f"services.{service}.store")
    except ModuleNotFoundError:  # a service with no tables of its own yet
        return declared
    for table in store.metadata.tables.values():
        table.to_metadata(declared)
    return declared


@pytest.mark.parametrize("service", SERVICES)
async def test_the_migrations_build_exactly_the_declared_tables(postgres, service):
    url = postgres.url(f"drift_{uuid.uuid4().hex[:8]}_{service}")
    await ensure_database(url)
    engine = make_engine(Settings(database_url=url))
    try:
        await migrate(engine, service)
        async with engine.connect() as conn:
            differences = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), declared_tables(service)))
    finally:
        await engine.dispose()
    assert not differences, f"{service}: the migrations and the declared tables disagree:\n" + "\n".join(
        f"  {difference}" for difference in differences)
