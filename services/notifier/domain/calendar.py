"""Working days (工作日): weekends and the State Council's holidays are not, its make-up days
(调休上班) on a weekend are. The holiday list is data (services/notifier/data/working-calendar.csv,
or the file FANGPIN_WORKING_CALENDAR names), checked by a deployment against each year's notice."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo


class CalendarError(ValueError):
    pass


@dataclass(frozen=True)
class WorkingCalendar:
    holidays: frozenset[date]
    make_up_days: frozenset[date]

    def is_working_day(self, day: date) -> bool:
        if day in self.make_up_days:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def add_working_days(self, moment: datetime, days: int, tz: ZoneInfo) -> datetime:
        """The moment `days` working days after (negative: before) `moment`, at the same local time.
        From a day off, the count starts at that day's next working day (a task due on a Saturday
        escalates a working day after the Monday, not after the Saturday)."""
        local = moment.astimezone(tz)
        day = local.date()
        step = 1 if days >= 0 else -1
        while not self.is_working_day(day):
            day += timedelta(days=step)
        for _ in range(abs(days)):
            day += timedelta(days=step)
            while not self.is_working_day(day):
                day += timedelta(days=step)
        return datetime.combine(day, local.timetz().replace(tzinfo=None), tzinfo=tz).astimezone(moment.tzinfo)

    @classmethod
    def from_csv(cls, path: Path) -> "WorkingCalendar":
        holidays, make_up = set(), set()
        with path.open(encoding="utf-8") as file:
            reader = csv.DictReader(file)
            for row in reader:
                try:
                    day = date.fromisoformat(row["date"])
                except (ValueError, TypeError):
                    raise CalendarError(f"{path} line {reader.line_num}: date {row['date']!r} is not YYYY-MM-DD") from None
                if row["kind"] == "holiday":
                    holidays.add(day)
                elif row["kind"] == "workday":
                    make_up.add(day)
                else:
                    raise CalendarError(f"{path} line {reader.line_num}: kind must be holiday or workday")
        return cls(frozenset(holidays), frozenset(make_up))


def end_of_day(day: date, tz: ZoneInfo) -> datetime:
    """A step "due on" a day is due at that day's end, local time (the next midnight)."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
