"""exit_review's use cases, one async function per command, called by the routes (api/) and the
clock (jobs.py). Each loads the household's exit record (its stream: its exit cases one after
another), the subject and, when the blockers are to be judged, the evidence exit_review mirrors;
lets domain/ decide; and appends the decision to the household's stream, so two proposals for one
household cannot both open (the second finds the stream moved on and then the first case open)."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from contracts.base import EventPayload, decode_payload
from contracts.exit_review import ExitFindings
from contracts.reference import MissingMonitoringLine, monitoring_lines
from runtime.auth import Principal, require_region
from runtime.eventstore import NewEvent, Stream
from runtime.ids import new_id_str
from runtime.service import UnitOfWork
from runtime.settings import Settings
from services.exit_review import store
from services.exit_review.domain import after_exit, blockers, filings, ladder
from services.exit_review.domain import statistics as figures
from services.exit_review.domain.evidence import CaseRecord, Evidence
from services.exit_review.domain.record import HouseholdExits, fold
from services.exit_review.domain.refusals import NotFound, OutOfOrder


def exit_stream(household_id: str) -> str:
    """A household's exits, one case after another (a rejected or returned one, then the next)."""
    return f"exit-{household_id}"


def rules(settings: Settings) -> blockers.ExitRules:
    return blockers.ExitRules(settings.exit_look_back_months, settings.exit_satisfaction_bar,
                              settings.exit_findings_max_age_days, settings.exit_look_back_after_months)


def line_of(settings: Settings):
    table = monitoring_lines(settings.monitoring_lines)

    def line(region_code: str, year: int) -> Decimal | None:
        try:
            return table.line_for(region_code, year)
        except MissingMonitoringLine:
            return None  # the income blocker says which line is missing
    return line


async def load(uow: UnitOfWork, household_id: str) -> tuple[Stream, HouseholdExits]:
    """The household's stream and its exit record (its latest case, its last approved exit)."""
    stream = await uow.events.load(exit_stream(household_id))
    record = HouseholdExits()
    for envelope in stream.events:
        record = fold(record, decode_payload(envelope), envelope.recorded_at.date(), str(envelope.event_id))
    return stream, record


def actor_of(principal: Principal) -> ladder.Actor:
    return ladder.Actor(principal.sub, principal.role)


def today(uow: UnitOfWork) -> date:
    return uow.ctx.clock.now().date()


async def _append(uow: UnitOfWork, stream: Stream, region_code: str, events: list[EventPayload],
                  notice_ends: date | None = None) -> None:
    """Append, each ladder event with the due date of the step it leaves the case at."""
    if not events:
        return
    dated = []
    for event in events:
        notice_ends = getattr(event, "ends_on", notice_ends)
        if "due_date" in type(event).model_fields and event.step != ladder.Step.CLOSED:
            event = event.model_copy(update={"due_date": ladder.due_date(
                event.step, today(uow), notice_ends, uow.ctx.settings.exit_step_due_days)})
        dated.append(NewEvent(event, household_id=event.household_id, region_code=region_code))
    await uow.append(stream.stream_id, stream.position, dated)


async def propose(uow: UnitOfWork, principal: Principal, household_id: str, findings: ExitFindings, attendees: int,
                  minutes: str, consents: list[ladder.RecordConsent]) -> str:
    """The village's proposal, with the consents its proposer records at once (their own party's,
    the household's signature); the case then waits for the others."""
    subject = await store.subject_of(uow.session, household_id)
    if subject is not None:
        require_region(principal, subject.region_code)
    stream, record = await load(uow, household_id)
    open_exit = record.open_case.exit_id if record.open_case else None
    exit_id = new_id_str()
    events = ladder.propose(subject, household_id, open_exit, exit_id, findings, attendees, minutes, actor_of(principal),
                            today(uow))
    state = ladder.apply(None, events[0], today(uow), "")
    for consent in consents:
        decided = ladder.decide(state, consent, actor_of(principal), subject, today(uow), _judge(uow, None))
        for event in decided:
            state = ladder.apply(state, event, today(uow), "")
        events += decided
    await _append(uow, stream, subject.region_code, events)
    return exit_id


def _judge(uow: UnitOfWork, evidence: Evidence | None):
    def judge(record: CaseRecord):
        assert evidence is not None, "the evidence is loaded before the last consent"
        window, verdicts = blockers.assess(evidence, record, today(uow), rules(uow.ctx.settings), line_of(uow.ctx.settings))
        return blockers.RULE_VERSION, window, verdicts
    return judge


async def household_of(uow: UnitOfWork, principal: Principal, exit_id: str) -> str:
    row = await store.exit_row(uow.session, exit_id)
    if row is None:
        raise NotFound("exit_not_found", f"no exit case {exit_id}")
    require_region(principal, row.region_code)
    return row.household_id


