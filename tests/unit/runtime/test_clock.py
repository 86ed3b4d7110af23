"""The simulation clock (runtime/clock.py): time from a chosen moment at a chosen speed, the same in
every process given the same settings, and the settings a service refuses to start with."""
from datetime import datetime, timedelta, timezone

import pytest

from runtime.clock import (FixedClock, SimulationClock, SystemClock, clock_from_settings, parse_moment,
                           simulation_environment, simulation_problems)
from runtime.settings import Settings

EAST8 = timezone(timedelta(hours=8))
START = datetime(2025, 4, 10, 10, 0, tzinfo=EAST8)
WALL = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)


def test_a_simulation_starts_at_its_moment_and_runs_speed_times_the_wall_clock():
    wall = FixedClock(WALL)
    clock = SimulationClock(START, speed=60, wall=wall)
    assert clock.now() == START and clock.now().tzinfo == timezone.utc  # in UTC, like the wall clock
    wall.advance(timedelta(minutes=2))
    assert clock.now() == START + timedelta(hours=2)
    assert clock.local_now().isoformat() == "2025-04-10T12:00:00+08:00"
    wall.advance(timedelta(seconds=1.5))
    assert clock.now() == START + timedelta(hours=2, seconds=90)


def test_processes_given_the_same_anchor_tell_the_same_time_whenever_they_started():
    anchor = WALL - timedelta(seconds=10)  # the moment `fangpin up` began the simulation
    early = SimulationClock(START, speed=86400, anchor=anchor, wall=FixedClock(WALL))
    restarted = SimulationClock(START, speed=86400, anchor=anchor, wall=FixedClock(WALL))  # a service started again
    assert early.now() == restarted.now() == START + timedelta(days=10)


def test_a_simulation_needs_a_time_zone_and_a_positive_speed():
    with pytest.raises(ValueError, match="time zone"):
        SimulationClock(datetime(2025, 4, 10, 10, 0))
    with pytest.raises(ValueError, match="above 0"):
        SimulationClock(START, speed=0)


def test_a_moment_given_on_the_command_line_must_name_its_time_zone():
    assert parse_moment("2025-04-10T10:00+08:00") == START
    with pytest.raises(ValueError, match=r"no time zone: add an offset such as \+08:00 \(2025-04-10T10:00:00\+08:00\)"):
        parse_moment("2025-04-10T10:00")
    with pytest.raises(ValueError, match="not an ISO 8601 moment"):
        parse_moment("10 April 2025")


def test_the_variables_fangpin_up_sets_give_each_service_the_same_clock(monkeypatch):
    anchor = datetime.now(timezone.utc)
    for name, value in simulation_environment(START, 60.0, anchor).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FANGPIN_ENVIRONMENT", "development")
    settings = Settings()
    assert simulation_problems(settings) == []
    clock = clock_from_settings(settings)
    assert isinstance(clock, SimulationClock)
    assert (clock.start, clock.speed, clock.anchor) == (START, 60.0, anchor)


def test_a_simulation_clock_is_refused_outside_development_and_without_its_anchor():
    assert isinstance(clock_from_settings(Settings(environment="production")), SystemClock)
    assert simulation_problems(Settings(environment="production")) == []  # the wall clock: nothing to refuse
    production = simulation_problems(Settings(environment="production", simulation_start=START, simulation_anchor=WALL))
    assert len(production) == 1 and production[0].startswith("FANGPIN_SIMULATION_START is set")
    assert "FANGPIN_ENVIRONMENT=development" in production[0]
    [unanchored] = simulation_problems(Settings(environment="development", simulation_start=START))
    assert unanchored.startswith("FANGPIN_SIMULATION_ANCHOR is unset")
    [stopped] = simulation_problems(Settings(environment="development", simulation_start=START,
                                             simulation_anchor=WALL, simulation_speed=0))
    assert stopped == "FANGPIN_SIMULATION_SPEED must be above 0, not 0.0"


def test_a_simulation_that_catches_up_tells_its_past_fast_then_is_the_wall_clock():
    wall = FixedClock(WALL)
    month_ago = WALL - timedelta(days=30)
    clock = SimulationClock(month_ago, speed=86400, wall=wall, catches_up=True)  # a day a second
    assert clock.now() == month_ago
    wall.advance(timedelta(seconds=10))
    assert clock.now() == month_ago + timedelta(days=10)
    # It meets the wall clock when 30 days of history have gained on it: 30 days / (86400 - 1) after the anchor.
    assert clock.caught_up_at() == WALL + timedelta(days=30) / 86399
    wall.advance(timedelta(seconds=25))
    assert clock.now() == WALL + timedelta(seconds=35), "on the wall clock after it met it"
    wall.advance(timedelta(hours=5))
    assert clock.now() == wall.now()
    with pytest.raises(ValueError, match="starts before it and runs faster"):
        SimulationClock(WALL + timedelta(days=1), speed=86400, wall=FixedClock(WALL), catches_up=True)
    with pytest.raises(ValueError, match="starts before it and runs faster"):
        SimulationClock(month_ago, speed=1, wall=FixedClock(WALL), catches_up=True)
    [never] = simulation_problems(Settings(environment="development", simulation_start=WALL, simulation_anchor=WALL,
                                           simulation_speed=60, simulation_catches_up=True))
    assert never.startswith("FANGPIN_SIMULATION_CATCHES_UP is set")


def test_the_variables_of_a_catching_up_simulation_reach_each_service(monkeypatch):
    anchor = datetime.now(timezone.utc)
    for name, value in simulation_environment(anchor - timedelta(days=30), 86400.0, anchor, catches_up=True).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FANGPIN_ENVIRONMENT", "development")
    clock = clock_from_settings(Settings())
    assert clock.catches_up and clock.caught_up_at() == anchor + timedelta(days=30) / 86399
