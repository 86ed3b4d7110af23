"""What screening does when something happens: a clue arrives, a ladder step is taken (by a
person over HTTP or by the clock), a notice's days run out."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from contracts.base import decode_payload
from contracts.envelope import Actor, EventEnvelope
from contracts.intake import ClueFacts
from contracts.screening import (
    CaseStepOverdue, IdentificationRejected, QualityIssueRaised, SubjectIdentified, SubjectRiskAdded, VerificationCaseOpened,
)
from contracts.vocabulary import LaborCapacity
from runtime.eventstore import EventMetadata, NewEvent, StreamHead
from runtime.ids import new_id_str
from runtime.problems import Problem
from runtime.service import EventHandler, ServiceContext, UnitOfWork, run_command
from services.screening import domain, store
from services.screening.domain import OpenCase, ladder, subjects


ALLOWANCE_INDICATORS = {("civil_affairs", "new_dibao"), ("civil_affairs", "new_tekun")}


async def on_risk_clue_raised(uow: UnitOfWork, envelope: EventEnvelope) -> None:
    await take_clues(uow, [(decode_payload(envelope), envelope.region_code)], envelope.occurred_at)


async def on_risk_clues_raised(uow: UnitOfWork, envelope: EventEnvelope) -> None:
    await take_clues(uow, [(clue, clue.region_code) for clue in decode_payload(envelope).clues], envelope.occurred_at)


async def take_clues(uow: UnitOfWork, clues: list[tuple[ClueFacts, str]], occurred_at: datetime) -> None:
    """Clues (with their regions) into cases and subjects, a handful of statements however many:
    each clue opens its household's case, joins the open case, or adds a risk to its subject. The
    decisions are domain.take_clue's, one clue after the other, so that a later clue of a household
    finds the case an earlier one opened."""
    households = list({clue.household_id for clue, _ in clues})
    open_cases = await store.open_cases_of(uow.session, households)
    monitored = await store.monitored_subjects(uow.session, households)
    now = uow.ctx.clock.now()
    due_days = uow.ctx.settings.step_due_days["verification_visit"]
    # watched for 体外循环: an allowance clue must end in a subject or an open case within out_of_loop_days
    await store.watch_allowances(uow.session, [
        {"clue_id": clue.clue_id, "household_id": clue.household_id, "region_code": region_code,
         "indicator": clue.indicator, "observed_at": clue.observed_at or occurred_at}
        for clue, region_code in clues if (clue.source.department, clue.indicator) in ALLOWANCE_INDICATORS])
    appends: dict[str, list[NewEvent]] = {}
    opened: dict[str, dict] = {}  # case_id -> its new row
    joined: dict[str, OpenCase] = {}  # case_id -> the case with the clues it was given
    for clue, region_code in clues:
        household = clue.household_id
        for event in domain.take_clue(open_cases.get(household), clue, region_code, new_id_str(), now.date(),
                                      due_days, monitored.get(household)):
            new = NewEvent(event, household_id=household, region_code=region_code)
            if isinstance(event, SubjectRiskAdded):
                appends.setdefault(f"subject-{household}", []).append(new)
                subject = monitored[household]
                monitored[household] = replace(subject, clue_ids=(*subject.clue_ids, clue.clue_id))
                await store.add_subject_risk(uow.session, household, clue.clue_id, [r.value for r in event.risk_types], now)
                continue
            appends.setdefault(f"case-{event.case_id}", []).append(new)
            risk_types = [r.value for r in event.risk_types]
            if isinstance(event, VerificationCaseOpened):
                open_cases[household] = OpenCase(event.case_id, household, (clue.clue_id,), tuple(risk_types))
                opened[event.case_id] = {
                    "case_id": event.case_id, "household_id": household, "region_code": event.region_code,
                    "status": "open", "step": event.step, "due_date": event.due_date, "risk_types": risk_types,
                    "clue_ids": [clue.clue_id], "opened_at": now, "updated_at": now}
                continue
            case = open_cases[household]
            case = open_cases[household] = replace(case, clue_ids=(*case.clue_ids, clue.clue_id),
                                                   risk_types=tuple(sorted(set(case.risk_types) | set(risk_types))))
            if case.case_id in opened:  # opened by an earlier clue of these: the new row says it all
                opened[case.case_id].update(clue_ids=list(case.clue_ids), risk_types=list(case.risk_types))
            else:
                joined[case.case_id] = case
    heads = await uow.events.last_events([stream for stream in appends if not stream.startswith("case-")
                                          or stream.removeprefix("case-") not in opened])
    await uow.append_many([
        (StreamHead(stream, heads[stream].stream_position, heads[stream].hash) if stream in heads else StreamHead(stream), new)
        for stream, new in appends.items()])
    await store.insert_cases(uow.session, list(opened.values()))
    await store.save_case_clues(uow.session, list(joined.values()), now)


async def take_step(uow: UnitOfWork, case_id: str, actor_role: str, region_check, make_command) -> ladder.CaseState:
    """Load the case, let the ladder decide on `make_command(state)`, append its events and keep the
    cases (and subjects) tables in step. `region_check(region_code)` raises when the actor may not act."""
    stream = await uow.events.load(f"case-{case_id}")
    if not stream.events:
        raise Problem(404, "Not found", f"no case {case_id}", code="case_not_found")
    state = ladder.case_from_history([decode_payload(e) for e in stream.events])
    region_check(state.region_code)
    now = uow.ctx.clock.now()
    decided = ladder.decide(state, make_command(state), actor_role, now.date())
    if not decided:
        return state
    payloads = []
    for event in decided:
        payloads.append(ladder.as_contract(state, event))
        state = ladder.apply(state, event)
    await uow.append(stream.stream_id, stream.position, [
        NewEvent(p, household_id=state.household_id, region_code=state.region_code) for p in payloads])
    progress = {"step": state.step.value, "notice_ends": state.notice_ends, "updated_at": now,
                "risk_types": [str(r) for r in state.risk_types]}
    due_days = uow.ctx.settings.step_due_days.get(state.step.value)
    if state.step is ladder.Step.PUBLIC_NOTICE and state.notice_ends:
        progress["due_date"] = state.notice_ends
    elif due_days is not None:
        progress["due_date"] = now.date() + timedelta(days=due_days)
    for payload in payloads:
        if isinstance(payload, SubjectIdentified):
            progress.update(status="closed", outcome="identified")
            await store.save_subject(uow.session, {
                "household_id": state.household_id, "region_code": state.region_code, "case_id": state.case_id,
                "category": payload.category, "risk_types": [r.value for r in payload.risk_types],
                "status": "monitored", "protected": False, "clue_ids": [], "removal_pending": False,
                "protection_pending": False, "identified_at": now, "updated_at": now})
        elif isinstance(payload, IdentificationRejected):
            progress.update(status="closed", outcome="rejected")
    await store.save_case_progress(uow.session, state.case_id, progress)
    return state


SCHEDULER = Actor(kind="system", id="screening-scheduler", role="scheduler")


async def close_due_notices(ctx: ServiceContext) -> None:
    """Close every public notice whose five days have passed and that no open objection holds."""
    async with ctx.sessions() as session:
        due = await store.notices_due(session, ctx.clock.now().date())
    for case_id in due:
        await run_command(ctx, EventMetadata(actor=SCHEDULER), lambda uow, case_id=case_id: take_step(
            uow, case_id, "scheduler", lambda region: None, lambda state: ladder.CloseNotice()))


async def on_household_facts(uow: UnitOfWork, envelope: EventEnvelope) -> None:
    """Whether any member can work decides the protected mark; screening keeps just that."""
    household = decode_payload(envelope)
    can_work = any(m.labor_capacity != LaborCapacity.NONE for m in household.members)
    await store.save_household_labour(uow.session, household.household_id, can_work, uow.ctx.clock.now())


async def on_exit_approved(uow: UnitOfWork, envelope: EventEnvelope) -> None:
    exit_ = decode_payload(envelope)
    await store.update_subject(uow.session, exit_.household_id, {"status": subjects.RISK_ELIMINATED,
                                                                 "updated_at": uow.ctx.clock.now()})


async def on_exit_rolled_back(uow: UnitOfWork, envelope: EventEnvelope) -> None:
    """风险消除回退: the subject is monitored again."""
    rollback = decode_payload(envelope)
    await store.update_subject(uow.session, rollback.household_id, {"status": subjects.MONITORED,
                                                                    "updated_at": uow.ctx.clock.now()})


async def change_subject(uow: UnitOfWork, household_id: str, region_check, decide) -> subjects.SubjectState:
    """Load the subject (locked), let `decide(state)` return its events, append them to the subject's
    stream and keep the subjects table in step."""
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
    await store.update_subject(uow.session, household_id, {
        "status": state.status, "protected": state.protected, "removal_pending": state.removal_pending,
        "protection_pending": state.protection_pending, "updated_at": uow.ctx.clock.now()})
    return state


async def check_out_of_loop(ctx: ServiceContext) -> None:
    """体外循环: a new minimum-allowance or extreme-poverty household that, `out_of_loop_days` later,
    is neither a subject nor in an open case raises a quality issue (once)."""
    now = ctx.clock.now()

    async def work(uow: UnitOfWork) -> None:
        due = await store.allowance_watches_due(uow.session, now - timedelta(days=ctx.settings.out_of_loop_days))
        issues = [QualityIssueRaised(
            issue_id=new_id_str(), household_id=watch.household_id, region_code=watch.region_code,
            kind="out_of_loop", detail=f"{watch.indicator} since {watch.observed_at.date()}, but after "
            f"{ctx.settings.out_of_loop_days} days neither a monitoring subject nor in an open case",
        ) for watch in due if not watch.in_loop]
        await uow.append_many([(StreamHead(f"quality-{issue.issue_id}"), [
            NewEvent(issue, household_id=issue.household_id, region_code=issue.region_code)]) for issue in issues])
        await store.save_quality_issues(uow.session, [{**issue.model_dump(), "raised_at": now} for issue in issues])
        await store.mark_watches_checked(uow.session, [w.clue_id for w in due], now)

    await run_command(ctx, EventMetadata(actor=SCHEDULER), work)


async def report_overdue_steps(ctx: ServiceContext) -> None:
    """Publish CaseStepOverdue once per case, step and due date, for the notifier to escalate."""
    today = ctx.clock.now().date()

    async def work(uow: UnitOfWork) -> None:
        overdue = await store.overdue_unreported(uow.session, today)
        await uow.append_many([(StreamHead(f"overdue-{case.case_id}-{case.step}-{case.due_date}"), [NewEvent(
            CaseStepOverdue(case_id=case.case_id, household_id=case.household_id, region_code=case.region_code,
                            step=case.step, due_date=case.due_date),
            household_id=case.household_id, region_code=case.region_code)]) for case in overdue])
        await store.mark_overdue_reported(uow.session, [case.case_id for case in overdue])

    await run_command(ctx, EventMetadata(actor=SCHEDULER), work)


async def run_checks(ctx: ServiceContext) -> None:
    """Everything screening does by the clock, in order."""
    await close_due_notices(ctx)
    await report_overdue_steps(ctx)
    await check_out_of_loop(ctx)


HANDLERS: dict[str, EventHandler] = {
    "RiskClueRaised": on_risk_clue_raised,
    "RiskCluesRaised": on_risk_clues_raised,
    "HouseholdRegistered": on_household_facts,
    "HouseholdUpdated": on_household_facts,
    "ExitApproved": on_exit_approved,
    "ExitRolledBack": on_exit_rolled_back,
}
