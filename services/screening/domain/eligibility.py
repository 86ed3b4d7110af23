"""The eligibility recommendation that follows a verification visit (入户核查): pure rules, with reasons."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Findings:
    """What the verification visit found, per person and year where it is money."""

    per_capita_net_income: Decimal
    rigid_expenditure: Decimal  # per person: medical, schooling and other costs the household cannot avoid
    education_ok: bool  # compulsory education assured 义务教育有保障
    medical_ok: bool  # basic medical care assured 基本医疗有保障
    housing_safe: bool  # housing safe 住房安全有保障
    water_safe: bool  # drinking water safe 饮水安全有保障


@dataclass(frozen=True)
class Recommendation:
    eligible: bool
    reasons: tuple[str, ...]


def recommend(findings: Findings, monitoring_line: Decimal) -> Recommendation:
    """Eligible when income is under the line, or rigid expenditure leaves less than the line to live
    on, or one of the three guarantees or safe water is not assured. Every reason found is given."""
    reasons: list[str] = []
    income, expenditure = findings.per_capita_net_income, findings.rigid_expenditure
    if income < monitoring_line:
        reasons.append(f"per-capita net income {income} is under the monitoring line {monitoring_line}")
    if expenditure > 0 and income - expenditure < monitoring_line <= income:
        reasons.append(f"rigid expenditure {expenditure} leaves {income - expenditure} per person, "
                       f"under the monitoring line {monitoring_line}")
    for assured, what in ((findings.education_ok, "compulsory education"), (findings.medical_ok, "basic medical care"),
                          (findings.housing_safe, "safe housing"), (findings.water_safe, "safe drinking water")):
        if not assured:
            reasons.append(f"{what} is not assured")
    if not reasons:
        reasons.append(f"income {income} is at or above the monitoring line {monitoring_line}, rigid expenditure "
                       f"is borne and the three guarantees and drinking water are assured")
        return Recommendation(False, tuple(reasons))
    return Recommendation(True, tuple(reasons))
