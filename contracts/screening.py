"""Events published by screening on `fangpin.screening.events`."""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from contracts.base import EventPayload
from contracts.vocabulary import RiskType


class _ScreeningEvent(EventPayload):
    producer = "screening"


class VerificationCaseOpened(_ScreeningEvent):
    """One open verification case (核查) per household; later clues attach to it."""

    case_id: str
    household_id: str
    region_code: str
    clue_id: str
    risk_types: list[RiskType]
    step: str
    due_date: date


class ClueAttachedToCase(_ScreeningEvent):
    case_id: str
    household_id: str
    clue_id: str
    risk_types: list[RiskType]


class SubjectRiskAdded(_ScreeningEvent):
    """A clue about a household already monitored: a new risk of the subject, not a new case."""

    household_id: str
    clue_id: str
    risk_types: list[RiskType]


class RemovalProposed(_ScreeningEvent):
    """清退 proposed by the township: the identification was wrong."""

    household_id: str
    reason: str


class SubjectRemoved(_ScreeningEvent):
    household_id: str
    comment: str = ""


class RemovalRejected(_ScreeningEvent):
    household_id: str
    comment: str = ""


class ProtectionProposed(_ScreeningEvent):
    """整户无劳动能力兜底保障户 proposed by the village."""

    household_id: str
    note: str = ""


class SubjectProtected(_ScreeningEvent):
    household_id: str
    comment: str = ""


class ProtectionDeclined(_ScreeningEvent):
    household_id: str
    comment: str = ""


class SubjectRiskEliminated(_ScreeningEvent):
    """exit_review approved the subject's exit (风险消除): `exit_id` is its decision."""

    household_id: str
    exit_id: str


class SubjectMonitoredAgain(_ScreeningEvent):
    """exit_review rolled the exit back (风险消除回退): the subject is monitored again."""

    household_id: str
    exit_id: str


class AllowanceWatchesChecked(_ScreeningEvent):
    """The out-of-loop check (体外循环) looked at these allowance clues once their days ran out:
    each either ended in a subject or an open case, or raised a QualityIssueRaised. One event per
    run of the check, however many clues."""

    clue_ids: list[str]


class QualityIssueRaised(_ScreeningEvent):
    """A check found something that slipped through, e.g. 体外循环: a new minimum-allowance or
    extreme-poverty household that is neither a subject nor in an open case."""

    issue_id: str
    household_id: str
    region_code: str
    kind: str
    detail: str


class CaseStepOverdue(_ScreeningEvent):
    """A ladder step passed its due date; the notifier escalates."""

    case_id: str
    household_id: str
    region_code: str
    step: str
    due_date: date


class _CaseStep(_ScreeningEvent):
    """A step of the identification ladder; `step` is where the case stands after it, and
    `due_date` when that step is due (set on the last event of a step; none: the date stands)."""

    case_id: str
    household_id: str
    step: str
    due_date: date | None = None


class HouseholdVerified(_CaseStep):
    """The verification visit's findings (入户核查) and the eligibility recommendation they give."""

    per_capita_net_income: Decimal
    rigid_expenditure: Decimal
    education_ok: bool
    medical_ok: bool
    housing_safe: bool
    water_safe: bool
    monitoring_line: Decimal
    eligible: bool
    reasons: list[str]
    risk_types: list[RiskType]
    # the year the findings are about, whose line `monitoring_line` is; None in events recorded before it was stated
    income_year: int | None = None


class VillageDeliberated(_CaseStep):
    """村级评议: `propose` posts the public notice; `not_propose` ends the case."""

    decision: Literal["propose", "not_propose"]
    attendees: int
    minutes: str = ""


class PublicNoticePosted(_CaseStep):
    """公示: objections may be raised until `ends_on`."""

    ends_on: date


class ObjectionRaised(_CaseStep):
    objection_id: str
    by: str
    reason: str


class ObjectionResolved(_CaseStep):
    objection_id: str
    upheld: bool
    note: str = ""


class CaseReturned(_CaseStep):
    """Sent back down the ladder: by an upheld objection (to the village) or by the township (to a new visit)."""

    by: str
    reason: str


class PublicNoticeClosed(_CaseStep):
    ended_on: date


class TownshipReviewed(_CaseStep):
    """乡镇初审."""

    decision: Literal["pass", "return"]
    comment: str = ""


class CountyDecided(_CaseStep):
    """县级审定."""

    decision: Literal["approve", "reject"]


class SubjectIdentified(_CaseStep):
    """The household is a monitoring subject (监测对象) of `category` with these risk types."""

    category: str
    risk_types: list[RiskType]


class IdentificationRejected(_CaseStep):
    level: Literal["village", "county"]
    reason: str
