"""screening's deployment data, loaded from data/*.csv here and nowhere else: the monitoring lines."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from services.screening.domain import MonitoringLines

DATA = Path(__file__).parent / "data"


@lru_cache(maxsize=4)
def monitoring_lines(path: str | None) -> MonitoringLines:
    """The table FANGPIN_MONITORING_LINES names; None: the demo county's."""
    return MonitoringLines.from_csv(Path(path) if path else DATA / "monitoring-lines-demo.csv")
