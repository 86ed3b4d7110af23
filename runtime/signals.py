"""Commit signals: PostgreSQL's LISTEN/NOTIFY, so that a loop waiting for new rows wakes when the
transaction that wrote them commits rather than at its next poll. A transaction notifies with
`notify` (delivered at its commit, never if it rolls back); a process listens on one connection per
channel (`Listener`; `CommitSignal` where a loop only needs to know that something committed: the
relay). A notification lost — the connection dropped, the database restarted — costs latency, never
work: whoever waits still looks by themselves every so often."""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

log = logging.getLogger(__name__)

# The event store's appends (runtime.eventstore): the relay publishes them.
EVENTS_APPENDED = "fangpin_events_appended"
_RETRY_SECONDS = 1.0  # between two attempts to LISTEN again after the connection was lost
_CONNECT_TIMEOUT_SECONDS = 2.0
NOTIFY_PAYLOAD_BYTES = 7000  # PostgreSQL's limit is 8000


async def notify(session: AsyncSession, channel: str, payload: str = "") -> None:
    """Signal `channel` with `payload` (at most NOTIFY_PAYLOAD_BYTES) when (and only if) the session's
    transaction commits."""
    await session.execute(sa.select(sa.func.pg_notify(channel, payload)))


class Listener:
    """One LISTEN connection of this process to `channel` of its service's database, handing each
    notification's payload to `on_payload`. `ensure` (re)connects, at most once a second after a
    failure; `close` ends the connection."""

    def __init__(self, engine: AsyncEngine, channel: str, on_payload: Callable[[str], None]) -> None:
        self.engine, self.channel, self.on_payload = engine, channel, on_payload
        self.connection: AsyncConnection | None = None
        self._driver = None
        self._next_try = 0.0

    @property
    def listening(self) -> bool:
        return self._driver is not None and not self._driver.is_closed()

    async def ensure(self) -> bool:
        """Listen if not listening (a dropped connection is replaced); True if it began just now."""
        if self.listening:
            return False
        loop = asyncio.get_running_loop()
        if loop.time() < self._next_try:
            return False
        await self.close()
        try:
            # Not longer than a poll would wait: a database that does not answer is the caller's to find.
            self.connection, self._driver = await asyncio.wait_for(self._connect(), _CONNECT_TIMEOUT_SECONDS)
            return True
        except Exception as exc:  # whoever waits polls meanwhile
            self._next_try = loop.time() + _RETRY_SECONDS
            log.debug("LISTEN %s: cannot listen (%r); polling", self.channel, exc)
            return False

    async def close(self) -> None:
        connection, self.connection, self._driver = self.connection, None, None
        if connection is not None:
            # Shielded: a stream's end or a stop cancels whoever closes, and a connection left half
            # closed would neither go back to the pool nor away.
            await asyncio.shield(self._let_go(connection))

    async def _let_go(self, connection: AsyncConnection) -> None:
        try:
            await connection.invalidate()  # its LISTEN goes with it: the pool gets no listening connection back
            await connection.close()
        except Exception:
            log.debug("LISTEN %s: closing the listening connection failed", self.channel, exc_info=True)

    async def _connect(self):
        connection = await self.engine.connect()
        try:
            raw = await connection.get_raw_connection()
            await raw.driver_connection.add_listener(self.channel, self._notified)
        except BaseException:
            await connection.close()
            raise
        return connection, raw.driver_connection

    def _notified(self, connection, pid, channel, payload: str) -> None:
        self.on_payload(payload)


class CommitSignal:
    """A channel's notifications, as one flag of this process: `wait` returns when one came since
    the last `clear`, or after `timeout` (listening lost, or nothing committed)."""

    def __init__(self, engine: AsyncEngine, channel: str) -> None:
        self.flag = asyncio.Event()
        self.listener = Listener(engine, channel, lambda payload: self.flag.set())

    def clear(self) -> None:
        """From now on, only a later commit wakes `wait` (clear before looking, so none is missed)."""
        self.flag.clear()

    async def wait(self, timeout: float, stop: asyncio.Event | None = None) -> None:
        """Until a notification came since `clear`, `stop` is set, or `timeout` seconds passed."""
        if await self.listener.ensure():
            self.flag.set()  # what committed while nobody listened: look once
        waiters = [asyncio.ensure_future(self.flag.wait())] + ([asyncio.ensure_future(stop.wait())] if stop else [])
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def close(self) -> None:
        await self.listener.close()
