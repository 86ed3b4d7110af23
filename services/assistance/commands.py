"""assistance's use cases, one async function per command, called by the routes (api/), the event
handlers (handlers.py) and the clock (jobs.py). Each loads the household's plan (its stream, and the
facts assistance mirrors), lets domain/ decide, and appends the decision with the gaps the plan rules
then find or see mended, in one append to the plan's stream."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from contracts.assistance import (
    HelperAssigned, HelperNotFound, HelperReassigned, HelperVisitRecorded, IncomeRecorded, IncomeSource, MeasureAssigned, MeasureCancelled,
    MeasureCompleted, MeasureProgressNoted, PlanClosed, PlanOpened, PlanRiskAdded,
)
from contracts.base import EventPayload, decode_payload
from contracts.envelope import EventEnvelope
from contracts.codes import Refusal
from runtime.auth import Principal, require_region
from runtime.problems import Problem
from runtime.eventstore import NewEvent, Stream, StreamHead
from runtime.ids import new_id_str
from runtime.service import UnitOfWork, caused_by
from runtime.settings import Settings
from services.assistance import reference, store
from services.assistance.domain import Helper, PlanRules, PlanState, check_plan, choose_helper, plan_from_history
from services.assistance.domain.plans import ACTIVE, apply, period_bounds
from services.assistance.domain.refusals import Invalid, NotAllowed, NotFound, OutOfOrder

if TYPE_CHECKING:  # the parsed request rows the routes hand over
    from services.assistance.api.measures import ConfirmationIn
    from services.assistance.api.plans import IncomeLine

STAFF_WHO_ASSIST = ("helper", "village_cadre", "work_team", "township_officer", "county_officer")
STAFF_WHO_REASSIGN = ("township_officer", "county_officer")


def rules(settings: Settings) -> PlanRules:
    return PlanRules(first_measure_days=settings.first_measure_days)


def plan_stream(household_id: str) -> str:
    """One household, one plan (一户一案): its whole life, reopenings included, in one stream."""
    return f"plan-{household_id}"


async def load_plan(uow: UnitOfWork, household_id: str) -> tuple[Stream, PlanState | None]:
    """The plan's stream and state, with the household facts assistance mirrors (can a member work,
    is it protected)."""
    stream = await uow.events.load(plan_stream(household_id))
    return stream, _plan_of(stream, await store.household_facts_of(uow.session, household_id) if stream.events else None)


def _plan_of(stream: Stream, facts) -> PlanState | None:
    plan = plan_from_history([decode_payload(e) for e in stream.events])
    if plan is not None and facts is not None:
        plan = replace(plan, labour_capable=facts.any_member_can_work, protected=facts.protected)
    return plan


async def decide(uow: UnitOfWork, stream: Stream, plan: PlanState | None, events: list[EventPayload],
                 region_code: str) -> PlanState:
    """Append `events` and, after them, the gaps the plan rules find or see mended."""
    plan, events = _with_gaps(uow, plan, events)
    if events:
        await uow.append(stream.stream_id, stream.position, [
            NewEvent(e, household_id=plan.household_id, region_code=region_code) for e in events])
    return plan


def _with_gaps(uow: UnitOfWork, plan: PlanState | None, events: list[EventPayload]) -> tuple[PlanState, list[EventPayload]]:
    """The plan after `events`, and `events` followed by the gaps the plan rules then find or see mended."""
    for event in events:
        plan = apply(plan, event)
    return plan, [*events, *check_plan(plan, uow.ctx.clock.now().date(), rules(uow.ctx.settings))]


# --- what screening and exit_review decided ------------------------------------------------------


class PlansAtHand:
    """The plans a run of consumed events changes (handlers.py), set-based: their streams and the facts
    assistance mirrors read in one query each, the helpers near them in one, each decision taken in
    memory in the run's order (a later event of a household finds the plan an earlier one left), and
    all appended in one statement by `save`. Each decision's events name the event that caused it."""

    def __init__(self, uow: UnitOfWork, streams: dict[str, Stream], facts: dict, helpers: list[Helper]) -> None:
        """`streams` and `facts` by household id."""
        self.uow, self.helpers = uow, helpers
        self.heads = {stream.stream_id: StreamHead(stream.stream_id, stream.position, stream.last_hash)
                      for stream in streams.values()}
        self.plans = {stream.stream_id: _plan_of(stream, facts.get(household))
                      for household, stream in streams.items()}
        self.new: dict[str, list[NewEvent]] = {}
        self.assigned: Counter[str] = Counter()  # households given to each helper here, not yet in the tables

    @classmethod
    async def load(cls, uow: UnitOfWork, household_ids: list[str], helpers_for_regions: set[str] = frozenset()) -> "PlansAtHand":
        """The plans of these households; the helpers of the villages and townships of `helpers_for_regions`
        (the regions of the plans that may open)."""
        households = sorted(set(household_ids))
        loaded = await uow.events.load_many(plan_stream(h) for h in households)
        streams = {h: loaded[plan_stream(h)] for h in households}
        facts = await store.household_facts_of_many(uow.session, households)
        return cls(uow, streams, facts, await store.helpers_near(uow.session, helpers_for_regions))

    def plan(self, household_id: str) -> PlanState | None:
        return self.plans[plan_stream(household_id)]

    def decide(self, household_id: str, region_code: str, events: list[EventPayload], cause: EventEnvelope | None) -> None:
        """`events`, then the gaps the plan rules find or see mended (as `decide` does), kept for `save`."""
        stream_id = plan_stream(household_id)
        self.plans[stream_id], events = _with_gaps(self.uow, self.plans[stream_id], events)
        self.new.setdefault(stream_id, []).extend(
            NewEvent(e, household_id=household_id, region_code=region_code, **(caused_by(cause) if cause else {}))
            for e in events)

    def helper_for(self, household_id: str, region_code: str) -> EventPayload:
        choice = choose_helper([replace(h, households=h.households + self.assigned[h.helper_id]) for h in self.helpers],
                               region_code, self.uow.ctx.settings.helper_max_households)
        if choice.helper is None:
            return HelperNotFound(household_id=household_id, region_code=region_code)
        self.assigned[choice.helper.helper_id] += 1
        return HelperAssigned(household_id=household_id, helper_id=choice.helper.helper_id,
                              households_after=choice.helper.households + 1, over_limit=choice.over_limit)

    async def save(self) -> None:
        await self.uow.append_many([(self.heads[stream_id], new) for stream_id, new in self.new.items() if new])

    # The decisions, each on one household's plan.

    def open(self, household_id: str, region_code: str, case_id: str | None, category: str | None, risk_types: list,
             identified_on: date, cause: EventEnvelope | None = None) -> None:
        """A subject identified: its plan opens (or reopens, keeping its history) with a helper at once."""
        plan = self.plan(household_id)
        events: list[EventPayload] = [PlanOpened(household_id=household_id, region_code=region_code, case_id=case_id,
                                                 category=category, risk_types=risk_types, identified_on=identified_on,
                                                 reopened=plan is not None)]
        if plan is None or plan.helper_id is None:
            events.append(self.helper_for(household_id, region_code))
        self.decide(household_id, region_code, events, cause)

    def reopen(self, household_id: str, cause: EventEnvelope | None = None) -> None:
        """风险消除回退: the exit was rolled back, the plan reopens with its history."""
        plan = self.plan(household_id)
        if plan is not None and not plan.open:
            self.decide(household_id, plan.region_code, [PlanOpened(
                household_id=household_id, region_code=plan.region_code, risk_types=list(plan.risk_types),
                identified_on=plan.identified_on, reopened=True)], cause)

    def close(self, household_id: str, reason: str, cause: EventEnvelope | None = None) -> None:
        plan = self.plan(household_id)
        if plan is not None and plan.open:
            self.decide(household_id, plan.region_code, [PlanClosed(household_id=household_id, reason=reason)], cause)

    def add_risk(self, household_id: str, clue_id: str, risk_types: list, cause: EventEnvelope | None = None) -> None:
        """A new risk of the subject: the plan is checked again and must answer it."""
        plan = self.plan(household_id)
        if plan is not None and plan.open:
            self.decide(household_id, plan.region_code,
                        [PlanRiskAdded(household_id=household_id, clue_id=clue_id, risk_types=risk_types)], cause)

    def check_again(self, household_id: str, cause: EventEnvelope | None = None) -> None:
        """The rules once more (the clock moved on, or a mirrored fact changed)."""
        plan = self.plan(household_id)
        if plan is not None and plan.open:
            self.decide(household_id, plan.region_code, [], cause)


