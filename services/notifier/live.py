"""What wakes the live inbox streams of one process: PostgreSQL's LISTEN/NOTIFY on one connection,
held while any stream is open. A transaction that adds to someone's inbox notifies at its commit
(store.signal_inboxes); each stream waiting for that person reads its inbox again at once. Streams
still look by themselves every `inbox_stream_poll_seconds`, so a lost notification or connection
costs latency, never a notification."""
from __future__ import annotations

import asyncio
import logging
import weakref

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.notifier.store import INBOX_CHANNEL

log = logging.getLogger(__name__)


class InboxSignals:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.waiting: dict[str, set[asyncio.Event]] = {}
        self.listening: AsyncConnection | None = None
        self.lock = asyncio.Lock()

    async def register(self, staff_id: str) -> asyncio.Event:
        """An event set whenever `staff_id`'s inbox grows, from now until `unregister`."""
        event = asyncio.Event()
        self.waiting.setdefault(staff_id, set()).add(event)
        async with self.lock:
            if self.listening is None:
                try:
                    connection = await self.engine.connect()
                    raw = await connection.get_raw_connection()
                    await raw.driver_connection.add_listener(INBOX_CHANNEL, self._notified)
                    self.listening = connection
                except Exception:  # the stream polls instead; the next one tries again
                    log.warning("live inbox: cannot LISTEN, streams poll", exc_info=True)
        return event

    async def unregister(self, staff_id: str, event: asyncio.Event) -> None:
        people = self.waiting.get(staff_id, set())
        people.discard(event)
        if not people:
            self.waiting.pop(staff_id, None)
        async with self.lock:
            if not self.waiting and self.listening is not None:
                connection, self.listening = self.listening, None
                try:
                    await connection.close()
                except Exception:
                    log.debug("live inbox: closing the listening connection failed", exc_info=True)

    def _notified(self, connection, pid, channel, payload: str) -> None:
        for staff_id in payload.split(","):
            for event in self.waiting.get(staff_id, ()):
                event.set()


_signals: "weakref.WeakKeyDictionary[AsyncEngine, InboxSignals]" = weakref.WeakKeyDictionary()


def signals_of(engine: AsyncEngine) -> InboxSignals:
    """The one InboxSignals of a service's engine (of this process)."""
    if engine not in _signals:
        _signals[engine] = InboxSignals(engine)
    return _signals[engine]
