"""After an exit (seed 003, (三)): the look-back 回头看 `exit_look_back_after_months` after its
approval, which judges again the blockers that read evidence and flags the exit when an income fell
below the line or a risk was raised since; and the rollback 风险消除回退, requested by the township
and decided by the county (seed 003: 以村为单位报乡村振兴办公室…向县乡村振兴局提出申请报批). A new risk
after an exit is no rollback: it is a new identification, in screening."""
from __future__ import annotations

from calendar import monthrange
from dataclasses import dataclass, replace
from datetime import date
from typing import Literal

from contracts.base import EventPayload
from contracts.exit_review import (
    EvidenceItem, ExitApproved, ExitRollbackRefused, ExitRollbackRequested, ExitRolledBack, LookBackCompleted,
    LookBackDue,
)
from services.exit_review.domain.blockers import (
    RULE_VERSION, ExitRules, LineOf, income_not_stable, look_back, measures_not_carried_out, monitoring_lapsed,
    sudden_difficulty_unresolved,
)
from services.exit_review.domain.evidence import Evidence
from services.exit_review.domain.ladder import Actor
from services.exit_review.domain.refusals import Invalid, NotAllowed, OutOfOrder

LOOK_BACK_ROLES = ("township_officer", "county_officer")


@dataclass(frozen=True)
class Exited:
    """The household's last approved exit and what followed it."""

    exit_id: str
    household_id: str
    region_code: str
    approved_on: date
    look_back_due: bool = False
    looked_back: bool = False
    rollback_reason: str | None = None  # a rollback waiting for the county
    rolled_back: bool = False


def look_back_due_on(exited: Exited, months: int) -> date:
    """`months` calendar months after the approval (the last day of a shorter month if need be)."""
    month_index = exited.approved_on.month - 1 + months
    year, month = exited.approved_on.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(exited.approved_on.day, monthrange(year, month)[1]))


def due_look_back(exited: Exited | None, today: date, months: int) -> list[EventPayload]:
    """What the clock says: LookBackDue once, on the day it falls due (never after a rollback)."""
    if exited is None or exited.look_back_due or exited.rolled_back:
        return []
    due_on = look_back_due_on(exited, months)
    if today < due_on:
        return []
    return [LookBackDue(exit_id=exited.exit_id, household_id=exited.household_id, due_on=due_on)]


def complete_look_back(exited: Exited | None, exit_id: str, evidence: Evidence, actor: Actor, today: date,
                       rules: ExitRules, line_of: LineOf, note: str) -> list[EventPayload]:
    if actor.role not in LOOK_BACK_ROLES:
        raise NotAllowed("exit_role_not_allowed", f"a look-back is done by {' or '.join(LOOK_BACK_ROLES)}, not {actor.role}",
                         allowed_roles=list(LOOK_BACK_ROLES))
    if exited is None or exited.exit_id != exit_id or exited.rolled_back:
        raise OutOfOrder("look_back_not_due", f"exit {exit_id} is not the household's standing exit", allowed_roles=[])
    if not exited.look_back_due:
        raise OutOfOrder("look_back_not_due", "the look-back falls due "
                         f"{look_back_due_on(exited, rules.look_back_after_months)}", allowed_roles=[])
    if exited.looked_back:
        raise OutOfOrder("look_back_already_done", "the exit has been looked back at", allowed_roles=[])
    window = look_back(today, rules.look_back_months)
    income = income_not_stable(evidence, window, line_of)
    verdicts = [income, measures_not_carried_out(evidence, today), sudden_difficulty_unresolved(evidence, window, today),
                monitoring_lapsed(evidence, window)]
    flags = list(income.evidence) if income.outcome == "fail" else []
    flags += [EvidenceItem(kind=d.kind, ref=d.event_id, on=d.raised_on, detail=f"{d.ref}: {', '.join(d.risk_types)} "
                           "raised after the exit") for d in evidence.difficulties if d.raised_on > exited.approved_on]
    return [LookBackCompleted(exit_id=exit_id, household_id=exited.household_id, rule_version=RULE_VERSION,
                              window_start=window.start, window_end=window.end, verdicts=verdicts, flagged=bool(flags),
                              flags=flags, note=note)]


def request_rollback(exited: Exited | None, household_id: str, reason: str, actor: Actor) -> list[EventPayload]:
    if actor.role != "township_officer":
        raise NotAllowed("exit_role_not_allowed", f"a rollback is requested by the township, not {actor.role}",
                         allowed_roles=["township_officer"])
    if exited is None or exited.rolled_back:
        raise Invalid("exit_never_approved", "household_id",
                      f"household {household_id} has no approved exit standing: nothing to roll back")
    if exited.rollback_reason is not None:
        raise OutOfOrder("rollback_already_pending", "a rollback is already waiting for the county's decision",
                         allowed_roles=["county_officer"])
    if not reason.strip():
        raise Invalid("rollback_without_reason", "reason", "a rollback says why the exit was not right")
    return [ExitRollbackRequested(exit_id=exited.exit_id, household_id=household_id, reason=reason)]


def decide_rollback(exited: Exited | None, household_id: str, decision: Literal["approve", "refuse"], comment: str,
                    actor: Actor) -> list[EventPayload]:
    if actor.role != "county_officer":
        raise NotAllowed("exit_role_not_allowed", f"a rollback is decided by the county, not {actor.role}",
                         allowed_roles=["county_officer"])
    if exited is None or exited.rollback_reason is None:
        raise OutOfOrder("no_rollback_pending", "no rollback is waiting for a decision; the township requests first",
                         allowed_roles=["township_officer"])
    if decision == "approve":
        return [ExitRolledBack(exit_id=exited.exit_id, household_id=household_id, reason=exited.rollback_reason,
                               comment=comment)]
    if not comment.strip():
        raise Invalid("rejection_without_reason", "comment", "a refused rollback says why")
    return [ExitRollbackRefused(exit_id=exited.exit_id, household_id=household_id, comment=comment)]


def apply(exited: Exited | None, event: EventPayload, recorded_on: date, region_code: str) -> Exited | None:
    match event:
        case ExitApproved():
            return Exited(event.exit_id, event.household_id, region_code, recorded_on)
        case LookBackDue():
            return replace(exited, look_back_due=True)
        case LookBackCompleted():
            return replace(exited, looked_back=True)
        case ExitRollbackRequested():
            return replace(exited, rollback_reason=event.reason)
        case ExitRolledBack():
            return replace(exited, rollback_reason=None, rolled_back=True)
        case ExitRollbackRefused():
            return replace(exited, rollback_reason=None)
    return exited


AFTER_EXIT = (ExitApproved, LookBackDue, LookBackCompleted, ExitRollbackRequested, ExitRolledBack, ExitRollbackRefused)
