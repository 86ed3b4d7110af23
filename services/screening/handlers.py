"""What screening does when something happens: a clue arrives, a ladder step is taken (by a
person over HTTP or by the clock), a notice's days run out."""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from contracts.base import decode_payload
from contracts.envelope import Actor, EventEnvelope
from contracts.screening import IdentificationRejected, SubjectIdentified, SubjectRiskAdded, VerificationCaseOpened
from runtime.eventstore import EventMetadata, NewEvent
from runtime.ids import new_id_str
from runtime.problems import Problem
from runtime.service import EventHandler, ServiceContext, UnitOfWork, run_command
from services.screening import domain, store
from services.screening.domain import ladder


async def on_risk_clue_raised(uow: UnitOfWork, envelope: EventEnvelope) -> None:
    clue = decode_payload(envelope)
    open_case = await store.open_case_of(uow.session, clue.household_id)
    subject = await store.monitored_subject(uow.session, clue.household_id)
    now = uow.ctx.clock.now()
    new = domain.take_clue(open_case, clue, envelope.region_code, new_id_str(), now.date(),
                           uow.ctx.settings.step_due_days["verification_visit"], subject)
    for event in new:
        if isinstance(event, SubjectRiskAdded):
            stream = await uow.events.load(f"subject-{clue.household_id}")
            await uow.append(stream.stream_id, stream.position, [
                NewEvent(event, household_id=clue.household_id, region_code=envelope.region_code)])
            await store.add_subject_risk(uow.session, clue.household_id, clue.clue_id,
                                         [r.value for r in event.risk_types], now)
            continue
        stream = f"case-{event.case_id}"
        position = 0 if isinstance(event, VerificationCaseOpened) else (await uow.events.load(stream)).position
        await uow.append(stream, position, [NewEvent(event, household_id=clue.household_id, region_code=envelope.region_code)])
        if isinstance(event, VerificationCaseOpened):
            await uow.session.execute(store.cases.insert().values(
                case_id=event.case_id, household_id=event.household_id, region_code=event.region_code, status="open",
                step=event.step, due_date=event.due_date, risk_types=[r.value for r in event.risk_types],
                clue_ids=[event.clue_id], opened_at=now, updated_at=now,
            ))
        else:
            await uow.session.execute(
                sa.update(store.cases).where(store.cases.c.case_id == event.case_id).values(
                    clue_ids=[*open_case.clue_ids, event.clue_id],
                    risk_types=sorted(set(open_case.risk_types) | {r.value for r in event.risk_types}),
                    updated_at=now,
                )
            )


async def take_step(uow: UnitOfWork, case_id: str, actor_role: str, region_check, make_command) -> ladder.CaseState:
    """Load the case, let the ladder decide on `make_command(state)`, append its events and keep the
    cases (and subjects) tables in step. `region_check(region_code)` raises when the actor may not act."""
    stream = await uow.events.load(f"case-{case_id}")
    if not stream.events:
        raise Problem(404, "Not found", f"no case {case_id}")
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
                "risk_types": [r.value if hasattr(r, "value") else r for r in state.risk_types]}
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
                "status": "monitored", "protected": False, "clue_ids": [], "identified_at": now, "updated_at": now})
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


HANDLERS: dict[str, EventHandler] = {"RiskClueRaised": on_risk_clue_raised}
