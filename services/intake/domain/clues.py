"""Clues (风险线索): the priority groups of the concentrated screening (集中排查) a clue puts its
household in."""
from __future__ import annotations

from contracts.vocabulary import PriorityGroup, RiskType

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
