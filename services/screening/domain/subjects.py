"""Monitoring subjects (监测对象) after identification: removal 清退 (township proposes, county
approves), the protected mark 整户无劳动能力兜底保障户 (village proposes, township confirms, only
where no member can work), and the exit outcomes exit_review reports."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from contracts.base import EventPayload
from contracts.screening import (
    ProtectionDeclined, ProtectionProposed, RemovalProposed, RemovalRejected, SubjectMonitoredAgain, SubjectProtected,
    SubjectRemoved, SubjectRiskEliminated,
)
from services.screening.domain.refusals import Invalid, NotAllowed, OutOfOrder

MONITORED, RISK_ELIMINATED, REMOVED = "monitored", "risk_eliminated", "removed"


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
        raise NotAllowed("role_not_allowed", f"this is for {' or '.join(allowed)}, not {actor_role}",
                         allowed_roles=list(allowed))


def propose_removal(subject: SubjectState, reason: str, actor_role: str) -> list[EventPayload]:
    _role(actor_role, "township_officer")
    if subject.status == REMOVED:
        raise OutOfOrder("subject_already_removed", "the subject is already removed", allowed_roles=[])
    if subject.removal_pending:
        raise OutOfOrder("removal_already_pending", "a removal is already waiting for the county's decision",
                         allowed_roles=[])
    if not reason.strip():
        raise Invalid("removal_without_reason", "a removal gives its reason (why the identification was wrong)",
                      allowed_roles=[])
    return [RemovalProposed(household_id=subject.household_id, reason=reason)]


def decide_removal(subject: SubjectState, decision: Literal["approve", "reject"], comment: str, actor_role: str) -> list[EventPayload]:
    _role(actor_role, "county_officer")
    if not subject.removal_pending:
        raise OutOfOrder("no_removal_pending", "no removal is waiting for a decision; the township proposes first",
                         allowed_roles=[])
    if decision == "approve":
        return [SubjectRemoved(household_id=subject.household_id, comment=comment)]
    return [RemovalRejected(household_id=subject.household_id, comment=comment)]


def propose_protection(subject: SubjectState, any_member_can_work: bool | None, note: str, actor_role: str) -> list[EventPayload]:
    _role(actor_role, "village_cadre")
    if subject.status != MONITORED:
        raise OutOfOrder("subject_not_monitored", f"only a monitored subject is marked protected (this one is {subject.status})",
                         allowed_roles=[])
    if subject.protected or subject.protection_pending:
        raise OutOfOrder("protection_already_marked_or_pending", "the subject is already protected or waiting for the township",
                         allowed_roles=[])
    if any_member_can_work is None:
        raise OutOfOrder("household_members_not_yet_known", "the household's members are not known to screening yet; try again shortly",
                         allowed_roles=[])
    if any_member_can_work:
        raise Invalid("member_can_work", "a member has labour capacity: the protected mark is for households where no one can work",
                      allowed_roles=[])
    return [ProtectionProposed(household_id=subject.household_id, note=note)]


def decide_protection(subject: SubjectState, decision: Literal["confirm", "decline"], comment: str, actor_role: str) -> list[EventPayload]:
    _role(actor_role, "township_officer")
    if not subject.protection_pending:
        raise OutOfOrder("no_protection_pending", "no protected mark is waiting for confirmation; the village proposes first",
                         allowed_roles=[])
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
        case SubjectRiskEliminated():
            return replace(subject, status=RISK_ELIMINATED)
        case SubjectMonitoredAgain():
            return replace(subject, status=MONITORED)
    return subject
