"""A household's exit record, folded from its stream `exit-{household_id}`: its latest exit case and
its last approved exit with what followed it (look-back, rollback)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from contracts.base import EventPayload
from contracts.exit_review import ExitApproved
from services.exit_review.domain import after_exit, ladder


@dataclass(frozen=True)
class HouseholdExits:
    case: ladder.ExitState | None = None
    exited: after_exit.Exited | None = None

    @property
    def open_case(self) -> ladder.ExitState | None:
        return self.case if self.case is not None and self.case.step is not ladder.Step.CLOSED else None


def fold(record: HouseholdExits, event: EventPayload, recorded_on: date, event_id: str) -> HouseholdExits:
    case, exited = record.case, record.exited
    if not isinstance(event, after_exit.AFTER_EXIT) or isinstance(event, ExitApproved):
        case = ladder.apply(case, event, recorded_on, event_id)
    if isinstance(event, after_exit.AFTER_EXIT):
        exited = after_exit.apply(exited, event, recorded_on, case.region_code if case else "")
    return HouseholdExits(case, exited)
