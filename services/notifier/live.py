"""What wakes the live inbox streams of one process: PostgreSQL's LISTEN/NOTIFY on one connection,
held while any stream is open. A transaction that adds to someone's inbox notifies at its commit
(store.signal_inboxes); each stream waiting for that person reads its inbox again at once. Streams
still look by themselves every `inbox_stream_poll_seconds`, so a lost notification or connection
costs latency, never a notification."""
from __future__ import annotations

import asyncio
import weakref

from sqlalchemy.ext.asyncio import AsyncEngine

from runtime.signals import Listener
from services.notifier.store import INBOX_CHANNEL


class InboxSignals:
    def __init__(self, engine: AsyncEngine) -> None:
        self.waiting: dict[str, set[asyncio.Event]] = {}
        self.listener = Listener(engine, INBOX_CHANNEL, self._notified)
        self.lock = asyncio.Lock()

    async def register(self, staff_id: str) -> asyncio.Event:
        """An event set whenever `staff_id`'s inbox grows, from now until `unregister`."""
        event = asyncio.Event()
        self.waiting.setdefault(staff_id, set()).add(event)
        async with self.lock:
            await self.listener.ensure()  # cannot: the stream polls; the next one tries again
        return event

    async def unregister(self, staff_id: str, event: asyncio.Event) -> None:
        people = self.waiting.get(staff_id, set())
        people.discard(event)
        if not people:
            self.waiting.pop(staff_id, None)
        async with self.lock:
            if not self.waiting:
                await self.listener.close()

    def _notified(self, payload: str) -> None:
        for staff_id in payload.split(","):
            for event in self.waiting.get(staff_id, ()):
                event.set()


_signals: "weakref.WeakKeyDictionary[AsyncEngine, InboxSignals]" = weakref.WeakKeyDictionary()


def signals_of(engine: AsyncEngine) -> InboxSignals:
    """The one InboxSignals of a service's engine (of this process)."""
    if engine not in _signals:
        _signals[engine] = InboxSignals(engine)
    return _signals[engine]
