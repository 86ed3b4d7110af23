"""Which processes are alive, as the database sees them.

Each service process holds a PostgreSQL session advisory lock on a random key of its own (its
lease) for as long as it lives. Work the process claims in the database is marked with that key
(an Idempotency-Key in progress: `idempotency_keys.owner`); when the process dies, its session ends,
the server drops the lock, and any other process can tell that the claim's owner is gone
(`dead_owner_condition`). No heartbeat rows to write and no clocks to compare: the server's own
bookkeeping of sessions is the truth.
"""
from __future__ import annotations

import asyncio
import logging
import secrets

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import OID
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from runtime.tasks import sleep_unless_stopped

log = logging.getLogger(__name__)
CHECK_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 60.0

pg_locks = sa.table(
    "pg_locks", sa.column("locktype"), sa.column("database"), sa.column("classid"), sa.column("objid"),
    sa.column("objsubid"), sa.column("granted"),
)


def new_lease_key() -> int:
    # Positive 63 bits with bit 62 set: never collides with the small keys of the migration and
    # periodic-job locks (runtime.db, runtime.app), whose high 32 bits are zero.
    return secrets.randbits(62) | (1 << 62)


def dead_owner_condition(owner) -> sa.ColumnElement[bool]:
    """SQL: no session of this database holds advisory lock `owner` (a bigint column or value).

    pg_locks shows a one-bigint advisory lock as objsubid 1 with the key's high 32 bits in classid
    and its low 32 bits in objid (two int4 keys show as objsubid 2). A NULL owner (a claim made
    without a lease) is never dead by this test; only its age can release it.
    """
    held = sa.exists().where(
        pg_locks.c.locktype == "advisory",
        pg_locks.c.objsubid == 1,
        pg_locks.c.granted,
        # Advisory locks are per database, and one server may host every service's database.
        pg_locks.c.database == sa.select(sa.column("oid", OID)).select_from(sa.table("pg_database"))
        .where(sa.column("datname") == sa.func.current_database()).scalar_subquery(),
        pg_locks.c.classid == sa.cast(owner.op(">>")(sa.literal_column("32")), OID),
        pg_locks.c.objid == sa.cast(owner.op("&")(sa.literal_column("4294967295")), OID),
    )
    return sa.and_(owner.is_not(None), ~held)


class ProcessLease:
    """This process's advisory lock, held on one connection of its own for the process's life."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.key = new_lease_key()
        self._conn: AsyncConnection | None = None
        self._locked = False

    async def start(self) -> None:
        while not await self._hold():
            self.key = new_lease_key()  # taken by another session (a 2^-62 chance); nothing is claimed yet

    async def stop(self) -> None:
        conn, self._conn, self._locked = self._conn, None, False
        if conn is not None:
            try:
                await conn.close()  # ends the session, and with it the lock
            except Exception:
                log.debug("closing the lease's connection failed", exc_info=True)

    async def keep(self, stop: asyncio.Event, every: float = CHECK_SECONDS) -> None:
        """Check the lock every few seconds and take it again on a new connection if the old one
        is lost (database restart, network). Meanwhile other processes see this process as dead
        and may take over its claims: a rare second execution, never a key stuck for good."""
        delay = every
        while not stop.is_set():
            await sleep_unless_stopped(stop, delay)
            if stop.is_set():
                return
            try:
                lost = not self._locked
                if await asyncio.wait_for(self._hold(), timeout=max(every, CHECK_SECONDS)):
                    if lost:
                        log.warning("process lease %d: lock held again", self.key)
                else:  # our old session is not gone yet on the server, still holding the key
                    log.warning("process lease %d: the key is still held by another session; retrying", self.key)
                delay = every
            except Exception:
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)
                log.warning("process lease %d: connection lost; reconnecting in %.0fs", self.key, delay, exc_info=True)
                await self.stop()

    async def _hold(self) -> bool:
        """Connect if need be and take the lock; True while this session holds it."""
        if self._conn is None:
            self._conn = await self.engine.connect()
            # Out of the pool: it never goes back there still holding the lock (closing it ends the
            # session), and does not take one of the pool's places for the process's whole life.
            await self._conn.run_sync(lambda sync_conn: sync_conn.detach())
        if self._locked:
            await self._conn.execute(sa.text("select 1"))  # is the session still there?
        else:
            taken = await self._conn.scalar(sa.text("select pg_try_advisory_lock(:key)"), {"key": self.key})
            self._locked = bool(taken)
        # A session lock outlives the transaction; the transaction must not stay open (an idle
        # transaction holds back every snapshot's xmin, which the relay reads by).
        await self._conn.commit()
        return self._locked
