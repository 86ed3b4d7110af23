"""Monitoring lines (防止返贫监测范围) as data: a per-capita net income per region prefix and year."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path


class MissingMonitoringLine(LookupError):
    """No line is configured for a region and year: a configuration error, never a silent default."""


@dataclass(frozen=True)
class MonitoringLines:
    lines: dict[tuple[str, int], Decimal]  # (region prefix, year) -> yuan per person per year

    def line_for(self, region_code: str, year: int) -> Decimal:
        """The line of the most specific prefix of `region_code` that has one for `year`."""
        for length in range(len(region_code), 0, -1):
            found = self.lines.get((region_code[:length], year))
            if found is not None:
                return found
        raise MissingMonitoringLine(
            f"no monitoring line for region {region_code} in {year}: add a row (prefix,year,yuan) "
            f"for it or for a prefix of it to the monitoring-lines table")

    @classmethod
    def from_csv(cls, path: Path) -> "MonitoringLines":
        """Rows of `prefix,year,yuan`, e.g. `3404,2023,7900`."""
        lines: dict[tuple[str, int], Decimal] = {}
        with path.open(newline="", encoding="utf-8") as f:
            for number, row in enumerate(csv.DictReader(f), start=2):
                prefix, year, yuan = row["prefix"].strip(), row["year"].strip(), row["yuan"].strip()
                if not (prefix.isdigit() and len(prefix) <= 12 and year.isdigit()):
                    raise ValueError(f"{path}:{number}: prefix must be up to 12 digits and year a year")
                key = (prefix, int(year))
                if key in lines:
                    raise ValueError(f"{path}:{number}: {prefix} {year} is given twice")
                lines[key] = Decimal(yuan)
        return cls(lines)
