"""Time comes from a clock object so that a five-day notice is tested without waiting, and so that a
county can train its staff or rehearse a year on a chosen date (a simulation clock)."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Protocol

from starlette.types import ASGIApp, Receive, Scope, Send

from contracts.fields import clock_of_request

if TYPE_CHECKING:
    from runtime.settings import Settings


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FixedClock:
    """A clock for tests: stands still until moved."""

    def __init__(self, at: datetime) -> None:
        self._at = at

    def now(self) -> datetime:
        return self._at

    def advance(self, delta: timedelta) -> None:
        self._at += delta


class SimulationClock:
    """Time from `start` on, `speed` times as fast as the wall clock, counted from the wall-clock
    moment `anchor`. Every process given the same three values tells the same time, so the five
    services of a rehearsal agree without talking to each other."""

    def __init__(self, start: datetime, speed: float = 1.0, anchor: datetime | None = None,
                 wall: Clock | None = None) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError(f"a simulation's start needs a time zone, e.g. {start.isoformat()}+08:00")
        if not speed > 0:
            raise ValueError(f"a simulation's speed must be above 0, not {speed}")
        self.start, self.speed, self._wall = start, speed, wall or SystemClock()
        self.anchor = anchor or self._wall.now()

    def now(self) -> datetime:
        # In UTC like SystemClock: business code sees the same kind of value, only the instant differs.
        return (self.start + (self._wall.now() - self.anchor) * self.speed).astimezone(timezone.utc)

    def local_now(self) -> datetime:
        """Now in the offset the simulation was started with, for people reading it."""
        return self.now().astimezone(self.start.tzinfo)


def parse_moment(text: str) -> datetime:
    """An ISO 8601 moment with its time zone (2025-04-10T10:00+08:00); ValueError saying what is wrong."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 moment such as 2025-04-10T10:00+08:00") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{text!r} has no time zone: add an offset such as +08:00 ({moment.isoformat()}+08:00)")
    return moment


def simulation_environment(start: datetime, speed: float, anchor: datetime) -> dict[str, str]:
    """The FANGPIN_ variables that give every service process one and the same simulation clock."""
    return {"FANGPIN_SIMULATION_START": start.isoformat(), "FANGPIN_SIMULATION_SPEED": repr(float(speed)),
            "FANGPIN_SIMULATION_ANCHOR": anchor.isoformat()}


def clock_from_settings(settings: Settings) -> Clock:
    """The clock a service runs on: the wall clock, or the simulation its settings describe
    (simulation_problems() having found nothing wrong with them)."""
    if settings.simulation_start is None:
        return SystemClock()
    return SimulationClock(settings.simulation_start, settings.simulation_speed, settings.simulation_anchor)


def simulation_problems(settings: Settings) -> list[str]:
    """Why a service may not start with its simulation settings, one line per setting (empty: fine).
    A simulated date in a real county's records would be a false record: development systems only."""
    if settings.simulation_start is None:
        return []
    problems = []
    if settings.environment != "development":
        problems.append(f"FANGPIN_SIMULATION_START is set (a simulation clock from "
                        f"{settings.simulation_start.isoformat()}): only a training or rehearsal system "
                        "(FANGPIN_ENVIRONMENT=development) may run on one; unset it")
    if settings.simulation_anchor is None:
        problems.append("FANGPIN_SIMULATION_ANCHOR is unset: give the wall-clock moment the simulation began, "
                        "the same for every service (`fangpin up --clock` sets both)")
    if not settings.simulation_speed > 0:
        problems.append(f"FANGPIN_SIMULATION_SPEED must be above 0, not {settings.simulation_speed}")
    return problems


def describe(clock: Clock) -> dict:
    """What /healthz says about the service's clock."""
    if isinstance(clock, SimulationClock):
        return {"simulated": True, "now": clock.local_now().isoformat(), "speed": clock.speed,
                "started_at": clock.start.isoformat(), "wall_clock_at_start": clock.anchor.isoformat()}
    return {"simulated": not isinstance(clock, SystemClock), "now": clock.now().isoformat()}


class SimulatedTimeInLogs(logging.Filter):
    """Gives each log record `simulated_now`, for a log format that shows it beside the wall time."""

    def __init__(self, clock: SimulationClock) -> None:
        super().__init__()
        self.clock = clock

    def filter(self, record: logging.LogRecord) -> bool:
        record.simulated_now = self.clock.local_now().isoformat(timespec="seconds")
        return True


class RequestClockMiddleware:
    """Request bodies are checked against the service's clock ("not in the future" of a simulated
    day), not the wall clock: contracts.fields reads the clock set here for the request."""

    def __init__(self, app: ASGIApp, clock: Clock) -> None:
        self.app, self.clock = app, clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with clock_of_request(self.clock.now):
            await self.app(scope, receive, send)
