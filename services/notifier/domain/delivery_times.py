"""When a delivery is tried (again): backoff after a failed try, quiet hours (免打扰时段) and the
daily digest. Pure: `now` is given, randomness comes from the caller's `rng`."""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MIN_DELAY_SECONDS = 1.0  # full jitter can draw ~0: never hammer a receiver that just failed
MAX_RETRY_AFTER_SECONDS = 86_400.0  # a receiver's Retry-After is honoured up to a day, no longer


def next_attempt_delay(attempt: int, retry_after: float | None, *, base: float, cap: float,
                       rng: random.Random) -> float:
    """Seconds to wait after `attempt` tries (1 after the first): exponential backoff with full jitter,
    and at least the receiver's Retry-After (up to a day)."""
    if attempt < 1:
        raise ValueError("attempt counts the tries made so far: at least 1")
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 64))  # the exponent bounded: no float overflow
    delay = max(MIN_DELAY_SECONDS, rng.uniform(0, ceiling))
    if retry_after is not None:
        delay = max(delay, min(max(retry_after, 0.0), MAX_RETRY_AFTER_SECONDS))
    return delay


@dataclass(frozen=True)
class QuietHours:
    """Local times from `start` (inclusive) to `end` (exclusive), spanning midnight when end < start."""

    start: time
    end: time

    def __post_init__(self):
        if self.start == self.end:
            raise ValueError("quiet hours must have a length and leave some of the day")
        if self.start.tzinfo or self.end.tzinfo:
            raise ValueError("quiet hours are local times, without a zone")

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """Quiet hours written HH:MM-HH:MM, e.g. "22:00-07:00"."""
        start, sep, end = text.partition("-")
        if not sep:
            raise ValueError(f"quiet hours are HH:MM-HH:MM, not {text!r}")
        return cls(time.fromisoformat(start.strip()), time.fromisoformat(end.strip()))

    def contains(self, t: time) -> bool:
        t = t.replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def end_after(self, moment: datetime) -> datetime:
        """The end of the quiet hours `moment` (local, inside them) falls in."""
        end = _local(moment.date(), self.end, moment.tzinfo)
        return end if end > moment else _local(moment.date() + timedelta(days=1), self.end, moment.tzinfo)


def deliver_at(now: datetime, *, urgent: bool, digest: bool, quiet: QuietHours | None, digest_time: time,
               tz: ZoneInfo) -> datetime:
    """When the e-mail of a notification created at `now` is sent (aware UTC). Urgent, or no digest
    wanted: now. Otherwise the next `digest_time` at or after now. Either way, a time inside the quiet
    hours moves to their end: deferred, never dropped. Times of day are the deployment's (`tz`)."""
    if now.tzinfo is None:
        raise ValueError("now must carry its time zone")
    at = now.astimezone(tz)
    if digest and not urgent:
        today = _local(at.date(), digest_time, tz)
        at = today if today >= at else _local(at.date() + timedelta(days=1), digest_time, tz)
    if quiet is not None and quiet.contains(at.time()):
        at = quiet.end_after(at)
    return at.astimezone(UTC)


def _local(day: date, clock: time, tz) -> datetime:
    """The local time `clock` on `day`; one a DST change skips lands just after it (through UTC)."""
    return datetime.combine(day, clock.replace(tzinfo=None), tzinfo=tz).astimezone(UTC).astimezone(tz)
