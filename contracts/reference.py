"""Deployment data given per region and year (monitoring lines, indicator thresholds): an amount in
yuan per region-code prefix and year, optionally per key (a department's indicator). The most
specific prefix of a region code with a row for the year wins; a region and year that no row covers
is a configuration error naming the row to add, never a silent default."""
from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import ClassVar

REGION_YEAR_COLUMNS = ("prefix", "year", "yuan")


class MissingRegionYearValue(LookupError):
    """No row covers a region and year: a configuration error, never a silent default."""


@dataclass(frozen=True)
class RegionYearTable:
    rows: Mapping[tuple, Decimal]  # (*key, prefix, year) -> yuan
    what: str  # what a row gives, as errors name it: "monitoring line"
    table: str  # where a missing row goes, as errors name it: "monitoring-lines table (FANGPIN_MONITORING_LINES)"
    key_columns: tuple[str, ...] = ()  # the columns before `prefix`, e.g. ("department", "indicator")
    missing: ClassVar[type[MissingRegionYearValue]] = MissingRegionYearValue

    def value_for(self, region_code: str, year: int, key: tuple[str, ...] = ()) -> Decimal:
        """The value of the most specific prefix of `region_code` that has one for `year`."""
        for length in range(len(region_code), 0, -1):
            found = self.rows.get((*key, region_code[:length], year))
            if found is not None:
                return found
        of = f" of {'/'.join(key)}" if key else ""
        columns = ",".join((*self.key_columns, *REGION_YEAR_COLUMNS))
        example = ",".join((*key, region_code, str(year), "<yuan>"))
        raise self.missing(f"no {self.what}{of} for region {region_code} in {year}: add a row ({columns}) for it "
                           f"or for a prefix of it to the {self.table}, e.g. {example}")


def read_region_year_csv(path: Path, key_columns: tuple[str, ...] = ()) -> dict[tuple, Decimal]:
    """The rows of a CSV with a header of `key_columns` then `prefix,year,yuan`, e.g.
    `3404,2023,7900`; a malformed or repeated row is refused with its file and line."""
    rows: dict[tuple, Decimal] = {}
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = (*key_columns, *REGION_YEAR_COLUMNS)
        if not set(columns) <= set(reader.fieldnames or ()):
            raise ValueError(f"{path}: the header must name the columns {','.join(columns)}")
        for number, row in enumerate(reader, start=2):
            key = tuple((row[c] or "").strip() for c in key_columns)
            prefix, year, yuan = ((row[c] or "").strip() for c in REGION_YEAR_COLUMNS)
            if not all(key):
                raise ValueError(f"{path}:{number}: {', '.join(key_columns)} must not be empty")
            if not (prefix.isascii() and prefix.isdigit() and len(prefix) <= 12):
                raise ValueError(f"{path}:{number}: prefix must be 1 to 12 digits, not {prefix!r}")
            if not (year.isascii() and year.isdigit() and len(year) == 4):
                raise ValueError(f"{path}:{number}: year must be a year such as 2026, not {year!r}")
            try:
                amount = Decimal(yuan)
            except InvalidOperation:
                amount = Decimal("NaN")
            if not amount.is_finite() or amount < 0:
                raise ValueError(f"{path}:{number}: yuan must be an amount of 0 or more, not {yuan!r}")
            if (*key, prefix, int(year)) in rows:
                raise ValueError(f"{path}:{number}: {','.join((*key, prefix, year))} is given twice")
            rows[(*key, prefix, int(year))] = amount
    return rows


class MissingMonitoringLine(MissingRegionYearValue):
    """No line is configured for a region and year: a configuration error, never a silent default."""


class MonitoringLines(RegionYearTable):
    """Monitoring lines (防止返贫监测范围) as data: (region prefix, year) -> yuan per person per year.
    Screening holds a household's findings to them; exit review its incomes over the look-back."""

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


DEMO_MONITORING_LINES = Path(__file__).parent / "data" / "monitoring-lines-demo.csv"


@lru_cache(maxsize=4)
def monitoring_lines(path: str | None) -> MonitoringLines:
    """The table FANGPIN_MONITORING_LINES names (the same for every service that reads it); None: the
    demo county's."""
    return MonitoringLines.from_csv(Path(path) if path else DEMO_MONITORING_LINES)
