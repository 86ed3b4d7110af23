"""Background work of a service: waiting that a stop cuts short, and periodic jobs."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable

from runtime.db import describe_error

log = logging.getLogger(__name__)


async def sleep_unless_stopped(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass


async def run_periodically(stop: asyncio.Event, every_seconds: float, job: Callable[[], Awaitable[None]], name: str) -> None:
    while not stop.is_set():
        try:
            await job()
        except Exception:
            log.exception("periodic job %s failed; it runs again in %.0fs", name, every_seconds)
        await sleep_unless_stopped(stop, every_seconds)


class Health:
    """What a background task (relay, consumer) is doing, for /readyz: its state, since when, and
    the last error it is retrying after."""

    def __init__(self) -> None:
        self.state, self.error, self.since = "starting", None, time.time()

    def set(self, state: str, error: BaseException | str | None = None) -> None:
        if state != self.state:
            self.since = time.time()
        self.state = state
        # /readyz shows it to anyone: a database error goes without the values it quotes.
        self.error = None if error is None else (error if isinstance(error, str) else describe_error(error))[:500]

    def view(self) -> dict:
        return {"state": self.state, "since_seconds": round(time.time() - self.since, 1), "error": self.error}


def stray_cancellation() -> bool:
    """Whether a CancelledError just caught was raised inside a library (aiokafka raises it from a
    client being stopped under it) rather than by someone cancelling this task: a background loop
    treats the first as a failure to retry, the second as the end."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() == 0
