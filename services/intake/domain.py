"""Pure decisions of intake: ID numbers, households, department warnings and the clues they raise."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from operator import mul

from contracts.fields import AMOUNT_CEILING
from contracts.intake import HouseholdRegistered, HouseholdUpdated, MemberFacts
from contracts.reference import RegionYearTable
from contracts.vocabulary import LaborCapacity, PriorityGroup, RiskType

REGION_CODE = re.compile(r"^\d{12}$")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_SHAPE = re.compile(r"[0-9]{17}[0-9X]")  # ASCII digits only (\d would also take other scripts' digits)


class InvalidIdNumber(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code  # the rule (contracts/codes.py)


_ASCII_ZERO_WEIGHED = ord("0") * sum(_ID_WEIGHTS)


def id_check_digit(first17: str) -> str:
    """GB 11643 check character for the first 17 digits of a citizen ID number (weighed as their
    character codes, less those of zeros: no int() per digit)."""
    return _ID_CHECK[(sum(map(mul, first17.encode(), _ID_WEIGHTS)) - _ASCII_ZERO_WEIGHED) % 11]


def parse_id_number(id_number: str) -> date:
    """Validate an 18-character ID number and return the birth date it carries."""
    value = id_number.strip().upper()
    if not _ID_SHAPE.fullmatch(value):
        raise InvalidIdNumber("id_number_malformed", "must be 17 digits followed by a digit or X")
    if id_check_digit(value[:17]) != value[17]:
        raise InvalidIdNumber("id_number_check_digit_wrong", "check digit does not match (GB 11643)")
    try:
        return date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError as exc:
        raise InvalidIdNumber("id_number_birth_date_invalid", f"birth date {value[6:14]} is not a date") from exc


def mask_id_number(id_number: str) -> str:
    """Shown to everyone as 410721********1234."""
    return f"{id_number[:6]}{'*' * 8}{id_number[-4:]}"


def age_on(birth_date: date, today: date) -> int:
    return today.year - birth_date.year - ((today.month, today.day) < (birth_date.month, birth_date.day))


@dataclass(frozen=True)
class Member:
    member_id: str  # pseudonymous: derived from the keyed hash of the ID number
    relation: str
    birth_date: date
    labor_capacity: LaborCapacity
    disabled: bool
    in_school: bool


@dataclass(frozen=True)
class HouseholdFacts:
    household_id: str
    region_code: str
    group: str | None
    poverty_status: str
    grid_worker_id: str | None
    members: tuple[Member, ...]


def register_or_update(
    current: HouseholdRegistered | HouseholdUpdated | None, facts: HouseholdFacts, today: date
) -> list[HouseholdRegistered | HouseholdUpdated]:
    """A new household is registered; a changed one updated; an unchanged one yields nothing."""
    fields = dict(
        household_id=facts.household_id,
        region_code=facts.region_code,
        group=facts.group,
        poverty_status=facts.poverty_status,
        grid_worker_id=facts.grid_worker_id,
        members=[
            MemberFacts(
                member_id=m.member_id, relation=m.relation, age=age_on(m.birth_date, today),
                labor_capacity=m.labor_capacity, disabled=m.disabled, in_school=m.in_school,
            )
            for m in facts.members
        ],
    )
    if current is None:
        return [HouseholdRegistered(**fields)]
    if current.model_dump() == HouseholdUpdated(**fields).model_dump():
        return []
    return [HouseholdUpdated(**fields)]


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


class UnknownIndicator(ValueError):
    pass


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


_SHOCKS = {RiskType.UNSTABLE_EMPLOYMENT, RiskType.BUSINESS_FAILURE, RiskType.ACCIDENT}
# The groups of 'this year' (当年), those priority_groups holds to current_year: a clue is in them for
# the screening of the year its facts are from, and in no other year's.
GROUPS_OF_THE_YEAR = frozenset({PriorityGroup.NEW_ALLOWANCE_OR_EXTREME_POVERTY, PriorityGroup.QUARTERLY_INCOME_FALL})


def priority_groups(
    department: str | None, indicator: str | None, risk_types: list[RiskType], observed_year: int,
    poverty_status: str, current_year: int,
) -> list[PriorityGroup]:
    """Which of the five groups of the concentrated screening a clue puts its household in."""
    groups = []
    formerly_poor = poverty_status == "out_of_poverty"
    if department == "civil_affairs" and indicator in ("new_dibao", "new_tekun") and observed_year == current_year:
        groups.append(PriorityGroup.NEW_ALLOWANCE_OR_EXTREME_POVERTY)
    if formerly_poor and department == "rural_revitalization":
        if indicator in ("income_fell_last_year", "income_fell_two_years"):
            groups.append(PriorityGroup.INCOME_FELL_LAST_YEAR)
        if indicator == "quarterly_income_fall" and observed_year == current_year:
            groups.append(PriorityGroup.QUARTERLY_INCOME_FALL)
    if _SHOCKS & set(risk_types):
        groups.append(PriorityGroup.SHOCK)
    if department == "civil_affairs" and indicator == "relief_application":
        groups.append(PriorityGroup.RELIEF_APPLICATION)
    return groups


@dataclass(frozen=True)
class RegionTable:
    """The deployment's 12-digit village codes (统计用区划代码)."""

    villages: frozenset[str]

    def problem_with(self, region_code: str) -> str | None:
        if region_code not in self.villages:
            return f"{region_code} is not a village in the region table"
        return None


def grid_worker_overloaded(household_count: int, limit: int) -> bool:
    """A grid worker (网格员) looks after at most `limit` households (15 in the seeds): more is
    reported, not refused."""
    return household_count > limit


def overloaded_grid_workers(loads: dict[str, int], limit: int) -> list[str]:
    return [f"grid worker {worker} has {count} households, more than {limit}"
            for worker, count in sorted(loads.items()) if grid_worker_overloaded(count, limit)]
