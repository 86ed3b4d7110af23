"""The identification ladder (识别纳入程序) of one verification case, as a pure state machine:
verification visit 入户核查 → village deliberation 村级评议 → public notice 公示 (5 days, objections)
→ township review 乡镇初审 → county decision 县级审定.

`decide(state, command, actor_role, today)` returns the events (contracts/screening.py) of an
allowed step, or raises a refusal (domain/refusals.py) naming the step the case expects and who may
take it. `apply` folds events into state.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Literal, Mapping

from contracts.base import EventPayload
from contracts.codes import text_zh
from contracts.screening import (
    CaseReturned, ClueAttachedToCase, CountyDecided, HouseholdVerified, IdentificationRejected, ObjectionRaised,
    ObjectionResolved, PublicNoticeClosed, PublicNoticePosted, SubjectIdentified, TownshipReviewed, VerificationCaseOpened,
    VillageDeliberated,
)
from contracts.vocabulary import RiskType
from services.screening.domain.eligibility import Findings, recommend
from services.screening.domain.refusals import Invalid, NotAllowed, NotFound, OutOfOrder

NOTICE_DAYS = 5


class Step(StrEnum):
    VERIFICATION_VISIT = "verification_visit"
    VILLAGE_DELIBERATION = "village_deliberation"
    PUBLIC_NOTICE = "public_notice"
    TOWNSHIP_REVIEW = "township_review"
    COUNTY_DECISION = "county_decision"
    CLOSED = "closed"


# Who may take each step.
ROLES: dict[Step, tuple[str, ...]] = {
    Step.VERIFICATION_VISIT: ("grid_worker", "village_cadre", "work_team"),
    Step.VILLAGE_DELIBERATION: ("village_cadre",),
    Step.PUBLIC_NOTICE: ("village_cadre", "township_officer"),  # recording and resolving objections
    Step.TOWNSHIP_REVIEW: ("township_officer",),
    Step.COUNTY_DECISION: ("county_officer",),
}


class Category(StrEnum):
    """Monitoring subject categories (监测对象类别)."""

    UNSTABLE_FORMERLY_POOR = "unstable_formerly_poor"  # 脱贫不稳定户
    MARGINAL_AT_RISK = "marginal_at_risk"  # 边缘易致贫户
    SUDDEN_HARDSHIP = "sudden_hardship"  # 突发严重困难户


def _expecting(step: Step, allowed_roles: tuple[str, ...] = ()) -> dict:
    """What every ladder refusal tells the caller: the step the case is at (with its Chinese term) and who may take it."""
    return {"expected_step": step.value, "expected_step_zh": text_zh(step), "allowed_roles": list(allowed_roles)}


# --- commands ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RecordVerification:
    findings: Findings
    monitoring_line: Decimal  # yuan per person, the line of `income_year`
    risk_types: tuple[RiskType, ...] = ()
    income_year: int | None = None  # the year the findings are about, whose line is `monitoring_line`
    step: Step = Step.VERIFICATION_VISIT


@dataclass(frozen=True)
class Deliberate:
    decision: Literal["propose", "not_propose"]
    attendees: int
    minutes: str = ""
    step: Step = Step.VILLAGE_DELIBERATION


@dataclass(frozen=True)
class RaiseObjection:
    objection_id: str
    by: str
    reason: str
    step: Step = Step.PUBLIC_NOTICE


@dataclass(frozen=True)
class ResolveObjection:
    objection_id: str
    upheld: bool
    note: str = ""
    step: Step = Step.PUBLIC_NOTICE


@dataclass(frozen=True)
class CloseNotice:
    """Sent by the scheduler: the notice closes once its days have passed and no objection is open."""

    step: Step = Step.PUBLIC_NOTICE


@dataclass(frozen=True)
class TownshipReview:
    decision: Literal["pass", "return"]
    comment: str = ""
    step: Step = Step.TOWNSHIP_REVIEW


@dataclass(frozen=True)
class CountyDecision:
    decision: Literal["approve", "reject"]
    category: Category | None = None
    risk_types: tuple[RiskType, ...] = ()
    reason: str = ""
    step: Step = Step.COUNTY_DECISION


Command = RecordVerification | Deliberate | RaiseObjection | ResolveObjection | CloseNotice | TownshipReview | CountyDecision


@dataclass(frozen=True)
class CaseState:
    case_id: str
    household_id: str
    region_code: str
    step: Step = Step.VERIFICATION_VISIT
    notice_ends: date | None = None
    open_objections: frozenset[str] = frozenset()
    eligible: bool | None = None
    risk_types: tuple[RiskType, ...] = ()


def decide(state: CaseState, command: Command, actor_role: str, today: date) -> list[EventPayload]:
    if state.step is Step.CLOSED:
        raise OutOfOrder("case_closed", "the case is closed", **_expecting(Step.CLOSED))
    if command.step is not state.step:
        raise OutOfOrder("ladder_step_out_of_order", f"the case is at {state.step.value}, not {command.step.value}",
                         **_expecting(state.step, ROLES.get(state.step, ())))
    if not isinstance(command, CloseNotice) and actor_role not in ROLES[state.step]:
        raise NotAllowed("ladder_role_not_allowed", f"{state.step.value} is for {' or '.join(ROLES[state.step])}, not {actor_role}",
                         **_expecting(state.step, ROLES[state.step]))
    case = {"case_id": state.case_id, "household_id": state.household_id}  # what every event of the case names
    match command:
        case RecordVerification(findings=findings, monitoring_line=line, risk_types=risks, income_year=year):
            advice = recommend(findings, line)
            return [HouseholdVerified(
                **case, step=Step.VILLAGE_DELIBERATION, **asdict(findings), eligible=advice.eligible,
                reasons=[r.text for r in advice.reasons], monitoring_line=line, income_year=year,
                risk_types=list(risks) or list(state.risk_types))]
        case Deliberate(decision="propose", attendees=attendees, minutes=minutes):
            return [VillageDeliberated(**case, step=Step.PUBLIC_NOTICE, decision="propose", attendees=attendees, minutes=minutes),
                    PublicNoticePosted(**case, step=Step.PUBLIC_NOTICE, ends_on=today + timedelta(days=NOTICE_DAYS))]
        case Deliberate(decision="not_propose", attendees=attendees, minutes=minutes):
            return [VillageDeliberated(**case, step=Step.CLOSED, decision="not_propose", attendees=attendees, minutes=minutes),
                    IdentificationRejected(**case, step=Step.CLOSED, level="village",
                                           reason=minutes or "not proposed by the village deliberation")]
        case RaiseObjection(objection_id=objection_id, by=by, reason=reason):
            if state.notice_ends is not None and today >= state.notice_ends:
                raise OutOfOrder("public_notice_ended", f"the notice ended on {state.notice_ends}",
                                 **_expecting(state.step, ROLES[state.step]))
            return [ObjectionRaised(**case, step=Step.PUBLIC_NOTICE, objection_id=objection_id, by=by, reason=reason)]
        case ResolveObjection(objection_id=objection_id, upheld=upheld, note=note):
            if objection_id not in state.open_objections:
                raise NotFound("objection_not_open", f"no open objection {objection_id}",
                               **_expecting(state.step, ROLES[state.step]))
            if not upheld:
                return [ObjectionResolved(**case, step=Step.PUBLIC_NOTICE, objection_id=objection_id, upheld=False, note=note)]
            return [ObjectionResolved(**case, step=Step.VILLAGE_DELIBERATION, objection_id=objection_id, upheld=True, note=note),
                    CaseReturned(**case, step=Step.VILLAGE_DELIBERATION, by="public_notice",
                                 reason=note or "an objection was upheld")]
        case CloseNotice():
            if state.notice_ends is None or today < state.notice_ends or state.open_objections:
                return []
            return [PublicNoticeClosed(**case, step=Step.TOWNSHIP_REVIEW, ended_on=state.notice_ends)]
        case TownshipReview(decision="pass", comment=comment):
            return [TownshipReviewed(**case, step=Step.COUNTY_DECISION, decision="pass", comment=comment)]
        case TownshipReview(decision="return", comment=comment):
            return [TownshipReviewed(**case, step=Step.VERIFICATION_VISIT, decision="return", comment=comment),
                    CaseReturned(**case, step=Step.VERIFICATION_VISIT, by="township_review",
                                 reason=comment or "returned by the township")]
        case CountyDecision(decision="approve", category=category, risk_types=risks):
            if category is None or not risks:
                raise Invalid("approval_without_category_or_risk_types",
                              "an approval names the category and at least one risk type",
                              **_expecting(state.step, ROLES[state.step]))
            return [CountyDecided(**case, step=Step.CLOSED, decision="approve"),
                    SubjectIdentified(**case, step=Step.CLOSED, category=category, risk_types=list(risks))]
        case CountyDecision(decision="reject", reason=reason):
            if not reason.strip():
                raise Invalid("rejection_without_reason", "a rejection gives its reason",
                              **_expecting(state.step, ROLES[state.step]))
            return [CountyDecided(**case, step=Step.CLOSED, decision="reject"),
                    IdentificationRejected(**case, step=Step.CLOSED, level="county", reason=reason)]
    raise AssertionError(f"unhandled command {command!r}")


def apply(state: CaseState, event: EventPayload) -> CaseState:
    """`event.step` is where the case stands after it."""
    state = replace(state, step=Step(event.step))
    match event:
        case HouseholdVerified():
            return replace(state, eligible=event.eligible, risk_types=tuple(event.risk_types))
        case PublicNoticePosted():
            return replace(state, notice_ends=event.ends_on, open_objections=frozenset())
        case ObjectionRaised():
            return replace(state, open_objections=state.open_objections | {event.objection_id})
        case ObjectionResolved():
            return replace(state, open_objections=state.open_objections - {event.objection_id})
        case CaseReturned():
            return replace(state, notice_ends=None, open_objections=frozenset())
    return state


def due_date(state: CaseState, today: date, due_days: Mapping[str, int]) -> date | None:
    """When the step the case stands at is due: a public notice when it ends, another step its days
    from `today` (step_due_days); None for a step with no days of its own (the case keeps its date)."""
    if state.step is Step.PUBLIC_NOTICE and state.notice_ends:
        return state.notice_ends
    days = due_days.get(state.step.value)
    return None if days is None else today + timedelta(days=days)


def case_from_history(history: list[EventPayload]) -> CaseState:
    """Fold a case stream (VerificationCaseOpened first) into the state the ladder decides on."""
    opened = history[0]
    if not isinstance(opened, VerificationCaseOpened):
        raise ValueError(f"a case stream starts with VerificationCaseOpened, not {opened.event_type}")
    state = CaseState(opened.case_id, opened.household_id, opened.region_code, step=Step(opened.step),
                      risk_types=tuple(opened.risk_types))
    for payload in history[1:]:
        if isinstance(payload, ClueAttachedToCase):
            state = replace(state, risk_types=tuple(dict.fromkeys([*state.risk_types, *payload.risk_types])))
        else:
            state = apply(state, payload)
    return state