async def take_step(uow: UnitOfWork, principal: Principal, exit_id: str, command: ladder.Command) -> ladder.ExitState:
    """One step of an open case, by a member of staff."""
    household_id = await household_of(uow, principal, exit_id)
    stream, record = await load(uow, household_id)
    state = record.case
    if state is None or state.exit_id != exit_id:
        raise OutOfOrder("exit_closed", f"exit case {exit_id} is closed: household {household_id} has a later one",
                         expected_step="closed", allowed_roles=[])
    subject = await store.subject_of(uow.session, household_id)
    evidence = None
    if isinstance(command, ladder.RecordConsent) and len(state.consents) == len(blockers.PARTIES) - 1:
        evidence = await store.evidence_of(uow.session, household_id, state.region_code)
    events = ladder.decide(state, command, actor_of(principal), subject, today(uow), _judge(uow, evidence))
    await _append(uow, stream, state.region_code, events, state.notice_ends)
    for event in events:
        state = ladder.apply(state, event, today(uow), "")
    return state


SCHEDULER = ladder.Actor("exit_review-scheduler", "scheduler")


async def close_notice(uow: UnitOfWork, household_id: str) -> None:
    stream, record = await load(uow, household_id)
    if record.open_case is not None and record.open_case.step is ladder.Step.PUBLIC_NOTICE:
        events = ladder.decide(record.open_case, ladder.CloseNotice(), SCHEDULER, None, today(uow), _judge(uow, None))
        await _append(uow, stream, record.open_case.region_code, events, record.open_case.notice_ends)


async def mark_look_back_due(uow: UnitOfWork, household_id: str) -> None:
    stream, record = await load(uow, household_id)
    events = after_exit.due_look_back(record.exited, today(uow), uow.ctx.settings.exit_look_back_after_months)
    await _append(uow, stream, record.exited.region_code if record.exited else "", events)


async def complete_look_back(uow: UnitOfWork, principal: Principal, exit_id: str, note: str) -> None:
    household_id = await household_of(uow, principal, exit_id)
    stream, record = await load(uow, household_id)
    region = record.exited.region_code if record.exited else ""
    evidence = await store.evidence_of(uow.session, household_id, region)
    await _append(uow, stream, region, after_exit.complete_look_back(
        record.exited, exit_id, evidence, actor_of(principal), today(uow), rules(uow.ctx.settings),
        line_of(uow.ctx.settings), note))


async def _after_exit(uow: UnitOfWork, principal: Principal, household_id: str, decide) -> None:
    subject = await store.subject_of(uow.session, household_id)
    if subject is not None:
        require_region(principal, subject.region_code)
    stream, record = await load(uow, household_id)
    if record.exited is not None:
        require_region(principal, record.exited.region_code)
    await _append(uow, stream, record.exited.region_code if record.exited else "", decide(record.exited))


async def request_rollback(uow: UnitOfWork, principal: Principal, household_id: str, reason: str) -> None:
    await _after_exit(uow, principal, household_id, lambda exited: after_exit.request_rollback(
        exited, household_id, reason, actor_of(principal)))


async def decide_rollback(uow: UnitOfWork, principal: Principal, household_id: str, decision, comment: str) -> None:
    await _after_exit(uow, principal, household_id, lambda exited: after_exit.decide_rollback(
        exited, household_id, decision, comment, actor_of(principal)))


def filing_stream(level: str, region: str, period: str) -> str:
    return f"filing-{level}-{region}-{period}"


async def file_statistics(uow: UnitOfWork, principal: Principal, period: figures.Period, found: dict) -> None:
    """The caller's township or county files its month's figures (`found`, as GET /v1/statistics gives
    them); the filing's own stream makes a second one, even sent at the same moment, refused."""
    level = filings.LEVELS.get(principal.role, ("", 0))[0]
    stream = await uow.events.load(filing_stream(level, principal.region, period.label))
    already = any(e.event_type == "StatisticsFiled" for e in stream.events)
    events = filings.file(principal.role, principal.region, period, already, today(uow), found)
    await uow.append(stream.stream_id, stream.position, [NewEvent(e, region_code=principal.region) for e in events])


async def report_overdue_filings(uow: UnitOfWork, period: figures.Period) -> None:
    for level, length in (("township", 9), ("county", 6)):
        regions = await store.regions_with_subjects(uow.session, length)
        rows = await store.filing_rows(uow.session, "", period.label, level)
        filed = {r.region_code for r in rows if r.filed_at is not None}
        reported = {r.region_code for r in rows if r.overdue}
        for event in filings.overdue(level, regions, period, filed, reported, today(uow)):
            stream = await uow.events.load(filing_stream(level, event.region_code, period.label))
            await uow.append(stream.stream_id, stream.position, [NewEvent(event, region_code=event.region_code)])
