"""Terms shared by several services."""
from enum import StrEnum


class RiskType(StrEnum):
    """Risk types of a monitoring subject (风险类型)."""

    ILLNESS = "illness"
    DISABILITY = "disability"
    SCHOOLING = "schooling"
    DISASTER = "disaster"
    ACCIDENT = "accident"
    UNSTABLE_EMPLOYMENT = "unstable_employment"
    BUSINESS_FAILURE = "business_failure"
    LACK_OF_LABOUR = "lack_of_labour"
    HOUSING = "housing"
    WATER = "water"
    INCOME_DROP = "income_drop"
    EXPENSE_SURGE = "expense_surge"
    OTHER = "other"


class ClueChannel(StrEnum):
    """The three channels a risk clue comes through (线索来源)."""

    SELF_DECLARATION = "self_declaration"  # 农户自主申报
    GRID_VISIT = "grid_visit"  # 基层干部排查
    DEPARTMENT_WARNING = "department_warning"  # 部门筛查预警


class LaborCapacity(StrEnum):
    FULL = "full"
    WEAK = "weak"
    NONE = "none"


class StaffRole(StrEnum):
    GRID_WORKER = "grid_worker"
    VILLAGE_CADRE = "village_cadre"
    WORK_TEAM = "work_team"
    HELPER = "helper"
    TOWNSHIP_OFFICER = "township_officer"
    COUNTY_OFFICER = "county_officer"
    DEPARTMENT_LIAISON = "department_liaison"
