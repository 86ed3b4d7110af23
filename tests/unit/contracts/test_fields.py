"""The shared field types of request bodies (contracts/fields.py) at their edges."""
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import TypeAdapter, ValidationError

from contracts import fields
from contracts.fields import AMOUNT_CEILING, CLOCK_SKEW, EARLIEST_MOMENT, Amount, BirthDate, Moment
from services.intake import domain
from services.intake.api.warnings import WarningIn

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)
EAST8 = timezone(timedelta(hours=8))
MOMENT, BIRTH_DATE, AMOUNT = TypeAdapter(Moment), TypeAdapter(BirthDate), TypeAdapter(Amount)


@pytest.fixture(autouse=True)
def fixed_wall_clock(monkeypatch):
    monkeypatch.setattr(fields, "wall_clock", lambda: NOW)


def refusal(adapter: TypeAdapter, value) -> str:
    with pytest.raises(ValidationError) as caught:
        adapter.validate_python(value)
    [error] = caught.value.errors()
    return error["msg"]


def test_a_moment_is_taken_from_the_first_instant_of_2000_utc_to_now_plus_the_skew():
    assert MOMENT.validate_python("2000-01-01T00:00:00Z") == EARLIEST_MOMENT
    assert MOMENT.validate_python("2000-01-01T08:00:00+08:00") == EARLIEST_MOMENT  # the same instant
    assert MOMENT.validate_python(NOW + CLOCK_SKEW) == NOW + CLOCK_SKEW
    assert refusal(MOMENT, "2000-01-01T07:59:59.999999+08:00") == "must not be before 2000-01-01T00:00:00Z"
    assert refusal(MOMENT, NOW + CLOCK_SKEW + timedelta(microseconds=1)).startswith("must not be in the future")


def test_a_moment_keeps_the_offset_it_was_given():
    # the local year decides a warning's yearly threshold: 2026-01-01T05:00+08:00 is 2025 in UTC
    taken = MOMENT.validate_python("2026-01-01T05:00:00+08:00")
    assert taken.utcoffset() == timedelta(hours=8) and taken.year == 2026


@pytest.mark.parametrize("value, rule", [
    ("2026-11-01T08:00:00", "must have a time zone: add an offset such as +08:00"),
    ("2026-11-01", "must have a time zone"),
    ("0001-01-01T00:00:00+08:00", "must not be before 2000-01-01"),  # UTC year 0: no OverflowError
    ("9999-12-31T23:59:59-08:00", "must not be in the future"),       # UTC year 10000
    ("9999-12-31T00:00:00+08:00", "must not be in the future"),
])
def test_a_moment_out_of_its_window_is_a_validation_error_naming_the_rule(value, rule):
    assert rule in refusal(MOMENT, value)


def test_a_birth_date_is_taken_from_1900_to_today(monkeypatch):
    assert BIRTH_DATE.validate_python("1900-01-01") == date(1900, 1, 1)
    assert BIRTH_DATE.validate_python(NOW.date()) == NOW.date()
    assert refusal(BIRTH_DATE, "1899-12-31") == "must not be before 1900-01-01"
    assert refusal(BIRTH_DATE, NOW.date() + timedelta(days=1)) == "must not be after today"
    monkeypatch.setattr(fields, "wall_clock", lambda: datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc))
    assert BIRTH_DATE.validate_python("2026-11-21")  # already today at UTC+14


def test_inside_a_request_moments_and_birth_dates_are_held_to_the_services_clock():
    """A simulation clock may run ahead of the wall clock: its today is not in the future."""
    simulated = NOW + timedelta(days=400)
    with fields.clock_of_request(lambda: simulated):
        assert MOMENT.validate_python(simulated) == simulated
        assert BIRTH_DATE.validate_python(simulated.date()) == simulated.date()
        assert refusal(MOMENT, simulated + CLOCK_SKEW + timedelta(seconds=1)).startswith("must not be in the future")
    assert refusal(MOMENT, simulated).startswith("must not be in the future")  # outside a request: the wall clock
    assert refusal(BIRTH_DATE, simulated.date()) == "must not be after today"

def test_an_amount_is_taken_from_0_to_the_ceiling_to_the_fen():
    assert AMOUNT.validate_python(Decimal("0")) == 0
    assert AMOUNT.validate_python("0.00") == 0
    assert AMOUNT.validate_python(AMOUNT_CEILING) == AMOUNT_CEILING
    assert refusal(AMOUNT, "-0.01") == "must be 0 or more"
    assert refusal(AMOUNT, AMOUNT_CEILING + Decimal("0.01")) == "must be at most 100,000,000"
    assert "2 decimal places" in refusal(AMOUNT, "1.001")
    assert "finite" in refusal(AMOUNT, "NaN")


def test_every_amount_maximum_is_an_indicator_of_the_catalogue_and_under_the_ceiling():
    indicators = {name for catalogue in domain.INDICATOR_CATALOGUE.values() for name in catalogue}
    assert set(domain.AMOUNT_MAXIMA) <= indicators
    assert all(0 < maximum <= AMOUNT_CEILING for maximum in domain.AMOUNT_MAXIMA.values())
    assert domain.amount_maximum("school_dropout") == AMOUNT_CEILING


def test_a_warning_amount_is_held_to_its_indicators_maximum_under_the_field_amount():
    row = {"department": "medical_insurance", "source_record_id": "1", "household_id": "H1",
           "indicator": "high_medical_expense", "observed_at": "2026-11-01T08:00:00+08:00"}
    assert WarningIn.model_validate({**row, "amount": "10000000.00"}).amount == Decimal("10000000")
    with pytest.raises(ValidationError) as caught:
        WarningIn.model_validate({**row, "amount": "10000000.01"})
    [error] = caught.value.errors()
    assert error["loc"] == ("amount",)
    assert error["msg"] == "must be at most 10,000,000 for the indicator high_medical_expense"
    # an unknown indicator is refused later, by the catalogue; its amount is held to the ceiling
    assert WarningIn.model_validate({**row, "indicator": "unknown", "amount": "20000000"}).amount == 20000000


def test_as_of_is_a_date_or_a_moment_with_a_time_zone_past_or_future():
    from contracts.fields import AsOf

    as_of = TypeAdapter(AsOf)
    assert as_of.validate_python("2026-01-10") == datetime(2026, 1, 10, tzinfo=timezone.utc)  # the day's start, UTC
    taken = as_of.validate_python("2026-01-01T05:00:00+08:00")
    assert (taken.utcoffset(), taken.year, taken.date()) == (timedelta(hours=8), 2026, date(2026, 1, 1))  # as written
    assert as_of.validate_python("2026-01-01T05:00:00 08:00") == taken  # a query string's + arrives as a space
    assert as_of.validate_python(NOW + timedelta(days=400)) == NOW + timedelta(days=400)  # ahead: what will be due
    assert refusal(as_of, "2026-01-10T09:30:00").startswith("must be a date (2026-01-10) or a moment with a time zone")
    assert refusal(as_of, "1999-12-31") == "must be from 2000-01-01T00:00:00Z to 2999-12-31"
    assert refusal(as_of, "3000-01-01") == "must be from 2000-01-01T00:00:00Z to 2999-12-31"
