"""Department warnings (部门筛查预警): the indicator catalogue, amounts' maxima, the thresholds table,
and the judgement of a warning (its risk types, or under its threshold)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from contracts.codes import Refusal
from contracts.fields import AMOUNT_CEILING
from contracts.reference import RegionYearTable
from contracts.vocabulary import RiskType


@dataclass(frozen=True)
class Indicator:
    """One entry of a department's indicator catalogue (部门预警指标)."""

    risk_types: tuple[RiskType, ...]
    # Held to a threshold: its amount is what the department reports for the year so far (e.g. a
    # person's out-of-pocket medical costs since 1 January), and an amount under the threshold of the
    # household's region and that year raises no risk. The amounts are local policy, so deployment
    # data (IndicatorThresholds), not code.
    thresholded: bool = False


INDICATOR_CATALOGUE: dict[str, dict[str, Indicator]] = {
    "civil_affairs": {
        "new_dibao": Indicator((RiskType.INCOME_DROP,)),
        "new_tekun": Indicator((RiskType.LACK_OF_LABOUR,)),
        "relief_application": Indicator((RiskType.EXPENSE_SURGE,)),
    },
    "medical_insurance": {"high_medical_expense": Indicator(
        (RiskType.ILLNESS, RiskType.EXPENSE_SURGE), thresholded=True)},
    # The income collection of the rural revitalisation bureau (乡村振兴局收入采集).
    "rural_revitalization": {
        "income_fell_last_year": Indicator((RiskType.INCOME_DROP,)),
        "income_fell_two_years": Indicator((RiskType.INCOME_DROP,)),
        "quarterly_income_fall": Indicator((RiskType.INCOME_DROP,)),
    },
    "health": {"serious_illness": Indicator((RiskType.ILLNESS,))},
    "disabled_persons_federation": {"disability_registered": Indicator((RiskType.DISABILITY,))},
    "emergency": {"disaster_loss": Indicator((RiskType.DISASTER,))},
    "human_resources": {"unemployment": Indicator((RiskType.UNSTABLE_EMPLOYMENT,))},
    "housing": {"unsafe_housing": Indicator((RiskType.HOUSING,))},
    "education": {"school_dropout": Indicator((RiskType.SCHOOLING,))},
    "water": {"unsafe_drinking_water": Indicator((RiskType.WATER,))},
    "public_security": {"accident": Indicator((RiskType.ACCIDENT,))},
    "agriculture": {"business_failure": Indicator((RiskType.BUSINESS_FAILURE,))},
}


# The most a warning's amount may be, in yuan, by indicator; the others are held to AMOUNT_CEILING.
# What the amount is depends on the indicator: a year's out-of-pocket medical costs, a loss, a
# household's yearly income or its fall, an allowance or relief asked for.
AMOUNT_MAXIMA: dict[str, Decimal] = {
    "high_medical_expense": Decimal("10000000"),
    "disaster_loss": Decimal("10000000"),
    "business_failure": Decimal("10000000"),
    "accident": Decimal("10000000"),
    "income_fell_last_year": Decimal("1000000"),
    "income_fell_two_years": Decimal("1000000"),
    "quarterly_income_fall": Decimal("1000000"),
    "new_dibao": Decimal("1000000"),
    "new_tekun": Decimal("1000000"),
    "relief_application": Decimal("1000000"),
}


def amount_maximum(indicator: str) -> Decimal:
    return AMOUNT_MAXIMA.get(indicator, AMOUNT_CEILING)


class UnknownIndicator(Refusal):
    def __init__(self, message: str) -> None:
        super().__init__("indicator_unknown", message)


def indicator_of(department: str, indicator: str) -> Indicator:
    catalogue = INDICATOR_CATALOGUE.get(department)
    if catalogue is None:
        raise UnknownIndicator(f"unknown department {department!r}; known: {', '.join(sorted(INDICATOR_CATALOGUE))}")
    entry = catalogue.get(indicator)
    if entry is None:
        raise UnknownIndicator(f"{department} has no indicator {indicator!r}; known: {', '.join(sorted(catalogue))}")
    return entry


class IndicatorThresholds(RegionYearTable):
    """Thresholds of department indicators (部门预警指标阈值): (department, indicator, region prefix,
    year) -> yuan, for the indicators the catalogue marks `thresholded`."""

    KEY_COLUMNS = ("department", "indicator")

    def __init__(self, rows: Mapping[tuple[str, str, str, int], Decimal]) -> None:
        with_threshold = sorted(f"{d}/{i}" for d, entries in INDICATOR_CATALOGUE.items()
                                for i, entry in entries.items() if entry.thresholded)
        for department, indicator, *_ in rows:
            if f"{department}/{indicator}" not in with_threshold:
                raise ValueError(f"{department}/{indicator} is not an indicator with a threshold; those with one: "
                                 f"{', '.join(with_threshold)}")
        super().__init__(rows, what="indicator threshold", key_columns=self.KEY_COLUMNS,
                         table="indicator-thresholds table (FANGPIN_INDICATOR_THRESHOLDS)")

    def threshold_for(self, department: str, indicator: str, region_code: str, year: int) -> Decimal:
        return self.value_for(region_code, year, (department, indicator))


def warning_problem(department: str, indicator: str, amount: Decimal | None,
                    over_threshold: bool | None) -> tuple[str, str, str] | None:
    """Why a department warning cannot be judged as sent, as (field, code, reason); None if it can."""
    try:
        entry = indicator_of(department, indicator)
    except UnknownIndicator as exc:
        return "indicator", "indicator_unknown", str(exc)
    if entry.thresholded and amount is None and over_threshold is None:
        return "amount", "amount_or_judgement_missing", (
            f"{department}/{indicator} is held to a threshold: give the amount, or over_threshold if {department} judged it")
    if not entry.thresholded and over_threshold is False:
        return ("over_threshold", "over_threshold_without_threshold",
                f"{department}/{indicator} has no threshold to be under: leave over_threshold out")
    return None


@dataclass(frozen=True)
class WarningJudgement:
    """What a department warning points to: its risk types, none when it is under its threshold."""

    risk_types: tuple[RiskType, ...]
    threshold: Decimal | None = None  # what the amount was held to; None: not held to one

    @property
    def below_threshold(self) -> bool:
        return not self.risk_types


def judge_warning(department: str, indicator: str, amount: Decimal | None, over_threshold: bool | None,
                  region_code: str, year: int, thresholds: IndicatorThresholds) -> WarningJudgement:
    """The risk types of a warning about a household of `region_code`, observed in `year`. The
    department's own judgement of the threshold (`over_threshold`) is taken as given; otherwise a
    thresholded indicator's amount is held to the threshold of the region and year, and a region and
    year without one raise MissingRegionYearValue (a configuration error: the row to add is named)."""
    entry = indicator_of(department, indicator)
    if not entry.thresholded or over_threshold is not None:
        return WarningJudgement(() if over_threshold is False else entry.risk_types)
    threshold = thresholds.threshold_for(department, indicator, region_code, year)
    over = amount is not None and amount >= threshold
    return WarningJudgement(entry.risk_types if over else (), threshold)


def below_threshold_reason(department: str, indicator: str, amount: Decimal | None, observed_year: int,
                           threshold: Decimal | None) -> tuple[str, str]:
    """Why a warning raised no clue, as (code, reason)."""
    if threshold is None:
        return "department_judged_under_threshold", (
            f"{department} judged it under the threshold of {indicator} (over_threshold false); no clue raised")
    return "amount_under_threshold", (
        f"{amount} is under the threshold of {threshold} for {indicator} in {observed_year}; no clue raised")
