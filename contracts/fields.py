"""Field types of every service's request bodies: moments, birth dates and money, each held to
one rule here, so that a date or an amount is refused the same way wherever it comes in.

Event payloads keep plain `datetime`/`Decimal`: events already stored must still decode.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Callable, Iterator, NamedTuple

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

EARLIEST_MOMENT = datetime(2000, 1, 1, tzinfo=timezone.utc)  # the monitoring records begin later still
CLOCK_SKEW = timedelta(minutes=5)  # how far a sender's clock may run ahead of ours
EARLIEST_BIRTH_DATE = date(1900, 1, 1)
AMOUNT_CEILING = Decimal("100000000")  # 1亿 yuan: above any amount of any indicator or household
_FIRST_TIME_ZONE = timedelta(hours=14)  # UTC+14: where a day begins first
_SKEW = f"{CLOCK_SKEW.seconds // 60} minutes"


def wall_clock() -> datetime:
    return datetime.now(timezone.utc)


_request_clock: ContextVar[Callable[[], datetime] | None] = ContextVar("request_clock", default=None)


@contextmanager
def clock_of_request(now: Callable[[], datetime]) -> Iterator[None]:
    """Check the fields of what is validated inside against `now` (the service's clock: a simulation
    clock may run days ahead of the wall clock, and a moment of its today is not in the future)."""
    token = _request_clock.set(now)
    try:
        yield
    finally:
        _request_clock.reset(token)


def current_time() -> datetime:
    """Now for the checks of this module: the clock of the service taking the request, else the wall clock."""
    now = _request_clock.get()
    return now() if now is not None else wall_clock()


class FieldProblem(NamedTuple):
    """What is wrong with a value: the code of the rule (contracts/codes.py) and what to say."""

    code: str
    message: str


def refusal(problem: FieldProblem) -> PydanticCustomError:
    """The validation error of a field problem: its code becomes the error's type (`errors[].code`)."""
    return PydanticCustomError(problem.code, problem.message)


def moment_problem(value: datetime, now: datetime) -> FieldProblem | None:
    """What is wrong with `value` as a moment that has already happened by `now`, if anything."""
    if value.tzinfo is None or value.utcoffset() is None:
        return FieldProblem("moment_without_time_zone",
                            "must have a time zone: add an offset such as +08:00 (2026-11-20T09:30:00+08:00)")
    # Compared as given, never moved to UTC: 0001-01-01+08:00 has no UTC spelling (OverflowError),
    # and the sender's offset keeps the local year that yearly thresholds go by.
    if value < EARLIEST_MOMENT:
        return FieldProblem("moment_before_2000", "must not be before 2000-01-01T00:00:00Z")
    if value > now + CLOCK_SKEW:
        return FieldProblem("moment_in_future", f"must not be in the future (more than {_SKEW} after now)")
    return None


def birth_date_problem(value: date, now: datetime) -> FieldProblem | None:
    if value < EARLIEST_BIRTH_DATE:
        return FieldProblem("birth_date_before_1900", f"must not be before {EARLIEST_BIRTH_DATE.isoformat()}")
    if value > (now + _FIRST_TIME_ZONE).date():
        return FieldProblem("birth_date_after_today", "must not be after today")
    return None


def amount_problem(value: Decimal, maximum: Decimal = AMOUNT_CEILING) -> FieldProblem | None:
    if value < 0:
        return FieldProblem("amount_negative", "must be 0 or more")
    if value > maximum:
        return FieldProblem("amount_above_maximum", f"must be at most {maximum:,}")
    return None


def _moment(value: datetime) -> datetime:
    if problem := moment_problem(value, current_time()):
        raise refusal(problem)
    return value


def _birth_date(value: date) -> date:
    if problem := birth_date_problem(value, current_time()):
        raise refusal(problem)
    return value


def _amount(value: Decimal) -> Decimal:
    if problem := amount_problem(value):
        raise refusal(problem)
    return value


Moment = Annotated[datetime, AfterValidator(_moment), Field(
    description=f"with a time zone; from 2000-01-01T00:00:00Z to now (plus {_SKEW} of clock skew)")]
"""A moment that has happened (observed, visited): the database and every consumer can hold it."""

BirthDate = Annotated[date, AfterValidator(_birth_date), Field(description="from 1900-01-01 to today")]

Amount = Annotated[Decimal, Field(max_digits=14, decimal_places=2, description="yuan: 0 to 100,000,000"),
                   AfterValidator(_amount)]
"""Money in yuan (元), to the fen."""


LATEST_AS_OF = datetime(3000, 1, 1, tzinfo=timezone.utc)
AS_OF_DESCRIPTION = (
    "the list as of this date (2026-01-10: that day's start, UTC) or moment with a time zone "
    "(2026-01-10T09:30:00+08:00), past or future; its date and year are read as written. Default: now")


def as_of_problem(value: datetime) -> FieldProblem | None:
    if value.tzinfo is None or value.utcoffset() is None:
        return FieldProblem("as_of_without_time_zone",
                            "must be a date (2026-01-10) or a moment with a time zone (2026-01-10T09:30:00+08:00)")
    if not EARLIEST_MOMENT <= value < LATEST_AS_OF:
        return FieldProblem("as_of_out_of_range", "must be from 2000-01-01T00:00:00Z to 2999-12-31")
    return None


_PLUS_DECODED_AS_SPACE = re.compile(r"^(\d{4}-\d{2}-\d{2}T[\d:.]+) (\d{2}:?\d{2})$")


def _day_start(value):
    if isinstance(value, str):  # an unescaped + of an offset arrives from a query string as a space
        value = _PLUS_DECODED_AS_SPACE.sub(r"\1+\2", value)
    # A bare date is its first instant in UTC: the day the services' clocks call today.
    if isinstance(value, str) and len(value) == 10:
        try:
            value = date.fromisoformat(value)
        except ValueError:
            return value  # left to the datetime parser, whose message names the format
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    return value


def _as_of(value: datetime) -> datetime:
    if problem := as_of_problem(value):
        raise refusal(problem)
    return value


AsOf = Annotated[datetime, BeforeValidator(_day_start), AfterValidator(_as_of)]
"""The moment a list is judged at (`?as_of=`): in the past, to see it as it stood, or ahead, to
see what will be due; no clock bounds it. The description is AS_OF_DESCRIPTION."""
