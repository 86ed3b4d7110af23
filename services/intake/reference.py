"""intake's deployment data, from data/*.csv: the region table (统计用区划代码) and the thresholds of
department indicators. A setting names each file; without one, the demo county's is read."""
from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

from contracts.reference import read_region_year_csv
from services.intake.domain import IndicatorThresholds, RegionTable

DATA = Path(__file__).parent / "data"
DEMO_REGION_TABLE = DATA / "regions-410721-demo.csv"
DEMO_INDICATOR_THRESHOLDS = DATA / "indicator-thresholds-demo.csv"


@lru_cache(maxsize=4)
def load_region_table(path: str | None) -> RegionTable:
    source = Path(path) if path else DEMO_REGION_TABLE
    with source.open(newline="", encoding="utf-8") as f:
        names = {row["code"].strip(): (row.get("name") or "").strip() for row in csv.DictReader(f)}
    return RegionTable(frozenset(c for c in names if len(c) == 12 and not c.endswith("000")),
                       {code: name for code, name in names.items() if name})


@lru_cache(maxsize=4)
def load_indicator_thresholds(path: str | None) -> IndicatorThresholds:
    source = Path(path) if path else DEMO_INDICATOR_THRESHOLDS
    rows = read_region_year_csv(source, IndicatorThresholds.KEY_COLUMNS)
    try:
        return IndicatorThresholds(rows)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
