"""screening's use cases, one async function per command, called by the HTTP routes (api/), the
event handlers (handlers.py) and the clock (jobs.py): load, let the domain decide, append its events
(the read tables are projections.py's to write)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Literal

from contracts.base import decode_payload
from contracts.envelope import EventEnvelope
from contracts.intake import ClueFacts
from contracts.screening import (
    SubjectMonitoredAgain, SubjectRiskAdded, SubjectRiskEliminated, VerificationCaseOpened,
)
from contracts.vocabulary import RiskType
from runtime.auth import Principal, require_region
from runtime.eventstore import EventMetadata, NewEvent, StreamHead
from runtime.ids import new_id_str
from runtime.problems import Problem, field_error
from runtime.service import ServiceContext, UnitOfWork, caused_by, run_command
from runtime.settings import Settings
from contracts.reference import MissingMonitoringLine, monitoring_lines
from services.screening import domain, store
from services.screening.domain import Findings, OpenCase, Recommendation, ladder, recommend, subjects


async def take_clues(uow: UnitOfWork, clues: list[tuple[ClueFacts, str, EventEnvelope]]) -> None:
    """Clues (with their regions and the events that brought them) into cases and subjects, a
    handful of statements however many:
    each clue opens its household's case, joins the open case, or adds a risk to its subject. The
    decisions are domain.take_clue's, one clue after the other, so that a later clue of a household
    finds the case an earlier one opened."""
    households = list({clue.household_id for clue, _, _ in clues})
    open_cases = await store.open_cases_of(uow.session, households)
    monitored = await store.monitored_subjects(uow.session, households)
    now = uow.ctx.clock.now()
    due_days = uow.ctx.settings.step_due_days["verification_visit"]
    appends: dict[str, list[NewEvent]] = {}
    opened: set[str] = set()  # cases opened by these clues: new streams
    for clue, region_code, cause in clues:
        household = clue.household_id
        for event in domain.take_clue(open_cases.get(household), clue, region_code, new_id_str(), now.date(),
                                      due_days, monitored.get(household)):
            new = NewEvent(event, household_id=household, region_code=region_code, **caused_by(cause))
            if isinstance(event, SubjectRiskAdded):
                appends.setdefault(f"subject-{household}", []).append(new)
                subject = monitored[household]
                monitored[household] = replace(subject, clue_ids=(*subject.clue_ids, clue.clue_id))
                continue
            appends.setdefault(f"case-{event.case_id}", []).append(new)
            risk_types = [r.value for r in event.risk_types]
            if isinstance(event, VerificationCaseOpened):
                open_cases[household] = OpenCase(event.case_id, household, (clue.clue_id,), tuple(risk_types))
                opened.add(event.case_id)
                continue
            case = open_cases[household]
            open_cases[household] = replace(case, clue_ids=(*case.clue_ids, clue.clue_id),
                                            risk_types=tuple(sorted(set(case.risk_types) | set(risk_types))))
    heads = await uow.events.heads(stream for stream in appends if not stream.startswith("case-")
                                   or stream.removeprefix("case-") not in opened)
    await uow.append_many([(heads.get(stream) or StreamHead(stream), new)
                           for stream, new in appends.items()])  # the cases' and subjects' rows: projections.py


async def take_step(uow: UnitOfWork, case_id: str, actor_role: str, region_check, make_command) -> ladder.CaseState:
    """Load the case, let the ladder decide on `make_command(state)` and append its events, the last
    one carrying when the step the case now stands at is due. `region_check(region_code)` raises
    when the actor may not act."""
    stream = await uow.events.load(f"case-{case_id}")
    if not stream.events:
        raise Problem(404, "Not found", f"no case {case_id}", code="case_not_found")
    state = ladder.case_from_history([decode_payload(e) for e in stream.events])
    region_check(state.region_code)
    now = uow.ctx.clock.now()
    payloads = ladder.decide(state, make_command(state), actor_role, now.date())
    if not payloads:
        return state
    for payload in payloads:
        state = ladder.apply(state, payload)
    payloads[-1] = payloads[-1].model_copy(update={
        "due_date": ladder.due_date(state, now.date(), uow.ctx.settings.step_due_days)})
    await uow.append(stream.stream_id, stream.position, [
        NewEvent(p, household_id=state.household_id, region_code=state.region_code) for p in payloads])
    return state


async def record_exit_outcomes(uow: UnitOfWork, outcomes: list[tuple[SubjectRiskEliminated | SubjectMonitoredAgain,
                                                                   EventEnvelope]]) -> None:
    """What exit_review decided (each with the event that told it), recorded on the subjects' streams,
    set-based: risk eliminated, or monitored again after a rollback (风险消除回退). A household that is
    no subject here has nothing to change."""
    regions = await store.subject_regions(uow.session, [outcome.household_id for outcome, _ in outcomes])
    appends: dict[str, list[NewEvent]] = {}
    for outcome, cause in outcomes:
        if outcome.household_id in regions:
            appends.setdefault(f"subject-{outcome.household_id}", []).append(NewEvent(
                outcome, household_id=outcome.household_id, region_code=regions[outcome.household_id], **caused_by(cause)))
    heads = await uow.events.heads(appends)
    await uow.append_many([(heads[stream], new) for stream, new in appends.items()])


async def change_subject(uow: UnitOfWork, household_id: str, region_check, decide) -> subjects.SubjectState:
    """Load the subject (locked), let `decide(state)` return its events and append them to the
    subject's stream."""
    row = await store.subject_state(uow.session, household_id)
    if row is None:
        raise Problem(404, "Not found", f"household {household_id} is not a monitoring subject", code="subject_not_found")
    region_check(row.region_code)
    state = subjects.SubjectState(row.household_id, row.region_code, row.status, row.protected,
                                  row.removal_pending, row.protection_pending)
    events = await decide(state)
    stream = await uow.events.load(f"subject-{household_id}")
    await uow.append(stream.stream_id, stream.position, [
        NewEvent(e, household_id=household_id, region_code=row.region_code) for e in events])
    for event in events:
        state = subjects.apply(state, event)
    return state