async def check_again(uow: UnitOfWork, household_ids: list[str]) -> None:
    """A page of plans checked again (the clock's job), in one unit of work."""
    plans = await PlansAtHand.load(uow, household_ids)
    for household_id in household_ids:
        plans.check_again(household_id)
    await plans.save()


# --- what staff do over HTTP ---------------------------------------------------------------------


async def _plan_for(uow: UnitOfWork, principal: Principal, household_id: str, roles=STAFF_WHO_ASSIST,
                    after_exit: bool = False):
    """The open plan `principal` may change: a helper their own households', other staff their region's;
    `after_exit`: a plan closed by an approved exit too (its incomes, which the look-back reads)."""
    stream, plan = await load_plan(uow, household_id)
    if plan is None:
        raise NotFound("plan_not_found", f"household {household_id} has no plan: it is not a monitoring subject")
    if principal.role not in roles:
        raise NotAllowed("plan_role_not_allowed", f"this is for {' or '.join(roles)}, not {principal.role}",
                         allowed_roles=list(roles))
    require_region(principal, plan.region_code)
    if principal.role == "helper" and plan.helper_id != principal.sub:
        raise NotAllowed("not_your_household", "a helper acts on the households they help only")
    if not plan.open and not (after_exit and plan.closed_reason == "exit_approved"):
        raise OutOfOrder("plan_closed", "the plan is closed (the subject was removed or its exit approved)")
    return stream, plan


