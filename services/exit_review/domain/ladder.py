"""The exit ladder (风险消除程序) of one exit case, as a pure state machine. 怎么进、怎么出: the
steps of identification, with the household's consent and the seven blockers first:

village proposal after its visit and deliberation → the four parties' consent 四方认可 → the seven
blockers judged 七不消 (any failing or unknown: rejected, naming them) → public notice 公示 (5 days,
objections) → township verification 乡镇核实 → county decision 县级审定 (spot check, department
comparison) → `ExitApproved`, or `ExitRejected` / `ExitReturned` with the reason.

`propose` opens a case; `decide(state, command, actor, today, judge)` returns the events of an
allowed step or raises a refusal naming the step the case expects and who may take it; `apply`
folds events into state. `judge` is the blockers' assessment, given by the caller with the
evidence at hand, so the ladder stays pure."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from enum import StrEnum
from typing import Literal

from contracts.base import EventPayload
from contracts.codes import text_zh
from contracts.exit_review import (
    BlockerVerdict, ConsentRecorded, ExitApproved, ExitAssessed, ExitFindings, ExitNoticeClosed, ExitNoticePosted,
    ExitObjectionRaised, ExitObjectionResolved, ExitProposed, ExitRejected, ExitReturned, ExitTownshipVerified,
)
from services.exit_review.domain.blockers import PARTIES, Window
from services.exit_review.domain.evidence import CaseRecord, Consent, Findings
from services.exit_review.domain.refusals import Invalid, NotAllowed, NotFound, OutOfOrder

NOTICE_DAYS = 5


class Step(StrEnum):
    EXIT_CONSENT = "exit_consent"
    PUBLIC_NOTICE = "public_notice"
    TOWNSHIP_VERIFICATION = "township_verification"
    COUNTY_DECISION = "county_decision"
    CLOSED = "closed"


ROLES: dict[Step, tuple[str, ...]] = {
    Step.EXIT_CONSENT: ("village_cadre", "grid_worker", "helper", "work_team"),  # each for its party
    Step.PUBLIC_NOTICE: ("village_cadre", "township_officer"),  # recording and resolving objections
    Step.TOWNSHIP_VERIFICATION: ("township_officer",),
    Step.COUNTY_DECISION: ("county_officer",),
}
# Who records each party's consent: the household's by the village staff who visit it, with the member
# who signs; the others by that party itself.
PARTY_ROLES: dict[str, tuple[str, ...]] = {
    "household": ("village_cadre", "grid_worker"), "helper": ("helper",), "work_team": ("work_team",),
    "village_committee": ("village_cadre",),
}


@dataclass(frozen=True)
class Actor:
    id: str
    role: str


@dataclass(frozen=True)
class Subject:
    """What the proposal checks about the household (screening's subject, intake's members,
    assistance's helper), as exit_review keeps them."""

    household_id: str
    region_code: str
    status: str  # monitored, risk_eliminated, removed
    protected: bool = False
    member_ids: frozenset[str] = frozenset()
    helper_id: str | None = None


def _expecting(step: Step, allowed_roles: tuple[str, ...] = ()) -> dict:
    return {"expected_step": step.value, "expected_step_zh": text_zh(step), "allowed_roles": list(allowed_roles)}


def propose(subject: Subject | None, household_id: str, exit_in_progress: str | None, exit_id: str,
            findings: ExitFindings, attendees: int, minutes: str, actor: Actor, today: date) -> list[EventPayload]:
    """村级评议 proposes the exit; the case then waits for the four parties' consent."""
    if actor.role != "village_cadre":
        raise NotAllowed("exit_role_not_allowed", f"an exit is proposed by the village (village_cadre), not {actor.role}",
                         **_expecting(Step.EXIT_CONSENT, ("village_cadre",)))
    if subject is None or subject.status != "monitored":
        status = "not a monitoring subject" if subject is None else f"{subject.status}, not monitored"
        raise Invalid("subject_not_monitored_for_exit", "household_id",
                      f"household {household_id} is {status}: only a monitored subject is proposed for exit")
    if subject.protected:
        raise Invalid("subject_protected", "household_id",
                      f"household {household_id} is a whole household without labour capacity (整户无劳动能力兜底保障户): "
                      "it stays monitored and is not marked risk-eliminated")
    if exit_in_progress is not None:
        raise OutOfOrder("exit_already_open", f"household {household_id} is already in exit case {exit_in_progress}",
                         exit_id=exit_in_progress)
    if findings.visited_on > today:
        raise Invalid("findings_in_future", "findings.visited_on", f"the exit visit is dated {findings.visited_on}, after today")
    return [ExitProposed(exit_id=exit_id, household_id=household_id, region_code=subject.region_code,
                         step=Step.EXIT_CONSENT, findings=findings, attendees=attendees, minutes=minutes)]


# --- commands on an open case ----------------------------------------------------------------------

@dataclass(frozen=True)
class RecordConsent:
    party: Literal["household", "helper", "work_team", "village_committee"]
    given: bool
    member_id: str | None = None  # for the household: the member who signs
    note: str = ""
    step: Step = Step.EXIT_CONSENT


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
class TownshipVerification:
    decision: Literal["pass", "return"]
    comment: str = ""
    step: Step = Step.TOWNSHIP_VERIFICATION


@dataclass(frozen=True)
class CountyDecision:
    decision: Literal["approve", "reject"]
    spot_checked: bool = False
    department_comparison: str = ""
    reason: str = ""
    step: Step = Step.COUNTY_DECISION


Command = RecordConsent | RaiseObjection | ResolveObjection | CloseNotice | TownshipVerification | CountyDecision
Judge = Callable[[CaseRecord], tuple[str, Window, list[BlockerVerdict]]]  # -> rule version, window, verdicts


@dataclass(frozen=True)
class ExitState:
    exit_id: str
    household_id: str
    region_code: str
    step: Step
    proposed_on: date
    attendees: int
    findings: Findings
    consents: dict[str, Consent] = field(default_factory=dict)
    notice_ends: date | None = None
    open_objections: frozenset[str] = frozenset()

    def record(self) -> CaseRecord:
        return CaseRecord(self.proposed_on, self.attendees, self.findings, dict(self.consents))


def decide(state: ExitState, command: Command, actor: Actor, subject: Subject | None, today: date,
           judge: Judge) -> list[EventPayload]:
    if state.step is Step.CLOSED:
        raise OutOfOrder("exit_closed", "the exit case is closed", **_expecting(Step.CLOSED))
    if command.step is not state.step:
        raise OutOfOrder("exit_step_out_of_order", f"the exit case is at {state.step.value}, not {command.step.value}",
                         **_expecting(state.step, ROLES.get(state.step, ())))
    if not isinstance(command, CloseNotice) and actor.role not in ROLES[state.step]:
        raise NotAllowed("exit_role_not_allowed", f"{state.step.value} is for {' or '.join(ROLES[state.step])}, not {actor.role}",
                         **_expecting(state.step, ROLES[state.step]))
    case = {"exit_id": state.exit_id, "household_id": state.household_id}
    match command:
        case RecordConsent():
            return _consent(state, command, actor, subject, today, judge, case)
        case RaiseObjection(objection_id=objection_id, by=by, reason=reason):
            if state.notice_ends is not None and today >= state.notice_ends:
                raise OutOfOrder("public_notice_ended", f"the notice ended on {state.notice_ends}",
                                 **_expecting(state.step, ROLES[state.step]))
            return [ExitObjectionRaised(**case, step=Step.PUBLIC_NOTICE, objection_id=objection_id, by=by, reason=reason)]
        case ResolveObjection(objection_id=objection_id, upheld=upheld, note=note):
            if actor.role != "township_officer":
                raise NotAllowed("exit_role_not_allowed", "an objection is resolved by the township",
                                 **_expecting(state.step, ("township_officer",)))
            if objection_id not in state.open_objections:
                raise NotFound("objection_not_open", f"no open objection {objection_id}",
                               **_expecting(state.step, ROLES[state.step]))
            if not upheld:
                return [ExitObjectionResolved(**case, step=Step.PUBLIC_NOTICE, objection_id=objection_id, upheld=False,
                                              note=note)]
            return [ExitObjectionResolved(**case, step=Step.CLOSED, objection_id=objection_id, upheld=True, note=note),
                    ExitReturned(**case, step=Step.CLOSED, by="public_notice", reason=note or "an objection was upheld")]
        case CloseNotice():
            if state.notice_ends is None or today < state.notice_ends or state.open_objections:
                return []
            return [ExitNoticeClosed(**case, step=Step.TOWNSHIP_VERIFICATION, ended_on=state.notice_ends)]
        case TownshipVerification(decision="pass", comment=comment):
            return [ExitTownshipVerified(**case, step=Step.COUNTY_DECISION, decision="pass", comment=comment)]
        case TownshipVerification(decision="return", comment=comment):
            if not comment.strip():
                raise Invalid("rejection_without_reason", "comment", "a return says why",
                              **_expecting(state.step, ROLES[state.step]))
            return [ExitTownshipVerified(**case, step=Step.CLOSED, decision="return", comment=comment),
                    ExitReturned(**case, step=Step.CLOSED, by="township_verification", reason=comment)]
        case CountyDecision(decision="approve", spot_checked=spot_checked, department_comparison=comparison,
                            reason=reason):
            return [ExitApproved(**case, step=Step.CLOSED, spot_checked=spot_checked, department_comparison=comparison,
                                 comment=reason)]
        case CountyDecision(decision="reject", reason=reason):
            if not reason.strip():
                raise Invalid("rejection_without_reason", "reason", "a rejection gives its reason",
                              **_expecting(state.step, ROLES[state.step]))
            return [ExitRejected(**case, step=Step.CLOSED, level="county", reason=reason)]
    raise AssertionError(f"unhandled command {command!r}")


def _consent(state: ExitState, command: RecordConsent, actor: Actor, subject: Subject | None, today: date,
             judge: Judge, case: dict) -> list[EventPayload]:
    party = command.party
    if actor.role not in PARTY_ROLES[party]:
        raise NotAllowed("not_that_party", f"the {party.replace('_', ' ')}'s consent is given by "
                         f"{' or '.join(PARTY_ROLES[party])}, not {actor.role}", allowed_roles=list(PARTY_ROLES[party]))
    if party == "helper" and (subject is None or subject.helper_id != actor.id):
        raise NotAllowed("not_that_party", f"the helper's consent is given by the household's helper "
                         f"({subject.helper_id if subject else 'none known'}), not {actor.id}", allowed_roles=["helper"])
    by = actor.id
    if party == "household":
        if not command.member_id or subject is None or command.member_id not in subject.member_ids:
            raise Invalid("member_not_in_household", "member_id",
                          f"the household's consent is signed by one of its members (member_id), not {command.member_id!r}")
        by = command.member_id
    if party in state.consents:
        raise OutOfOrder("consent_already_recorded", f"the {party.replace('_', ' ')}'s consent is recorded already",
                         **_expecting(state.step, ROLES[state.step]))
    consents = {**state.consents, party: Consent(party, command.given, by, today, "")}
    waiting = [p for p in PARTIES if p not in consents]
    recorded = ConsentRecorded(**case, step=Step.EXIT_CONSENT, party=party, given=command.given, by=by,
                               recorded_by=actor.id, note=command.note)
    if waiting:
        return [recorded]
    # The four have answered: the blockers are judged on the evidence of today.
    rule_version, window, verdicts = judge(replace(state, consents=consents).record())
    blocking = [v for v in verdicts if v.outcome != "pass"]
    step = Step.CLOSED if blocking else Step.PUBLIC_NOTICE
    events: list[EventPayload] = [
        recorded.model_copy(update={"step": step}),
        ExitAssessed(**case, step=step, rule_version=rule_version, window_start=window.start, window_end=window.end,
                     verdicts=verdicts, passed=not blocking)]
    if blocking:
        names = [v.blocker for v in blocking]
        events.append(ExitRejected(**case, step=Step.CLOSED, level="assessment", blockers=names,
                                   reason="blocked by " + ", ".join(f"{n} ({text_zh(n)})" for n in names)))
    else:
        events.append(ExitNoticePosted(**case, step=Step.PUBLIC_NOTICE, ends_on=today + timedelta(days=NOTICE_DAYS)))
    return events


def due_date(step: str, today: date, notice_ends: date | None, due_days: dict[str, int]) -> date | None:
    """When a case standing at `step` is due: a notice when it ends, another step its days from
    `today` (exit_step_due_days); None when closed or a step has no days."""
    if step == Step.PUBLIC_NOTICE:
        return notice_ends
    days = due_days.get(step)
    return None if days is None else today + timedelta(days=days)


def apply(state: ExitState | None, event: EventPayload, recorded_on: date, event_id: str) -> ExitState:
    """`event.step` is where the case stands after it; `recorded_on` and `event_id` are the envelope's."""
    if isinstance(event, ExitProposed):
        f = event.findings
        return ExitState(event.exit_id, event.household_id, event.region_code, Step(event.step), recorded_on,
                         event.attendees, Findings(f.visited_on, f.per_capita_net_income, f.education_ok, f.medical_ok,
                                                   f.housing_safe, f.water_safe, f.satisfaction))
    assert state is not None, f"an exit stream starts with ExitProposed, not {event.event_type}"
    state = replace(state, step=Step(event.step))
    match event:
        case ConsentRecorded():
            consent = Consent(event.party, event.given, event.by, recorded_on, event_id)
            return replace(state, consents={**state.consents, event.party: consent})
        case ExitNoticePosted():
            return replace(state, notice_ends=event.ends_on, open_objections=frozenset())
        case ExitObjectionRaised():
            return replace(state, open_objections=state.open_objections | {event.objection_id})
        case ExitObjectionResolved():
            return replace(state, open_objections=state.open_objections - {event.objection_id})
    return state
