"""Households: registering or updating one, the region table its village code is held to, the grid
workers' loads, and the refusals of commands about a household."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from contracts.codes import Refusal
from contracts.intake import HouseholdRegistered, HouseholdUpdated, MemberFacts
from contracts.vocabulary import LaborCapacity

REGION_CODE = re.compile(r"^\d{12}$")


class HouseholdNotFound(Refusal):
    def __init__(self, message: str) -> None:
        super().__init__("household_not_found", message)


class NotOwnHousehold(Refusal):
    """A household's token (of its QR code) acts for that household and its members only."""

    def __init__(self, message: str) -> None:
        super().__init__("not_own_household", message)


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
class RegionTable:
    """The deployment's 12-digit village codes (统计用区划代码) and the names of its regions."""

    villages: frozenset[str]
    names: dict[str, str] = field(default_factory=dict, compare=False)

    def name_of(self, region_code: str) -> str | None:
        return self.names.get(region_code)

    def problem_with(self, region_code: str) -> str | None:
        if region_code not in self.villages:
            return f"{region_code} is not a village in the region table"
        return None


HEAD_RELATIONS = frozenset({"head", "户主"})  # how the registry names the head of household


def head_of_household(members: list):
    """The member (anything with a `relation`) registered as head of household (户主), None if none is."""
    return next((m for m in members if m.relation in HEAD_RELATIONS), None)


def mask_name(name: str) -> str:
    """A name shown outside the registry: first and last character kept, 张三明 -> 张*明, 张三 -> 张*."""
    name = name.strip()
    if len(name) <= 1:
        return "*"
    if len(name) == 2:
        return f"{name[0]}*"
    return f"{name[0]}{'*' * (len(name) - 2)}{name[-1]}"


def grid_worker_overloaded(household_count: int, limit: int) -> bool:
    """A grid worker (网格员) looks after at most `limit` households (15 in the seeds): more is
    reported, not refused."""
    return household_count > limit


def overloaded_grid_workers(loads: dict[str, int], limit: int) -> list[str]:
    return [f"grid worker {worker} has {count} households, more than {limit}"
            for worker, count in sorted(loads.items()) if grid_worker_overloaded(count, limit)]
