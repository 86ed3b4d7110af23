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
    services of a rehearsal agree without talking to each other.

    `catches_up`: a past stretch told quickly, as the demo tells its county's last weeks. Started in
    the past and faster than the wall clock, it meets the wall clock and from then on is the wall
    clock, so what people do afterwards is recorded at its real time, after the history."""

    def __init__(self, start: datetime, speed: float = 1.0, anchor: datetime | None = None,
                 wall: Clock | None = None, catches_up: bool = False) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError(f"a simulation's start needs a time zone, e.g. {start.isoformat()}+08:00")
        if not speed > 0:
            raise ValueError(f"a simulation's speed must be above 0, not {speed}")
        self.start, self.speed, self._wall = start, speed, wall or SystemClock()
        self.anchor = anchor or self._wall.now()
        if catches_up and not (start < self.anchor and speed > 1):
            raise ValueError("a simulation that catches up with the wall clock starts before it and runs faster "
                             f"(start {start.isoformat()}, wall clock {self.anchor.isoformat()}, speed {speed:g})")
        self.catches_up = catches_up

    def now(self) -> datetime:
        wall = self._wall.now()
        # In UTC like SystemClock: business code sees the same kind of value, only the instant differs.
        simulated = (self.start + (wall - self.anchor) * self.speed).astimezone(timezone.utc)
        return min(simulated, wall.astimezone(timezone.utc)) if self.catches_up else simulated

    def local_now(self) -> datetime:
        """Now in the offset the simulation was started with, for people reading it."""
        return self.now().astimezone(self.start.tzinfo)

    def caught_up_at(self) -> datetime | None:
        """The wall-clock moment a catching-up simulation meets the wall clock (None: it never does)."""
        if not self.catches_up:
            return None
        return self.anchor + (self.anchor - self.start) / (self.speed - 1)


def parse_moment(text: str) -> datetime:
    """An ISO 8601 moment with its time zone (2025-04-10T10:00+08:00); ValueError saying what is wrong."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 moment such as 2025-04-10T10:00+08:00") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{text!r} has no time zone: add an offset such as +08:00 ({moment.isoformat()}+08:00)")
    return moment


def simulation_environment(start: datetime, speed: float, anchor: datetime, catches_up: bool = False) -> dict[str, str]:
    """The FANGPIN_ variables that give every service process one and the same simulation clock."""
    return {"FANGPIN_SIMULATION_START": start.isoformat(), "FANGPIN_SIMULATION_SPEED": repr(float(speed)),
            "FANGPIN_SIMULATION_ANCHOR": anchor.isoformat(),
            "FANGPIN_SIMULATION_CATCHES_UP": "true" if catches_up else "false"}


def clock_from_settings(settings: Settings) -> Clock:
    """The clock a service runs on: the wall clock, or the simulation its settings describe
    (simulation_problems() having found nothing wrong with them)."""
    if settings.simulation_start is None:
        return SystemClock()
    return SimulationClock(settings.simulation_start, settings.simulation_speed, settings.simulation_anchor,
                           catches_up=settings.simulation_catches_up)


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
    elif settings.simulation_catches_up and settings.simulation_anchor is not None and not (
            settings.simulation_start < settings.simulation_anchor and settings.simulation_speed > 1):
        problems.append("FANGPIN_SIMULATION_CATCHES_UP is set: the simulation must start before its anchor and run "
                        "faster than the wall clock (FANGPIN_SIMULATION_SPEED above 1) to catch up with it")
    return problems


def describe(clock: Clock) -> dict:
    """What /healthz says about the service's clock."""
    if isinstance(clock, SimulationClock):
        described = {"simulated": True, "now": clock.local_now().isoformat(), "speed": clock.speed,
                     "started_at": clock.start.isoformat(), "wall_clock_at_start": clock.anchor.isoformat()}
        if clock.catches_up:
            described["catches_up_with_wall_clock_at"] = clock.caught_up_at().isoformat()
        return described
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
