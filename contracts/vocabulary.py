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


class PriorityGroup(StrEnum):
    """The five groups every household of which is visited in a concentrated screening
    (集中排查 5 类对象, seeds/003)."""

    NEW_ALLOWANCE_OR_EXTREME_POVERTY = "new_allowance_or_extreme_poverty"  # 当年新识别低保对象或分散供养特困人员
    INCOME_FELL_LAST_YEAR = "formerly_poor_income_fell"  # 上年收入下降或连续两年下降的脱贫户
    QUARTERLY_INCOME_FALL = "formerly_poor_quarterly_income_fall"  # 当年季度收入明显下降的脱贫户
    SHOCK = "employment_business_or_accident_shock"  # 就业不稳、产业失败或突发意外事故
    RELIEF_APPLICATION = "relief_application"  # 通过政府救助平台申请过救助


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
