"""Database: the async engine, creating a service's database, running its migrations, and
describing its errors without the values they quote."""
from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Mapping
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import make_url
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from runtime.settings import Settings

_MIGRATIONS_ENV = Path(__file__).parent / "migrations"
_SERVICES_DIR = Path(__file__).parent.parent / "services"
# Two processes of one service may start together; one migrates, the other waits.
_MIGRATION_LOCK_ID = 0x66616E67


def make_engine(settings: Settings) -> AsyncEngine:
    """The one engine factory. Statement parameters (ID hashes, names) stay out of its errors and
    logs; and since every process that talks to a database comes here, this is where its logs are
    made to withhold the values database errors quote (withhold_database_values_from_logs)."""
    withhold_database_values_from_logs()
    return create_async_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_pre_ping=True,
        hide_parameters=True,
    )


def predicate(value: str):
    """A constant written into the statement, not bound as a parameter: what a query says of a
    partial index's predicate (`WHERE status = 'open'`) it must say literally. The driver prepares
    each statement once per connection, and PostgreSQL soon caches one generic plan for it: with the
    value a parameter, that plan cannot use the partial index and scans the whole table at every call
    (screening's open cases of a run: 2.5 s a call at 100,000 cases, tests/integration/runtime/test_partial_indexes.py)."""
    return sa.literal(value, literal_execute=True)


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


# SQLSTATE classes whose messages name the schema or the server's state, never a stored or sent
# value (connection, transaction state, rollback, syntax and access, resources, limits, operator).
# Any other message may quote one: data exceptions (22) quote the input, PL/pgSQL raises (P0) say
# what they like; and every DETAIL ("Key (id_hash)=(...) already exists", "Failing row contains
# (...)") is left out whatever the class.
_MESSAGES_WITHOUT_VALUES = ("08", "0A", "25", "28", "3D", "3F", "40", "42", "53", "54", "55", "57", "58")
_NAMED_OBJECTS = ("schema_name", "table_name", "column_name", "data_type_name", "constraint_name")
_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError)


def _driver_error(exc: BaseException | None) -> BaseException | None:
    """The driver's exception that `exc` is or wraps (SQLAlchemy wraps asyncpg's twice)."""
    for _ in range(5):
        if exc is None or isinstance(exc, _DRIVER_ERRORS):
            return exc
        if not type(exc).__module__.startswith("sqlalchemy."):
            return None
        exc = getattr(exc, "orig", None) or exc.__cause__
    return None


def describe_database_error(exc: BaseException) -> str | None:
    """A database error as its condition, SQLSTATE and the objects it names (table, column,
    constraint), never the values it quotes; None for an exception that is not a database error.
    Use it wherever a database error is logged, stored or shown."""
    driver = _driver_error(exc)
    if driver is None:
        if isinstance(exc, sa_exc.StatementError):  # the statement failed before reaching the database
            return f"{type(exc).__name__} ({type(exc.orig).__name__} while preparing a statement)"
        return None
    state = getattr(driver, "sqlstate", None)
    facts = [f"SQLSTATE {state}"] if state else []
    facts += [f"{name.removesuffix('_name').replace('_', ' ')} {value}"
              for name in _NAMED_OBJECTS if (value := getattr(driver, name, None))]
    said = f"{type(driver).__name__} ({', '.join(facts)})" if facts else type(driver).__name__
    # The driver's own complaints (connection closed, ...) name no value, but for its DataError,
    # which quotes the argument it could not encode.
    if (state.startswith(_MESSAGES_WITHOUT_VALUES) if state else not isinstance(driver, ValueError)) and driver.args:
        said += f": {driver.args[0]}"
    # SQLAlchemy's copy of the driver's exception bears its name: say it once.
    return said if type(driver).__name__ == type(exc).__name__ else f"{type(exc).__name__}: {said}"


def describe_error(exc: BaseException) -> str:
    """`Type: message` of any exception, a database error described without its values."""
    return describe_database_error(exc) or f"{type(exc).__name__}: {exc}"


def _chain(exc: BaseException | None) -> list[BaseException]:
    """`exc` and the exceptions it was raised from or while handling, newest first."""
    chain: list[BaseException] = []
    while exc is not None and all(exc is not seen for seen in chain):
        chain.append(exc)
        exc = exc.__cause__ if exc.__cause__ is not None else None if exc.__suppress_context__ else exc.__context__
    return chain


def scrubbed_traceback(exc: BaseException) -> str:
    """The traceback `logging` would print for `exc`, each database error of its chain given by
    describe_database_error instead of its own text."""
    parts: list[str] = []
    oldest_first = _chain(exc)[::-1]
    for older, error in zip([None, *oldest_first], oldest_first):
        if older is not None:
            parts.append("\nThe above exception was the direct cause of the following exception:\n\n"
                         if error.__cause__ is older else
                         "\nDuring handling of the above exception, another exception occurred:\n\n")
        if error.__traceback__ is not None:
            parts.append("Traceback (most recent call last):\n" + "".join(traceback.format_tb(error.__traceback__)))
        said = describe_database_error(error) or "".join(traceback.format_exception_only(error)).rstrip("\n")
        parts.append(said + "\n")
    return "".join(parts).rstrip("\n")


class _Described(str):
    """A database error's description standing in for it among a log record's arguments (%s or %r)."""

    def __repr__(self) -> str:
        return str(self)


def _described(value):
    if isinstance(value, BaseException) and (description := describe_database_error(value)):
        return _Described(description)
    return value


def _withhold_database_values(record: logging.LogRecord) -> None:
    error = record.exc_info[1] if record.exc_info else None
    if error is not None and any(describe_database_error(e) for e in _chain(error)):
        try:
            record.exc_text = scrubbed_traceback(error)
        except Exception:  # what cannot be described is not printed as it is either
            record.exc_text = f"{type(error).__name__} (its traceback could not be described without its values)"
        record.exc_info = None
    record.msg = _described(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(_described(arg) for arg in record.args)
    elif isinstance(record.args, Mapping):
        record.args = {key: _described(arg) for key, arg in record.args.items()}


def withhold_database_values_from_logs() -> None:
    """From now on, every log record of this process, whoever makes it (this code, uvicorn,
    SQLAlchemy's pool), gives the database errors among its arguments and in its traceback as
    describe_database_error does. Installed once per process."""
    make = logging.getLogRecordFactory()
    if getattr(make, "withholds_database_values", False):
        return

    def make_record(*args, **kwargs) -> logging.LogRecord:
        record = make(*args, **kwargs)
        _withhold_database_values(record)
        return record

    make_record.withholds_database_values = True
    logging.setLogRecordFactory(make_record)
