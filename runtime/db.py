"""Database: the async engine, creating a service's database, and running its migrations."""
from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from runtime.settings import Settings

_MIGRATIONS_ENV = Path(__file__).parent / "migrations"
_SERVICES_DIR = Path(__file__).parent.parent / "services"
# Two processes of one service may start together; one migrates, the other waits.
_MIGRATION_LOCK_ID = 0x66616E67


def make_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_pre_ping=True,
    )


def make_sessions(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def _asyncpg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def ensure_database(url: str) -> None:
    """Create the database named in `url` if it does not exist (embedded system and tests)."""
    name = make_url(url).database
    conn = await asyncpg.connect(_asyncpg_dsn(url, "postgres"))
    try:
        exists = await conn.fetchval("select 1 from pg_database where datname = $1", name)
        if not exists:
            await conn.execute(f'create database "{name}"')
    finally:
        await conn.close()


def alembic_config(service: str) -> Config:
    cfg = Config()
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("script_location", str(_MIGRATIONS_ENV))
    cfg.set_main_option("version_locations", str(_SERVICES_DIR / service / "migrations" / "versions"))
    return cfg


async def migrate(engine: AsyncEngine, service: str) -> None:
    """Bring the service's schema to the newest migration (alembic, one history per service)."""
    cfg = alembic_config(service)

    def upgrade(sync_connection) -> None:
        cfg.attributes["connection"] = sync_connection
        command.upgrade(cfg, "head")

    async with engine.begin() as conn:
        await conn.execute(text("select pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        await conn.run_sync(upgrade)


# SQLSTATE classes and codes that say the database, not the statement, is at fault: connection
# exceptions (08), a server starting, stopping or restarting (57P01-57P03), too many connections,
# out of resources (53), and a transaction that lost a race and may simply run again (40001, 40P01).
_OUTAGE_CLASSES = ("08", "53", "57P")
_TRY_AGAIN = ("40001", "40P01")


def sqlstate_of(exc: BaseException | None) -> str | None:
    """The SQLSTATE of a database error, looked for along its causes (SQLAlchemy wraps the driver's)."""
    while exc is not None:
        state = getattr(exc, "sqlstate", None)
        if state:
            return state
        exc = exc.__cause__ or exc.__context__
    return None


def is_database_outage(exc: BaseException) -> bool:
    """The database cannot take work now (unreachable, starting, restarting, overloaded) or the
    transaction lost a race: wait and try again; never the fault of the message or request."""
    if isinstance(exc, (OSError, asyncio.TimeoutError, sa_exc.TimeoutError, sa_exc.OperationalError,
                        sa_exc.InterfaceError, asyncpg.InterfaceError)):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    state = sqlstate_of(exc) or ""
    return state.startswith(_OUTAGE_CLASSES) or state in _TRY_AGAIN


async def database_answers(engine: AsyncEngine, timeout: float = 2.0) -> bool:
    """Whether the database answers a plain query now."""
    try:
        async with engine.connect() as conn:
            await asyncio.wait_for(conn.execute(text("select 1")), timeout=timeout)
        return True
    except Exception:
        return False
