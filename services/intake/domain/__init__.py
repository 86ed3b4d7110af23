"""Pure decisions of intake: ID numbers, households, department warnings, visits and the clues they raise."""
from services.intake.domain.clues import GROUPS_OF_THE_YEAR, priority_groups
from services.intake.domain.households import (REGION_CODE, HouseholdFacts, HouseholdNotFound, Member, NotOwnHousehold,
                                               RegionTable, age_on, grid_worker_overloaded, head_of_household,
                                               mask_name, overloaded_grid_workers, register_or_update)
from services.intake.domain.id_numbers import InvalidIdNumber, id_check_digit, mask_id_number, parse_id_number
from services.intake.domain.visits import VisitRefused, check_visited_household, check_visitor
from services.intake.domain.warnings import (AMOUNT_MAXIMA, INDICATOR_CATALOGUE, Indicator, IndicatorThresholds,
                                             UnknownIndicator, WarningJudgement, amount_maximum,
                                             below_threshold_reason, indicator_of, judge_warning, warning_problem)

__all__ = ["GROUPS_OF_THE_YEAR", "priority_groups", "REGION_CODE", "HouseholdFacts", "HouseholdNotFound", "Member",
           "NotOwnHousehold", "RegionTable", "age_on", "grid_worker_overloaded", "overloaded_grid_workers",
           "register_or_update", "head_of_household", "mask_name", "InvalidIdNumber", "id_check_digit", "mask_id_number", "parse_id_number",
           "VisitRefused", "check_visited_household", "check_visitor", "AMOUNT_MAXIMA", "INDICATOR_CATALOGUE",
           "Indicator", "IndicatorThresholds", "UnknownIndicator", "WarningJudgement", "amount_maximum",
           "below_threshold_reason", "indicator_of", "judge_warning", "warning_problem"]
