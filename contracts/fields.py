"""Field types of every service's request bodies: moments, birth dates and money, each held to
one rule here, so that a date or an amount is refused the same way wherever it comes in.

Event payloads keep plain `datetime`/`Decimal`: events already stored must still decode.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

EARLIEST_MOMENT = datetime(2000, 1, 1, tzinfo=timezone.utc)  # the monitoring records begin later still
CLOCK_SKEW = timedelta(minutes=5)  # how far a sender's clock may run ahead of ours
EARLIEST_BIRTH_DATE = date(1900, 1, 1)
AMOUNT_CEILING = Decimal("100000000")  # 1亿 yuan: above any amount of any indicator or household
_FIRST_TIME_ZONE = timedelta(hours=14)  # UTC+14: where a day begins first
_SKEW = f"{CLOCK_SKEW.seconds // 60} minutes"


def wall_clock() -> datetime:
    return datetime.now(timezone.utc)


def moment_problem(value: datetime, now: datetime) -> str | None:
    """What is wrong with `value` as a moment that has already happened by `now`, if anything."""
    if value.tzinfo is None or value.utcoffset() is None:
        return "must have a time zone: add an offset such as +08:00 (2026-11-20T09:30:00+08:00)"
    # Compared as given, never moved to UTC: 0001-01-01+08:00 has no UTC spelling (OverflowError),
    # and the sender's offset keeps the local year that yearly thresholds go by.
    if value < EARLIEST_MOMENT:
        return "must not be before 2000-01-01T00:00:00Z"
    if value > now + CLOCK_SKEW:
        return f"must not be in the future (more than {_SKEW} after now)"
    return None


def birth_date_problem(value: date, now: datetime) -> str | None:
    if value < EARLIEST_BIRTH_DATE:
        return f"must not be before {EARLIEST_BIRTH_DATE.isoformat()}"
    if value > (now + _FIRST_TIME_ZONE).date():
        return "must not be after today"
    return None


def amount_problem(value: Decimal, maximum: Decimal = AMOUNT_CEILING) -> str | None:
    if value < 0:
        return "must be 0 or more"
    if value > maximum:
        return f"must be at most {maximum:,}"
    return None


def _moment(value: datetime) -> datetime:
    if problem := moment_problem(value, wall_clock()):
        raise PydanticCustomError("moment", problem)
    return value


def _birth_date(value: date) -> date:
    if problem := birth_date_problem(value, wall_clock()):
        raise PydanticCustomError("birth_date", problem)
    return value


def _amount(value: Decimal) -> Decimal:
    if problem := amount_problem(value):
        raise PydanticCustomError("amount", problem)
    return value


Moment = Annotated[datetime, AfterValidator(_moment), Field(
    description=f"with a time zone; from 2000-01-01T00:00:00Z to now (plus {_SKEW} of clock skew)")]
"""A moment that has happened (observed, visited): the database and every consumer can hold it."""

BirthDate = Annotated[date, AfterValidator(_birth_date), Field(description="from 1900-01-01 to today")]

Amount = Annotated[Decimal, Field(max_digits=14, decimal_places=2, description="yuan: 0 to 100,000,000"),
                   AfterValidator(_amount)]
"""Money in yuan (元), to the fen."""
