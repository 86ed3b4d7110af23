"""When deliveries are tried: backoff with jitter after a failure, Retry-After, quiet hours and the
daily digest in the deployment's time zone (Asia/Shanghai, UTC+8 all year)."""
import random
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notifier.domain.delivery_times import (
    MAX_RETRY_AFTER_SECONDS, MIN_DELAY_SECONDS, QuietHours, deliver_at, next_attempt_delay)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NIGHT = QuietHours.parse("22:00-07:00")
EIGHT = time(8, 0)


def delay(attempt, retry_after=None, seed=1, base=2.0, cap=3600.0):
    return next_attempt_delay(attempt, retry_after, base=base, cap=cap, rng=random.Random(seed))


def local(text: str) -> datetime:
    """A Shanghai wall-clock time, as the aware UTC `now` the notifier has."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).astimezone(UTC)


# Backoff ---------------------------------------------------------------------------------------------

def test_the_delay_is_a_full_jitter_draw_below_the_doubling_ceiling():
    for attempt in range(1, 15):
        ceiling = min(3600.0, 2.0 * 2 ** (attempt - 1))
        draws = [delay(attempt, seed=seed) for seed in range(200)]
        assert all(MIN_DELAY_SECONDS <= d <= max(ceiling, MIN_DELAY_SECONDS) for d in draws)
        # the same seeded draw as the formula: uniform(0, ceiling), floored
        assert draws[0] == max(MIN_DELAY_SECONDS, random.Random(0).uniform(0, ceiling))
        if ceiling >= 8:  # jittered: spread over the range, not one fixed value
            assert len(set(draws)) > 150 and max(draws) > 0.8 * ceiling and min(draws) < 0.2 * ceiling


def test_the_delay_grows_with_the_attempts_until_the_cap():
    means = [sum(delay(attempt, seed=seed) for seed in range(400)) / 400 for attempt in range(1, 16)]
    assert all(later > earlier for earlier, later in zip(means[:10], means[1:11]))
    assert means[0] < 2 and 1500 < means[-1] < 2100  # about half the cap once it is reached
    assert max(delay(attempt, seed=seed) for attempt in (12, 40, 5000) for seed in range(50)) <= 3600


def test_a_failed_try_is_never_retried_at_once():
    assert delay(1, base=0.001) == MIN_DELAY_SECONDS


def test_retry_after_is_waited_at_least_but_at_most_a_day():
    assert delay(1, retry_after=7) == 7
    assert delay(20, retry_after=7, seed=3) == delay(20, seed=3) > 7  # the backoff already waits longer
    assert delay(1, retry_after=30 * 86_400) == MAX_RETRY_AFTER_SECONDS == 86_400
    assert delay(1, retry_after=-5) == delay(1)  # a date in the past asks for nothing


def test_attempts_count_from_one():
    with pytest.raises(ValueError):
        delay(0)


# Quiet hours -----------------------------------------------------------------------------------------

def test_quiet_hours_across_midnight():
    assert NIGHT == QuietHours(time(22), time(7))
    inside = [time(22), time(23, 59, 59), time(0), time(3), time(6, 59, 59)]
    outside = [time(7), time(12), time(21, 59, 59)]
    assert all(NIGHT.contains(t) for t in inside)
    assert not any(NIGHT.contains(t) for t in outside)


def test_quiet_hours_within_a_day():
    lunch = QuietHours.parse("12:00 - 13:30")
    assert lunch.contains(time(12)) and lunch.contains(time(13, 29))
    assert not lunch.contains(time(13, 30)) and not lunch.contains(time(11, 59)) and not lunch.contains(time(23))


@pytest.mark.parametrize("text", ["22:00", "22:00-22:00", "25:00-07:00", "late-early"])
def test_quiet_hours_that_mean_nothing_are_refused(text):
    with pytest.raises(ValueError):
        QuietHours.parse(text)


# deliver_at ------------------------------------------------------------------------------------------

def at(now, *, urgent=False, digest=False, quiet=NIGHT, digest_time=EIGHT):
    return deliver_at(now, urgent=urgent, digest=digest, quiet=quiet, digest_time=digest_time, tz=SHANGHAI)


def test_urgent_goes_now_outside_quiet_hours_and_at_their_end_inside_them():
    assert at(local("2026-03-10T15:00"), urgent=True, digest=True) == local("2026-03-10T15:00")
    assert at(local("2026-03-10T23:30"), urgent=True) == local("2026-03-11T07:00")  # before midnight: tomorrow
    assert at(local("2026-03-11T02:00"), urgent=True) == local("2026-03-11T07:00")  # after midnight: today
    assert at(local("2026-03-11T02:00"), urgent=True, quiet=None) == local("2026-03-11T02:00")


def test_without_a_digest_a_notification_goes_like_an_urgent_one():
    assert at(local("2026-03-10T15:00")) == local("2026-03-10T15:00")
    assert at(local("2026-03-10T22:00")) == local("2026-03-11T07:00")


def test_a_digest_waits_for_the_next_digest_time():
    assert at(local("2026-03-10T06:00"), digest=True) == local("2026-03-10T08:00")
    assert at(local("2026-03-10T08:00"), digest=True) == local("2026-03-10T08:00")  # at or after
    assert at(local("2026-03-10T08:00:01"), digest=True) == local("2026-03-11T08:00")
    assert at(local("2026-03-10T15:00"), digest=True, quiet=None) == local("2026-03-11T08:00")


def test_a_digest_time_inside_quiet_hours_moves_to_their_end():
    assert at(local("2026-03-10T15:00"), digest=True, digest_time=time(6, 30)) == local("2026-03-11T07:00")
    assert at(local("2026-03-10T23:00"), digest=True, digest_time=time(23, 30)) == local("2026-03-11T07:00")


def test_the_day_turns_at_local_midnight_not_utc_midnight():
    # 23:59:59 in Shanghai is 15:59:59 UTC: the next digest is tomorrow's (local) 08:00 ...
    assert at(local("2026-12-31T23:59:59"), digest=True, quiet=None) == local("2027-01-01T08:00")
    # ... and 00:00 local is 16:00 UTC the day before: today's 08:00 is still to come
    assert at(local("2027-01-01T00:00"), digest=True, quiet=None) == datetime(2027, 1, 1, 0, tzinfo=UTC)
    midnight_digest = dict(digest=True, quiet=None, digest_time=time(0))
    assert at(local("2026-03-10T00:00"), **midnight_digest) == local("2026-03-10T00:00")
    assert at(local("2026-03-10T23:30"), **midnight_digest) == local("2026-03-11T00:00")


def test_quiet_hours_ending_or_starting_at_midnight():
    until_midnight = QuietHours.parse("22:00-00:00")
    assert at(local("2026-03-10T23:00"), urgent=True, quiet=until_midnight) == local("2026-03-11T00:00")
    assert at(local("2026-03-11T00:00"), urgent=True, quiet=until_midnight) == local("2026-03-11T00:00")
    from_midnight = QuietHours.parse("00:00-06:00")
    assert at(local("2026-03-11T00:00"), urgent=True, quiet=from_midnight) == local("2026-03-11T06:00")
    assert at(local("2026-03-10T23:59"), urgent=True, quiet=from_midnight) == local("2026-03-10T23:59")


def test_the_answer_is_utc_and_now_must_be_aware():
    assert at(local("2026-03-10T15:00")).tzinfo == UTC
    with pytest.raises(ValueError):
        at(datetime(2026, 3, 10, 15))


minutes = st.integers(0, 24 * 60 - 1).map(lambda m: time(m // 60, m % 60))


@given(now=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)),
       urgent=st.booleans(), digest=st.booleans(), start=minutes, end=minutes, digest_time=minutes,
       zone=st.sampled_from(["Asia/Shanghai", "UTC", "Asia/Kolkata"]))
def test_deliver_at_is_never_before_now_nor_in_quiet_hours_and_waits_at_most_two_days(
        now, urgent, digest, start, end, digest_time, zone):
    quiet = QuietHours(start, end) if start != end else None
    when = deliver_at(now, urgent=urgent, digest=digest, quiet=quiet, digest_time=digest_time, tz=ZoneInfo(zone))
    assert when.tzinfo == UTC
    assert now <= when < now + timedelta(days=2)
    assert quiet is None or not quiet.contains(when.astimezone(ZoneInfo(zone)).time())
    if not (digest and not urgent) and (quiet is None or not quiet.contains(now.astimezone(ZoneInfo(zone)).time())):
        assert when == now  # nothing holds it back: it goes at once
