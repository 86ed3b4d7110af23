"""The identification ladder (识别纳入程序) of one verification case, as a pure state machine:
verification visit 入户核查 → village deliberation 村级评议 → public notice 公示 (5 days, objections)
→ township review 乡镇初审 → county decision 县级审定.

`decide(state, command, actor_role, today)` returns the events of an allowed step or raises
LadderRefused naming the step the case expects and who may take it. `apply` folds events into state.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from contracts.base import EventPayload, payload_class
from contracts.screening import ClueAttachedToCase, VerificationCaseOpened
from contracts.vocabulary import RiskType
from services.screening.domain.eligibility import Findings, recommend

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


class LadderRefused(Exception):
    """`code` names the rule (contracts/codes.py); `expected_step` the step the case is at."""

    def __init__(self, status: int, message: str, expected_step: Step, allowed_roles: tuple[str, ...] = (), *,
                 code: str) -> None:
        super().__init__(message)
        self.status, self.code, self.expected_step, self.allowed_roles = status, code, expected_step, allowed_roles


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


# --- events (plain records here; the service maps them onto contracts) -------------------------------

@dataclass(frozen=True)
class LadderEvent:
    kind: str
    step_after: Step
    data: dict = field(default_factory=dict)


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


def decide(state: CaseState, command: Command, actor_role: str, today: date) -> list[LadderEvent]:
    if state.step is Step.CLOSED:
        raise LadderRefused(409, "the case is closed", Step.CLOSED, code="case_closed")
    if command.step is not state.step:
        raise LadderRefused(409, f"the case is at {state.step.value}, not {command.step.value}", state.step,
                            ROLES.get(state.step, ()), code="ladder_step_out_of_order")
    if not isinstance(command, CloseNotice) and actor_role not in ROLES[state.step]:
        raise LadderRefused(403, f"{state.step.value} is for {' or '.join(ROLES[state.step])}, not {actor_role}",
                            state.step, ROLES[state.step], code="ladder_role_not_allowed")
    match command:
        case RecordVerification(findings=findings, monitoring_line=line, risk_types=risks, income_year=year):
            advice = recommend(findings, line)
            return [LadderEvent("HouseholdVerified", Step.VILLAGE_DELIBERATION, {
                **asdict(findings), "eligible": advice.eligible, "reasons": [r.text for r in advice.reasons],
                "monitoring_line": line, "income_year": year, "risk_types": list(risks) or list(state.risk_types)})]
        case Deliberate(decision="propose", attendees=attendees, minutes=minutes):
            return [LadderEvent("VillageDeliberated", Step.PUBLIC_NOTICE,
                                {"decision": "propose", "attendees": attendees, "minutes": minutes}),
                    LadderEvent("PublicNoticePosted", Step.PUBLIC_NOTICE,
                                {"ends_on": today + timedelta(days=NOTICE_DAYS)})]
        case Deliberate(decision="not_propose", attendees=attendees, minutes=minutes):
            return [LadderEvent("VillageDeliberated", Step.CLOSED,
                                {"decision": "not_propose", "attendees": attendees, "minutes": minutes}),
                    LadderEvent("IdentificationRejected", Step.CLOSED,
                                {"level": "village", "reason": minutes or "not proposed by the village deliberation"})]
        case RaiseObjection(objection_id=objection_id, by=by, reason=reason):
            if state.notice_ends is not None and today >= state.notice_ends:
                raise LadderRefused(409, f"the notice ended on {state.notice_ends}", state.step, ROLES[state.step],
                                    code="public_notice_ended")
            return [LadderEvent("ObjectionRaised", Step.PUBLIC_NOTICE,
                                {"objection_id": objection_id, "by": by, "reason": reason})]
        case ResolveObjection(objection_id=objection_id, upheld=upheld, note=note):
            if objection_id not in state.open_objections:
                raise LadderRefused(404, f"no open objection {objection_id}", state.step, ROLES[state.step],
                                    code="objection_not_open")
            resolved = LadderEvent("ObjectionResolved", Step.PUBLIC_NOTICE,
                                   {"objection_id": objection_id, "upheld": upheld, "note": note})
            if not upheld:
                return [resolved]
            return [replace(resolved, step_after=Step.VILLAGE_DELIBERATION),
                    LadderEvent("CaseReturned", Step.VILLAGE_DELIBERATION,
                                {"by": "public_notice", "reason": note or "an objection was upheld"})]
        case CloseNotice():
            if state.notice_ends is None or today < state.notice_ends or state.open_objections:
                return []
            return [LadderEvent("PublicNoticeClosed", Step.TOWNSHIP_REVIEW, {"ended_on": state.notice_ends})]
        case TownshipReview(decision="pass", comment=comment):
            return [LadderEvent("TownshipReviewed", Step.COUNTY_DECISION, {"decision": "pass", "comment": comment})]
        case TownshipReview(decision="return", comment=comment):
            return [LadderEvent("TownshipReviewed", Step.VERIFICATION_VISIT, {"decision": "return", "comment": comment}),
                    LadderEvent("CaseReturned", Step.VERIFICATION_VISIT,
                                {"by": "township_review", "reason": comment or "returned by the township"})]
        case CountyDecision(decision="approve", category=category, risk_types=risks):
            if category is None or not risks:
                raise LadderRefused(422, "an approval names the category and at least one risk type", state.step,
                                    ROLES[state.step], code="approval_without_category_or_risk_types")
            return [LadderEvent("CountyDecided", Step.CLOSED, {"decision": "approve"}),
                    LadderEvent("SubjectIdentified", Step.CLOSED, {"category": category, "risk_types": list(risks)})]
        case CountyDecision(decision="reject", reason=reason):
            if not reason.strip():
                raise LadderRefused(422, "a rejection gives its reason", state.step, ROLES[state.step],
                                    code="rejection_without_reason")
            return [LadderEvent("CountyDecided", Step.CLOSED, {"decision": "reject"}),
                    LadderEvent("IdentificationRejected", Step.CLOSED, {"level": "county", "reason": reason})]
    raise AssertionError(f"unhandled command {command!r}")


def apply(state: CaseState, event: LadderEvent) -> CaseState:
    state = replace(state, step=event.step_after)
    match event.kind:
        case "HouseholdVerified":
            return replace(state, eligible=event.data["eligible"], risk_types=tuple(event.data["risk_types"]))
        case "PublicNoticePosted":
            return replace(state, notice_ends=event.data["ends_on"], open_objections=frozenset())
        case "ObjectionRaised":
            return replace(state, open_objections=state.open_objections | {event.data["objection_id"]})
        case "ObjectionResolved":
            return replace(state, open_objections=state.open_objections - {event.data["objection_id"]})
        case "CaseReturned":
            return replace(state, notice_ends=None, open_objections=frozenset())
    return state


def as_contract(state: CaseState, event: LadderEvent) -> EventPayload:
    """The published form of a ladder event (contracts/screening.py)."""
    cls = payload_class(event.kind)
    return cls(case_id=state.case_id, household_id=state.household_id, step=event.step_after.value, **event.data)


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
            state = apply(state, LadderEvent(payload.event_type, Step(payload.step), payload.model_dump()))
    return state
