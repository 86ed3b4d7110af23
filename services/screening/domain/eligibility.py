"""The eligibility recommendation that follows a verification visit (入户核查): pure rules, with reasons."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from contracts.codes import text_zh


@dataclass(frozen=True)
class Findings:
    """What the verification visit found, per person and year where it is money."""

    per_capita_net_income: Decimal
    rigid_expenditure: Decimal  # per person: medical, schooling and other costs the household cannot avoid
    education_ok: bool  # compulsory education assured 义务教育有保障
    medical_ok: bool  # basic medical care assured 基本医疗有保障
    housing_safe: bool  # housing safe 住房安全有保障
    water_safe: bool  # drinking water safe 饮水安全有保障


class Eligibility(StrEnum):
    """What the findings recommend to the village deliberation (村级评议)."""

    ELIGIBLE = "eligible"
    NOT_ELIGIBLE = "not_eligible"


class ReasonCode(StrEnum):
    """Stable codes of the reasons a recommendation gives: callers match on these, never on the text.
    Each is registered in contracts/codes.py with its Chinese term."""

    INCOME_UNDER_LINE = "income_under_line"
    RIGID_EXPENDITURE_LEAVES_UNDER_LINE = "rigid_expenditure_leaves_under_line"
    EDUCATION_NOT_ASSURED = "education_not_assured"
    MEDICAL_CARE_NOT_ASSURED = "medical_care_not_assured"
    HOUSING_NOT_SAFE = "housing_not_safe"
    DRINKING_WATER_NOT_SAFE = "drinking_water_not_safe"
    ABOVE_LINE_AND_ASSURED = "above_line_and_assured"


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    text: str  # with the figures of the case

    @property
    def text_zh(self) -> str:
        return text_zh(self.code)


@dataclass(frozen=True)
class Recommendation:
    eligible: bool
    reasons: tuple[Reason, ...]

    @property
    def eligibility(self) -> Eligibility:
        return Eligibility.ELIGIBLE if self.eligible else Eligibility.NOT_ELIGIBLE


def recommend(findings: Findings, monitoring_line: Decimal) -> Recommendation:
    """Eligible when income is under the line, or rigid expenditure leaves less than the line to live
    on, or one of the three guarantees or safe water is not assured. Every reason found is given."""
    reasons: list[Reason] = []
    income, expenditure = findings.per_capita_net_income, findings.rigid_expenditure
    if income < monitoring_line:
        reasons.append(Reason(ReasonCode.INCOME_UNDER_LINE,
                              f"per-capita net income {income} is under the monitoring line {monitoring_line}"))
    if expenditure > 0 and income - expenditure < monitoring_line <= income:
        reasons.append(Reason(ReasonCode.RIGID_EXPENDITURE_LEAVES_UNDER_LINE,
                              f"rigid expenditure {expenditure} leaves {income - expenditure} per person, "
                              f"under the monitoring line {monitoring_line}"))
    for assured, code, what in (
            (findings.education_ok, ReasonCode.EDUCATION_NOT_ASSURED, "compulsory education"),
            (findings.medical_ok, ReasonCode.MEDICAL_CARE_NOT_ASSURED, "basic medical care"),
            (findings.housing_safe, ReasonCode.HOUSING_NOT_SAFE, "safe housing"),
            (findings.water_safe, ReasonCode.DRINKING_WATER_NOT_SAFE, "safe drinking water")):
        if not assured:
            reasons.append(Reason(code, f"{what} is not assured"))
    if not reasons:
        reasons.append(Reason(ReasonCode.ABOVE_LINE_AND_ASSURED,
                              f"income {income} is at or above the monitoring line {monitoring_line}, rigid "
                              f"expenditure is borne and the three guarantees and drinking water are assured"))
        return Recommendation(False, tuple(reasons))
    return Recommendation(True, tuple(reasons))
