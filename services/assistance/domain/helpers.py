"""Choosing a household's helper (帮扶责任人): a helper of its village, else of its township, with the
fewest households (then the smallest id, so that the choice is repeatable). A helper past the limit
is still chosen, and reported: a household is better helped by a busy helper than by none."""
from __future__ import annotations

from dataclasses import dataclass

VILLAGE_DIGITS, TOWNSHIP_DIGITS = 12, 9


@dataclass(frozen=True)
class Helper:
    helper_id: str
    region_code: str  # a village (12 digits) or a township (9)
    households: int  # households they help now


@dataclass(frozen=True)
class Choice:
    helper: Helper | None  # None: no helper in the village or the township
    over_limit: bool = False


def choose_helper(helpers: list[Helper], household_region: str, limit: int) -> Choice:
    village = household_region[:VILLAGE_DIGITS]
    township = household_region[:TOWNSHIP_DIGITS]
    in_village = [h for h in helpers if h.region_code == village]
    in_reach = in_village or [h for h in helpers if h.region_code.startswith(township)]
    if not in_reach:
        return Choice(None)
    chosen = min(in_reach, key=lambda h: (h.households, h.helper_id))
    return Choice(chosen, over_limit=chosen.households + 1 > limit)
