"""Monitoring subjects (监测对象) after identification: removal 清退 (township proposes, county
approves), the protected mark 整户无劳动能力兜底保障户 (village proposes, township confirms, only
where no member can work), and the exit outcomes exit_review reports."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from contracts.base import EventPayload
from contracts.screening import (
    ProtectionDeclined, ProtectionProposed, RemovalProposed, RemovalRejected, SubjectProtected, SubjectRemoved,
)

MONITORED, RISK_ELIMINATED, REMOVED = "monitored", "risk_eliminated", "removed"


class SubjectRefused(Exception):
    """`code` names the rule (contracts/codes.py)."""

    def __init__(self, status: int, message: str, allowed_roles: tuple[str, ...] = (), *, code: str) -> None:
        super().__init__(message)
        self.status, self.code, self.allowed_roles = status, code, allowed_roles


@dataclass(frozen=True)
class SubjectState:
    household_id: str
    region_code: str
    status: str
    protected: bool = False
    removal_pending: bool = False
    protection_pending: bool = False


def _role(actor_role: str, *allowed: str) -> None:
    if actor_role not in allowed:
        raise SubjectRefused(403, f"this is for {' or '.join(allowed)}, not {actor_role}", allowed, code="role_not_allowed")


def propose_removal(subject: SubjectState, reason: str, actor_role: str) -> list[EventPayload]:
    _role(actor_role, "township_officer")
    if subject.status == REMOVED:
        raise SubjectRefused(409, "the subject is already removed", code="subject_already_removed")
    if subject.removal_pending:
        raise SubjectRefused(409, "a removal is already waiting for the county's decision", code="removal_already_pending")
    if not reason.strip():
        raise SubjectRefused(422, "a removal gives its reason (why the identification was wrong)",
                             code="removal_without_reason")
    return [RemovalProposed(household_id=subject.household_id, reason=reason)]


def decide_removal(subject: SubjectState, decision: Literal["approve", "reject"], comment: str, actor_role: str) -> list[EventPayload]:
    _role(actor_role, "county_officer")
    if not subject.removal_pending:
        raise SubjectRefused(409, "no removal is waiting for a decision; the township proposes first",
                             code="no_removal_pending")
    if decision == "approve":
        return [SubjectRemoved(household_id=subject.household_id, comment=comment)]
    return [RemovalRejected(household_id=subject.household_id, comment=comment)]


def propose_protection(subject: SubjectState, any_member_can_work: bool | None, note: str, actor_role: str) -> list[EventPayload]:
    _role(actor_role, "village_cadre")
    if subject.status != MONITORED:
        raise SubjectRefused(409, f"only a monitored subject is marked protected (this one is {subject.status})",
                             code="subject_not_monitored")
    if subject.protected or subject.protection_pending:
        raise SubjectRefused(409, "the subject is already protected or waiting for the township",
                             code="protection_already_marked_or_pending")
    if any_member_can_work is None:
        raise SubjectRefused(409, "the household's members are not known to screening yet; try again shortly",
                             code="household_members_not_yet_known")
    if any_member_can_work:
        raise SubjectRefused(422, "a member has labour capacity: the protected mark is for households where no one can work",
                             code="member_can_work")
    return [ProtectionProposed(household_id=subject.household_id, note=note)]


def decide_protection(subject: SubjectState, decision: Literal["confirm", "decline"], comment: str, actor_role: str) -> list[EventPayload]:
    _role(actor_role, "township_officer")
    if not subject.protection_pending:
        raise SubjectRefused(409, "no protected mark is waiting for confirmation; the village proposes first",
                             code="no_protection_pending")
    if decision == "confirm":
        return [SubjectProtected(household_id=subject.household_id, comment=comment)]
    return [ProtectionDeclined(household_id=subject.household_id, comment=comment)]


def apply(subject: SubjectState, event: EventPayload) -> SubjectState:
    match event:
        case RemovalProposed():
            return replace(subject, removal_pending=True)
        case SubjectRemoved():
            return replace(subject, removal_pending=False, status=REMOVED, protected=False)
        case RemovalRejected():
            return replace(subject, removal_pending=False)
        case ProtectionProposed():
            return replace(subject, protection_pending=True)
        case SubjectProtected():
            return replace(subject, protection_pending=False, protected=True)
        case ProtectionDeclined():
            return replace(subject, protection_pending=False)
    return subject