async def assign_measure(uow: UnitOfWork, principal: Principal, household_id: str, kind: str, member_id: str | None,
                         description: str, department: str | None, starts_on: date, planned_end: date | None,
                         amount: Decimal | None, quantity: int | None) -> str:
    catalogue = reference.measures_catalogue(uow.ctx.settings.measures_catalogue)
    measure = catalogue.get(kind)
    if measure is None:
        raise Invalid("measure_kind_unknown", "measure_type",
                      f"no measure {kind!r} in the catalogue (GET /v1/measures/catalogue)")
    if planned_end is not None and planned_end < starts_on:
        raise Invalid("measure_ends_before_start", "planned_end",
                      f"the planned end {planned_end} is before the start {starts_on}")
    stream, plan = await _plan_for(uow, principal, household_id)
    measure_id = new_id_str()
    await decide(uow, stream, plan, [MeasureAssigned(
        measure_id=measure_id, household_id=household_id, kind=kind, nature=measure.nature,
        answers=sorted(measure.answers), department=department or measure.department, member_id=member_id,
        description=description, amount=amount, quantity=quantity, starts_on=starts_on, planned_end=planned_end,
        assigned_by=principal.sub)], plan.region_code)
    return measure_id


async def record_progress(uow: UnitOfWork, principal: Principal, measure_id: str, status: str, note: str,
                          completed_on: date | None) -> str:
    """in_progress notes what was done; completed and cancelled end the measure. Returns the household."""
    row = await store.measure_row(uow.session, measure_id)
    if row is None:
        raise NotFound("measure_not_found", f"no measure {measure_id}")
    stream, plan = await _plan_for(uow, principal, row.household_id)
    standing = next(m for m in plan.measures if m.measure_id == measure_id)
    if standing.status != ACTIVE:
        raise OutOfOrder("measure_not_active", f"the measure is {standing.status}", measure_status=standing.status)
    today = uow.ctx.clock.now().date()
    event: EventPayload
    if status == "in_progress":
        event = MeasureProgressNoted(measure_id=measure_id, household_id=row.household_id, note=note)
    elif status == "completed":
        event = MeasureCompleted(measure_id=measure_id, household_id=row.household_id,
                                 completed_on=completed_on or today, delivered=note, confirmed_by=principal.sub)
    else:
        if not note.strip():
            raise Invalid("cancellation_without_reason", "note", "a cancelled measure says why")
        event = MeasureCancelled(measure_id=measure_id, household_id=row.household_id, reason=note)
    await decide(uow, stream, plan, [event], plan.region_code)
    return row.household_id


