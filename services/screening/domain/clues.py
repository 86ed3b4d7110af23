"""Clues into verification cases: one open case per household."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from contracts.intake import ClueFacts
from contracts.screening import ClueAttachedToCase, SubjectRiskAdded, VerificationCaseOpened
from contracts.vocabulary import RiskType

FIRST_STEP = "verification_visit"  # 入户核查


@dataclass(frozen=True)
class OpenCase:
    case_id: str
    household_id: str
    clue_ids: tuple[str, ...]
    risk_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class MonitoredSubject:
    household_id: str
    clue_ids: tuple[str, ...]


def take_clue(
    open_case: OpenCase | None, clue: ClueFacts, region_code: str, new_case_id: str, today: date, due_days: int,
    subject: MonitoredSubject | None = None,
) -> list[VerificationCaseOpened | ClueAttachedToCase | SubjectRiskAdded]:
    """One open case per household: the first clue opens it, later clues attach to it
    ("clues complement each other"); a clue already taken changes nothing. A household already
    monitored gets no case: the clue is a new risk of the subject. After an exit (no longer
    monitored) a new risk opens a new case."""
    risk_types: list[RiskType] = list(clue.risk_types)
    if subject is not None and open_case is None:
        if clue.clue_id in subject.clue_ids:
            return []
        return [SubjectRiskAdded(household_id=clue.household_id, clue_id=clue.clue_id, risk_types=risk_types)]
    if open_case is None:
        return [VerificationCaseOpened(
            case_id=new_case_id, household_id=clue.household_id, region_code=region_code, clue_id=clue.clue_id,
            risk_types=risk_types, step=FIRST_STEP, due_date=today + timedelta(days=due_days),
        )]
    if clue.clue_id in open_case.clue_ids:
        return []
    return [ClueAttachedToCase(case_id=open_case.case_id, household_id=clue.household_id, clue_id=clue.clue_id,
                               risk_types=risk_types)]
