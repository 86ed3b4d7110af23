"""notifier's deployment data, loaded from data/*.csv here and nowhere else: the routing table and the
working calendar."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from services.notifier.domain.calendar import WorkingCalendar
from services.notifier.domain.routing import RoutingTable

DATA = Path(__file__).parent / "data"


@lru_cache(maxsize=4)
def routing_table(path: str | None) -> RoutingTable:
    """The table FANGPIN_NOTIFIER_ROUTING names; None: the one shipped with notifier."""
    return RoutingTable.from_csv(Path(path) if path else DATA / "routing.csv")


@lru_cache(maxsize=4)
def working_calendar(path: str | None) -> WorkingCalendar:
    """The calendar FANGPIN_WORKING_CALENDAR names; None: the one shipped with notifier."""
    return WorkingCalendar.from_csv(Path(path) if path else DATA / "working-calendar.csv")
