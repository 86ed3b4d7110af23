"""Events published by screening on `fangpin.screening.events`."""
from __future__ import annotations

from datetime import date

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