async def record_income(uow: UnitOfWork, principal: Principal, household_id: str, period: str,
                        net_income_per_person: Decimal, rigid_expenditure: Decimal,
                        sources: list[IncomeSource]) -> bool:
    """The household's income of a period; a period recorded again replaces the earlier record. False:
    the same figures were recorded already, nothing is appended (a bulk file sent twice)."""
    today = uow.ctx.clock.now().date()
    if period_bounds(period)[0] > today:
        raise Invalid("income_period_in_future", "period", f"the period {period} has not begun")
    stream, plan = await _plan_for(uow, principal, household_id, after_exit=True)
    recorded = next((r for r in await store.incomes_of(uow.session, household_id) if r.period == period), None)
    if recorded is not None and (recorded.net_income_per_person, recorded.rigid_expenditure) == (
            net_income_per_person, rigid_expenditure) and recorded.sources == [s.model_dump(mode="json") for s in sources]:
        return False
    await decide(uow, stream, plan, [IncomeRecorded(
        household_id=household_id, period=period, net_income_per_person=net_income_per_person,
        rigid_expenditure=rigid_expenditure, sources=sources, recorded_by=principal.sub)], plan.region_code)
    return True


@dataclass(slots=True)
class IncomeRow:
    """A row of a bulk income import (收入信息采集), and what came of it."""

    line: int
    outcome: Literal["recorded", "unchanged", "invalid"]
    household_id: str | None = None
    period: str | None = None
    field: str | None = None
    code: str | None = None
    reason: str | None = None


async def import_incomes(uow: UnitOfWork, principal: Principal, rows: list[tuple[int, "IncomeLine | IncomeRow"]]
                         ) -> list[IncomeRow]:
    """Incomes in bulk, each row as `record_income` takes one: `recorded`, `unchanged` when the same
    figures stand already, else `invalid` naming the field and the rule (no plan, a closed plan, a
    household outside the caller's region or not theirs, a period that has not begun)."""
    outcomes = []
    for line, row in rows:
        if isinstance(row, IncomeRow):
            outcomes.append(row)
            continue
        try:
            recorded = await record_income(uow, principal, row.household_id, row.period, row.per_capita_net_income,
                                           row.rigid_expenditure, row.sources)
        except (Refusal, Problem) as refused:  # a rule of the plan's, or the caller's region
            errors = (refused.details.get("errors") if isinstance(refused, Refusal) else refused.errors) or []
            field = errors[0]["field"] if errors else "household_id"
            outcomes.append(IncomeRow(line, "invalid", row.household_id, row.period, field, refused.code, str(refused)))
            continue
        outcomes.append(IncomeRow(line, "recorded" if recorded else "unchanged", row.household_id, row.period))
    return outcomes