# --- over HTTP: each answers with the row of the case or subject it changed --------------------------

def line_for(settings: Settings, region_code: str, year: int) -> Decimal:
    """The line of the findings' income year; a year without one is the caller's to correct (state
    another income_year) or the deployment's (add the row the problem names)."""
    try:
        return monitoring_lines(settings.monitoring_lines).line_for(region_code, year)
    except MissingMonitoringLine as exc:
        raise Problem(422, "Invalid request", f"income_year: {exc}", errors=[{"field": "income_year", "message": str(exc)}],
                      code="monitoring_line_missing", type_="https://fangpin.dev/problems/missing-monitoring-line") from exc


async def _step(ctx: ServiceContext, principal: Principal, meta: EventMetadata, case_id: str, make_command) -> Any:
    """Take one ladder step for `principal` (refusals name the step the case expects and who may take it)."""
    await run_command(ctx, meta, lambda uow: take_step(
        uow, case_id, principal.role, lambda region: require_region(principal, region), make_command))
    async with ctx.sessions() as session:
        return await store.case_row(session, case_id)


@dataclass(frozen=True)
class Verification:
    case: Any  # the case's row after the visit
    recommendation: Recommendation
    income_year: int
    monitoring_line: Decimal  # yuan per person per year, the line of `income_year` for the case's region


async def record_verification(ctx: ServiceContext, principal: Principal, meta: EventMetadata, case_id: str,
                              findings: Findings, risk_types: list[RiskType], income_year: int | None) -> Verification:
    """入户核查: the findings, held to the monitoring line of their income year (default: the clock's)."""
    this_year = ctx.clock.now().year
    year = this_year if income_year is None else income_year
    if year > this_year:
        raise field_error("income_year", f"must not be after the current year {this_year}: no income of {year} is known yet",
                          code="income_year_in_future")
    lines: list[Decimal] = []  # the line as looked up for the case's region (once per attempt of the unit of work)

    def command(state: ladder.CaseState) -> ladder.RecordVerification:
        lines.append(line_for(ctx.settings, state.region_code, year))
        return ladder.RecordVerification(findings, lines[-1], tuple(risk_types), income_year=year)

    case = await _step(ctx, principal, meta, case_id, command)
    # the rule the ladder recorded, on the same findings and line
    return Verification(case, recommend(findings, lines[-1]), year, lines[-1])


