"""Deployment data per region prefix and year (contracts.reference), as monitoring lines and indicator
thresholds both use it (pure, and reading its CSV)."""
from decimal import Decimal
from pathlib import Path

import pytest

from contracts.reference import (MissingMonitoringLine, MissingRegionYearValue, MonitoringLines, RegionYearTable,
                                 read_region_year_csv)
from services.intake.domain import IndicatorThresholds

ROOT = Path(__file__).parents[3]


def table(rows, key_columns=()) -> RegionYearTable:
    return RegionYearTable(rows, what="allowance", table="allowances table", key_columns=key_columns)


def test_the_most_specific_prefix_with_a_value_for_the_key_and_year_wins():
    rates = table({("a", "41", 2026): Decimal("1"), ("a", "410721", 2026): Decimal("2"),
                   ("b", "410721001", 2026): Decimal("3"), ("a", "410721", 2025): Decimal("4")}, ("kind",))
    assert rates.value_for("410721001001", 2026, ("a",)) == Decimal("2")
    assert rates.value_for("410721001001", 2026, ("b",)) == Decimal("3")
    assert rates.value_for("410722001001", 2026, ("a",)) == Decimal("1")
    assert rates.value_for("410721001001", 2025, ("a",)) == Decimal("4")
    with pytest.raises(MissingRegionYearValue, match=r"no allowance of b for region 410721002001 in 2026: add a row "
                                                     r"\(kind,prefix,year,yuan\) .* allowances table, "
                                                     r"e\.g\. b,410721002001,2026,<yuan>"):
        rates.value_for("410721002001", 2026, ("b",))


def test_each_table_raises_its_own_missing_error_which_is_also_the_shared_one():
    with pytest.raises(MissingMonitoringLine, match="no monitoring line for region 410721001001 in 2019"):
        MonitoringLines({("410721", 2026): Decimal("8000")}).line_for("410721001001", 2019)
    assert issubclass(MissingMonitoringLine, MissingRegionYearValue)


def test_the_shipped_tables_load():
    thresholds = IndicatorThresholds(read_region_year_csv(
        ROOT / "services/intake/data/indicator-thresholds-demo.csv", IndicatorThresholds.KEY_COLUMNS))
    assert [thresholds.threshold_for("medical_insurance", "high_medical_expense", "410721001001", year)
            for year in (2020, 2026, 2027)] == [Decimal("10000")] * 3
    lines = MonitoringLines.from_csv(ROOT / "contracts/data/monitoring-lines-demo.csv")
    assert lines.line_for("410721001001", 2026) == Decimal("8000")


@pytest.mark.parametrize("text, refusal", [
    ("department,prefix,year,yuan\nm,410721,2026,1\n", "the header must name the columns department,indicator,prefix"),
    ("department,indicator,prefix,year,yuan\nm,,410721,2026,1\n", ":2: department, indicator must not be empty"),
    ("department,indicator,prefix,year,yuan\nm,i,4107x1,2026,1\n", ":2: prefix must be 1 to 12 digits"),
    ("department,indicator,prefix,year,yuan\nm,i,4107210010011,2026,1\n", ":2: prefix must be 1 to 12 digits"),
    ("department,indicator,prefix,year,yuan\nm,i,410721,26,1\n", ":2: year must be a year"),
    ("department,indicator,prefix,year,yuan\nm,i,410721,2026,ten\n", ":2: yuan must be an amount of 0 or more"),
    ("department,indicator,prefix,year,yuan\nm,i,410721,2026,-1\n", ":2: yuan must be an amount of 0 or more"),
    ("department,indicator,prefix,year,yuan\nm,i,410721,2026,NaN\n", ":2: yuan must be an amount of 0 or more"),
    ("department,indicator,prefix,year,yuan\nm,i,410721,2026,1\nm,i,410721,2026,2\n", ":3: m,i,410721,2026 is given twice"),
])
def test_a_malformed_table_is_refused_with_its_file_and_line(tmp_path, text, refusal):
    path = tmp_path / "table.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=refusal):
        read_region_year_csv(path, ("department", "indicator"))
