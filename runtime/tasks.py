"""Background work of a service: waiting that a stop cuts short, and periodic jobs."""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

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