async def deliberate(ctx: ServiceContext, principal: Principal, meta: EventMetadata, case_id: str,
                     decision: Literal["propose", "not_propose"], attendees: int, minutes: str) -> Any:
    """村级评议."""
    return await _step(ctx, principal, meta, case_id, lambda state: ladder.Deliberate(decision, attendees, minutes))


async def raise_objection(ctx: ServiceContext, principal: Principal, meta: EventMetadata, case_id: str,
                          by: str, reason: str) -> tuple[str, Any]:
    """An objection during the public notice: its id, and the case."""
    objection_id = new_id_str()
    case = await _step(ctx, principal, meta, case_id, lambda state: ladder.RaiseObjection(objection_id, by, reason))
    return objection_id, case


async def resolve_objection(ctx: ServiceContext, principal: Principal, meta: EventMetadata, case_id: str,
                            objection_id: str, upheld: bool, note: str) -> Any:
    return await _step(ctx, principal, meta, case_id, lambda state: ladder.ResolveObjection(objection_id, upheld, note))


async def review_at_township(ctx: ServiceContext, principal: Principal, meta: EventMetadata, case_id: str,
                             decision: Literal["pass", "return"], comment: str) -> Any:
    """乡镇初审."""
    return await _step(ctx, principal, meta, case_id, lambda state: ladder.TownshipReview(decision, comment))


async def decide_at_county(ctx: ServiceContext, principal: Principal, meta: EventMetadata, case_id: str,
                           decision: Literal["approve", "reject"], category: ladder.Category | None,
                           risk_types: list[RiskType], reason: str) -> Any:
    """县级审定."""
    return await _step(ctx, principal, meta, case_id, lambda state: ladder.CountyDecision(
        decision, category, tuple(risk_types), reason))


async def _subject_change(ctx: ServiceContext, principal: Principal, meta: EventMetadata, household_id: str, decide) -> Any:
    """Change a subject by `decide(uow, state)`'s events, for `principal`."""
    await run_command(ctx, meta, lambda uow: change_subject(
        uow, household_id, lambda region: require_region(principal, region), lambda state: decide(uow, state)))
    async with ctx.sessions() as session:
        return await store.subject_row(session, household_id)


async def propose_removal(ctx: ServiceContext, principal: Principal, meta: EventMetadata, household_id: str,
                          reason: str) -> Any:
    async def decide(uow, state):
        return subjects.propose_removal(state, reason, principal.role)
    return await _subject_change(ctx, principal, meta, household_id, decide)


async def decide_removal(ctx: ServiceContext, principal: Principal, meta: EventMetadata, household_id: str,
                         decision: Literal["approve", "reject"], comment: str) -> Any:
    async def decide(uow, state):
        return subjects.decide_removal(state, decision, comment, principal.role)
    return await _subject_change(ctx, principal, meta, household_id, decide)


async def propose_protection(ctx: ServiceContext, principal: Principal, meta: EventMetadata, household_id: str,
                             note: str) -> Any:
    async def decide(uow, state):
        can_work = await store.any_member_can_work(uow.session, household_id)
        return subjects.propose_protection(state, can_work, note, principal.role)
    return await _subject_change(ctx, principal, meta, household_id, decide)


async def decide_protection(ctx: ServiceContext, principal: Principal, meta: EventMetadata, household_id: str,
                            decision: Literal["confirm", "decline"], comment: str) -> Any:
    async def decide(uow, state):
        return subjects.decide_protection(state, decision, comment, principal.role)
    return await _subject_change(ctx, principal, meta, household_id, decide)