async def reassign_helper(uow: UnitOfWork, principal: Principal, household_id: str, helper_id: str, reason: str) -> None:
    stream, plan = await _plan_for(uow, principal, household_id, roles=STAFF_WHO_REASSIGN)
    helper = await store.helper_of(uow.session, helper_id)
    if helper is None or not helper.active:
        raise Invalid("helper_unknown", "helper_id",
                      f"{helper_id} is not a helper in the staff directory (POST /v1/staff on notifier, role helper)")
    if helper_id == plan.helper_id:
        raise OutOfOrder("helper_unchanged", f"{helper_id} already helps this household")
    households = await store.helper_load(uow.session, helper_id) + 1
    await decide(uow, stream, plan, [HelperReassigned(
        household_id=household_id, from_helper_id=plan.helper_id, to_helper_id=helper_id, reason=reason,
        households_after=households, over_limit=households > uow.ctx.settings.helper_max_households)],
        plan.region_code)


async def record_visit(uow: UnitOfWork, principal: Principal, household_id: str, visited_on: date, findings: str) -> str:
    """A helper's visit (走访) to a household they help."""
    if visited_on > uow.ctx.clock.now().date():
        raise Invalid("visit_in_future", "visited_on", f"{visited_on} has not come yet")
    stream, plan = await _plan_for(uow, principal, household_id, roles=("helper",))
    visit_id = new_id_str()
    await decide(uow, stream, plan, [HelperVisitRecorded(visit_id=visit_id, household_id=household_id,
                                                         helper_id=principal.sub, visited_on=visited_on,
                                                         findings=findings)], plan.region_code)
    return visit_id


@dataclass(slots=True)
class ConfirmationRow:
    """A row of a department's bulk delivery confirmation, and what came of it."""

    line: int
    outcome: Literal["completed", "duplicate", "invalid"]
    measure_id: str | None = None
    household_id: str | None = None
    source_record_id: str | None = None
    field: str | None = None
    code: str | None = None
    reason: str | None = None


async def confirm_deliveries(uow: UnitOfWork, principal: Principal,
                             rows: list[tuple[int, "ConfirmationIn | ConfirmationRow"]]) -> list[ConfirmationRow]:
    """A department confirms, in bulk, the measures it delivered (e.g. civil affairs: 低保 granted):
    each row completes its measure once; a measure completed already is a `duplicate`, never a second
    completion; a measure of another department, cancelled, or of a closed plan is `invalid`, naming why."""
    today = uow.ctx.clock.now().date()
    outcomes = []
    for line, row in rows:
        if isinstance(row, ConfirmationRow):
            outcomes.append(row)
            continue

        def refuse(field: str, code: str, reason: str, household_id: str | None = None) -> None:
            outcomes.append(ConfirmationRow(line, "invalid", row.measure_id, household_id, row.source_record_id,
                                            field, code, reason))

        measure = await store.measure_row(uow.session, row.measure_id)
        if measure is None:
            refuse("measure_id", "measure_not_found", f"no measure {row.measure_id}")
            continue
        if measure.department != principal.department:
            refuse("measure_id", "department_mismatch", f"the measure is {measure.department}'s, not "
                   f"{principal.department}'s", measure.household_id)
            continue
        if row.completed_on > today:
            refuse("completed_on", "completion_in_future", f"{row.completed_on} has not come yet", measure.household_id)
            continue
        stream, plan = await load_plan(uow, measure.household_id)
        standing = next(m for m in plan.measures if m.measure_id == row.measure_id)
        if standing.status == "completed":
            outcomes.append(ConfirmationRow(line, "duplicate", row.measure_id, measure.household_id, row.source_record_id))
            continue
        if standing.status != ACTIVE or not plan.open:
            refuse("measure_id", "measure_not_active" if plan.open else "plan_closed",
                   f"the measure is {standing.status}" if plan.open else "the plan is closed", measure.household_id)
            continue
        await decide(uow, stream, plan, [MeasureCompleted(
            measure_id=row.measure_id, household_id=measure.household_id, completed_on=row.completed_on,
            delivered=row.delivered, confirmed_by=principal.sub, source_record_id=row.source_record_id)],
            plan.region_code)
        outcomes.append(ConfirmationRow(line, "completed", row.measure_id, measure.household_id, row.source_record_id))
    return outcomes
