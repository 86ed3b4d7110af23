"""Monitoring lines (防止返贫监测范围) as data: a per-capita net income per region prefix and year."""
from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

from contracts.reference import MissingRegionYearValue, RegionYearTable, read_region_year_csv


class MissingMonitoringLine(MissingRegionYearValue):
    """No line is configured for a region and year: a configuration error, never a silent default."""


class MonitoringLines(RegionYearTable):
    """(region prefix, year) -> yuan per person per year."""

    missing = MissingMonitoringLine

    def __init__(self, lines: Mapping[tuple[str, int], Decimal]) -> None:
        super().__init__(lines, what="monitoring line", table="monitoring-lines table (FANGPIN_MONITORING_LINES)")

    def line_for(self, region_code: str, year: int) -> Decimal:
        """The line of the most specific prefix of `region_code` that has one for `year`."""
        return self.value_for(region_code, year)

    @classmethod
    def from_csv(cls, path: Path) -> "MonitoringLines":
        """Rows of `prefix,year,yuan`, e.g. `3404,2023,7900`."""
        return cls(read_region_year_csv(path))
