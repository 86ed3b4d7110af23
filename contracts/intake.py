"""Events published by intake on `fangpin.intake.events`.

Events never carry raw ID numbers or names: a member appears by a pseudonymous id.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

from contracts.base import EventPayload, upcaster
from contracts.vocabulary import ClueChannel, LaborCapacity, PriorityGroup, RiskType


class _IntakeEvent(EventPayload):
    producer = "intake"


class MemberFacts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    member_id: str
    relation: str
    age: int
    labor_capacity: LaborCapacity
    disabled: bool
    in_school: bool


class HouseholdRegistered(_IntakeEvent):
    household_id: str
    region_code: str
    group: str | None = None
    poverty_status: Literal["out_of_poverty", "ordinary"]
    grid_worker_id: str | None = None
    members: list[MemberFacts]


def any_member_can_work(household: dict) -> bool:
    """Whether a HouseholdRegistered / HouseholdUpdated payload (its JSON form) has a member with
    labour capacity: what screening's protected mark and assistance's plan rules ask of the registry."""
    return any(member["labor_capacity"] != LaborCapacity.NONE for member in household["members"])


class HouseholdUpdated(_IntakeEvent):
    household_id: str
    region_code: str
    group: str | None = None
    poverty_status: Literal["out_of_poverty", "ordinary"]
    grid_worker_id: str | None = None
    members: list[MemberFacts]


class ClueSource(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    department: str | None = None
    source_record_id: str | None = None
    worker_id: str | None = None
    # The department's own judgement that the amount is over its indicator's threshold, sent with
    # the warning and taken as given; none: intake held the amount to the thresholds table.
    over_threshold: bool | None = None


class ClueFacts(BaseModel):
    """What a risk clue (风险线索) about a registered household says, from any of the three channels."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    clue_id: str
    household_id: str
    channel: ClueChannel
    source: ClueSource
    indicator: str | None = None
    amount: Decimal | None = None
    observed_at: datetime | None = None
    risk_types: list[RiskType]
    priority_groups: list[PriorityGroup] = []
    detail: str | None = None


class RiskClueRaised(ClueFacts, _IntakeEvent):
    """One clue: the household and its region are also the envelope's."""


class BatchedClue(ClueFacts):
    region_code: str


class RiskCluesRaised(_IntakeEvent):
    """Clues raised together by one committed chunk of a department's batch upload
    (`POST /v1/warnings:batch`, 批量预警): one event per chunk and topic partition, so that a
    million warnings are not a million events, and every household's clues still reach the
    partition (and so the order) of its other events. The envelope names no household."""

    clues: list[BatchedClue]


class WarningUnmatched(_IntakeEvent):
    """A department warning about a person the registry does not know; kept, reported back."""

    warning_id: str
    department: str
    source_record_id: str
    indicator: str
    observed_at: datetime | None = None


class VisitRecorded(_IntakeEvent):
    """A grid worker's visit (网格员走访): with no risk found, or with the risks that raised `clue_id`.
    Version 2 carries the worker's notes (the visits view is projected from this event)."""

    schema_version = 2
    visit_id: str
    household_id: str
    worker_id: str
    visited_at: datetime
    risk_types: list[RiskType]
    clue_id: str | None = None
    notes: str | None = None  # the grid worker's own words (the visits view shows them)


@upcaster("VisitRecorded", from_version=1)
def _visit_recorded_without_notes(old: dict) -> dict:
    # Visits recorded before version 2 kept their notes beside the event, in the visits table.
    return {**old, "notes": None}
