"""Pure decisions of intake: ID numbers, households, department warnings and the clues they raise."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from operator import mul

from contracts.fields import AMOUNT_CEILING
from contracts.intake import HouseholdRegistered, HouseholdUpdated, MemberFacts
from contracts.vocabulary import LaborCapacity, PriorityGroup, RiskType

REGION_CODE = re.compile(r"^\d{12}$")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_SHAPE = re.compile(r"[0-9]{17}[0-9X]")  # ASCII digits only (\d would also take other scripts' digits)


class InvalidIdNumber(ValueError):
    pass


_ASCII_ZERO_WEIGHED = ord("0") * sum(_ID_WEIGHTS)


def id_check_digit(first17: str) -> str:
    """GB 11643 check character for the first 17 digits of a citizen ID number (weighed as their
    character codes, less those of zeros: no int() per digit)."""
    return _ID_CHECK[(sum(map(mul, first17.encode(), _ID_WEIGHTS)) - _ASCII_ZERO_WEIGHED) % 11]


def parse_id_number(id_number: str) -> date:
    """Validate an 18-character ID number and return the birth date it carries."""
    value = id_number.strip().upper()
    if not _ID_SHAPE.fullmatch(value):
        raise InvalidIdNumber("must be 17 digits followed by a digit or X")
    if id_check_digit(value[:17]) != value[17]:
        raise InvalidIdNumber("check digit does not match (GB 11643)")
    try:
        return date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError as exc:
        raise InvalidIdNumber(f"birth date {value[6:14]} is not a date") from exc


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
    # Yearly thresholds, (first year, amount) in year order: an amount below the one in force in the
    # year it was observed raises no risk. The amount is what the department reports for that year
    # so far (e.g. a person's out-of-pocket medical costs since 1 January).
    yearly_thresholds: tuple[tuple[int, Decimal], ...] = ()

    def threshold_in(self, year: int) -> Decimal | None:
        in_force = [amount for first_year, amount in self.yearly_thresholds if first_year <= year]
        return in_force[-1] if in_force else None


INDICATOR_CATALOGUE: dict[str, dict[str, Indicator]] = {
    "civil_affairs": {
        "new_dibao": Indicator((RiskType.INCOME_DROP,)),
        "new_tekun": Indicator((RiskType.LACK_OF_LABOUR,)),
        "relief_application": Indicator((RiskType.EXPENSE_SURGE,)),
    },
    "medical_insurance": {"high_medical_expense": Indicator(
        (RiskType.ILLNESS, RiskType.EXPENSE_SURGE), ((2000, Decimal("10000")),))},
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


def risk_types_of_warning(department: str, indicator: str, amount: Decimal | None, year: int) -> list[RiskType]:
    """The risk types a department warning observed in `year` points to; below its threshold, none."""
    catalogue = INDICATOR_CATALOGUE.get(department)
    if catalogue is None:
        raise UnknownIndicator(f"unknown department {department!r}; known: {', '.join(sorted(INDICATOR_CATALOGUE))}")
    entry = catalogue.get(indicator)
    if entry is None:
        raise UnknownIndicator(f"{department} has no indicator {indicator!r}; known: {', '.join(sorted(catalogue))}")
    threshold = entry.threshold_in(year)
    if threshold is not None and (amount is None or amount < threshold):
        return []
    return list(entry.risk_types)


_SHOCKS = {RiskType.UNSTABLE_EMPLOYMENT, RiskType.BUSINESS_FAILURE, RiskType.ACCIDENT}


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


def overloaded_grid_workers(loads: dict[str, int], limit: int) -> list[str]:
    """A grid worker (网格员) looks after at most `limit` households (15 in the seeds): reported, not refused."""
    return [f"grid worker {worker} has {count} households, more than {limit}"
            for worker, count in sorted(loads.items()) if count > limit]
