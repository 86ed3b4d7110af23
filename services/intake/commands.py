"""intake's use cases, one async function per command, called by the routes (api/) and, should
intake come to consume events, by handlers.py. Each loads what it needs, asks domain/ for the
decision and writes events and rows in the caller's unit of work (or its own: run_command)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from contracts.base import DumpedPayload, decode_payload
from contracts.intake import RiskClueRaised, RiskCluesRaised, VisitRecorded, WarningUnmatched
from contracts.vocabulary import ClueChannel, RiskType
from runtime.auth import Principal, require_region
from runtime.eventstore import EventMetadata, NewEvent, StreamHead
from runtime.ids import new_id_str
from runtime.kafka import partition_of
from runtime.service import ServiceContext, UnitOfWork, run_command
from services.intake import domain, reference, store
from services.intake.vault import IdentityVault

if TYPE_CHECKING:  # the parsed request bodies the routes hand over
    from services.intake.api.declarations import DeclarationIn
    from services.intake.api.households import HouseholdIn
    from services.intake.api.visits import VisitIn
    from services.intake.api.warnings import WarningIn


# Clues (风险线索), whichever channel raises them.

@lru_cache(maxsize=4096)
def _labels(department: str | None, indicator: str | None, risk_types: tuple[RiskType, ...], period_year: int,
            poverty_status: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A clue's risk types and priority groups as spelled in events and rows: worked out once per
    combination, of which a batch of a million rows has a handful. The groups are those of the
    screening of the facts' own year: a December warning raised in January is one of December's year."""
    groups = domain.priority_groups(department, indicator, list(risk_types), period_year, poverty_status,
                                    current_year=period_year)
    return tuple(r.value for r in risk_types), tuple(g.value for g in groups)


def raise_clue(
    clue_id: str, household: store.HouseholdRef, channel: ClueChannel, now: datetime, risk_types: list[RiskType], *,
    department: str | None = None, source_record_id: str | None = None, worker_id: str | None = None,
    indicator: str | None = None, amount: Decimal | None = None, observed_at: datetime | None = None,
    detail: str | None = None, over_threshold: bool | None = None,
) -> dict:
    """A clue of any channel, marked with the priority groups its facts put the household in: what
    it says, as a BatchedClue in JSON (built as such: a batch upload makes one per row, and models
    built only to be dumped again cost more than the rest of the row). Its row in `clues` is the
    projection's to write, from the event it goes out in."""
    period_year = (observed_at or now).year  # as the sender wrote it: its offset keeps the local year
    risk_spelled, groups_spelled = _labels(department, indicator, tuple(risk_types), period_year,
                                           household.poverty_status)
    source = {"department": department, "source_record_id": source_record_id, "worker_id": worker_id,
              "over_threshold": over_threshold}
    return {"clue_id": clue_id, "household_id": household.household_id, "region_code": household.region_code,
            "channel": channel.value, "source": source,
            "indicator": indicator, "amount": None if amount is None else str(amount),
            "observed_at": None if observed_at is None else observed_at.isoformat(),
            "risk_types": list(risk_spelled), "priority_groups": list(groups_spelled), "detail": detail}


def new_clue(clue_id: str, household: store.HouseholdRef, channel: ClueChannel, now: datetime,
             risk_types: list[RiskType], **facts) -> tuple[StreamHead, list[NewEvent]]:
    """A clue raised on its own: its RiskClueRaised event (a new stream)."""
    return clue_on_its_own(raise_clue(clue_id, household, channel, now, risk_types, **facts))


def clue_on_its_own(clue: dict) -> tuple[StreamHead, list[NewEvent]]:
    """One clue (from raise_clue) as its own RiskClueRaised event, validated as it is made."""
    event = RiskClueRaised.model_validate({name: value for name, value in clue.items() if name != "region_code"})
    return StreamHead(f"clue-{event.clue_id}"), [NewEvent(event, household_id=event.household_id,
                                                          region_code=clue["region_code"], occurred_at=event.observed_at)]


def clues_together(clues: list[dict], partitions: int) -> list[tuple[StreamHead, list[NewEvent]]]:
    """Many clues (from raise_clue) in a few events: one RiskCluesRaised per topic partition their
    households fall in, keyed by the first of them, so that each clue travels in its household's
    partition."""
    by_partition: dict[int, list[dict]] = {}
    for clue in clues:
        by_partition.setdefault(partition_of(clue["household_id"].encode(), partitions), []).append(clue)
    return [(StreamHead(f"clues-{new_id_str()}"), [NewEvent(DumpedPayload(RiskCluesRaised, {"clues": group}),
                                                            partition_key=group[0]["household_id"])])
            for group in by_partition.values()]


# Households: registration, one or a batch.

class HouseholdRow(BaseModel):
    line: int
    household_id: str | None = None
    outcome: Literal["registered", "updated", "unchanged", "invalid"]
    field: str | None = None
    code: str | None = Field(None, description="invalid: the rule, a stable code (GET /v1/codes) or pydantic's error type")
    reason: str | None = None
    status: int = Field(422, exclude=True)


async def register_households(
    uow: UnitOfWork, principal: Principal, rows: list[tuple[int, HouseholdIn | HouseholdRow]], notices: list[str]
) -> list[HouseholdRow]:
    """Register or update households set-based (a few queries per call, whatever the rows), and
    re-match warnings that were waiting for their members. A single POST is a batch of one."""
    ctx = uow.ctx
    vault = IdentityVault(ctx.settings)
    regions = reference.load_region_table(ctx.settings.region_table)
    now = ctx.clock.now()
    outcomes: dict[int, HouseholdRow] = {}
    valid: list[tuple[int, HouseholdIn]] = []
    seen_households: set[str] = set()
    seen_people: set[str] = set()
    for line, row in rows:
        if isinstance(row, HouseholdRow):
            outcomes[line] = row
            continue

        def refuse(field: str, reason: str, *, code: str, status: int = 422) -> None:
            outcomes[line] = HouseholdRow(line=line, household_id=row.household_id, outcome="invalid",
                                          field=field, code=code, reason=reason, status=status)

        people = {m.id_number for m in row.members}
        if problem := regions.problem_with(row.region_code):
            refuse("region_code", problem, code="region_not_in_table")
        elif not principal.covers(row.region_code):
            refuse("region_code", f"outside your region {principal.region or '(none)'}", code="region_outside_scope",
                   status=403)
        elif row.household_id in seen_households:
            refuse("household_id", "repeated earlier in this request", code="household_repeated_in_request")
        elif people & seen_people:
            refuse("members", "a person appears in two households of this request",
                   code="person_in_two_households_of_request")
        else:
            seen_households.add(row.household_id)
            seen_people |= people
            valid.append((line, row))

    latest = await uow.events.last_events([f"household-{row.household_id}" for _, row in valid])
    hashes = {m.id_number: vault.id_hash(m.id_number) for _, row in valid for m in row.members}
    owners = await store.households_of_people(uow.session, list(hashes.values()))
    today = now.date()
    appends, member_rows, saved_hashes, grid_workers = [], [], {}, set()
    for line, row in valid:
        previous = latest.get(f"household-{row.household_id}")
        current = decode_payload(previous) if previous else None
        taken = sorted({owners[hashes[m.id_number]].household_id for m in row.members if hashes[m.id_number] in owners} - {row.household_id})
        if current is not None and not principal.covers(current.region_code):
            outcomes[line] = HouseholdRow(line=line, household_id=row.household_id, outcome="invalid", field="region_code",
                                          code="region_outside_scope", status=403,
                                          reason=f"the household is registered in {current.region_code}, outside your region")
            continue
        if taken:
            outcomes[line] = HouseholdRow(line=line, household_id=row.household_id, outcome="invalid", field="members",
                                          code="member_registered_in_other_household", status=409,
                                          reason=f"a member is already registered in household {taken[0]}")
            continue
        facts = domain.HouseholdFacts(
            household_id=row.household_id, region_code=row.region_code, group=row.group,
            poverty_status=row.poverty_status, grid_worker_id=row.grid_worker_id,
            members=tuple(domain.Member(
                member_id=vault.member_id(m.id_number), relation=m.relation, birth_date=domain.parse_id_number(m.id_number),
                labor_capacity=m.labor_capacity, disabled=m.disabled, in_school=m.in_school) for m in row.members),
        )
        new = domain.register_or_update(current, facts, today)
        if not new:
            outcomes[line] = HouseholdRow(line=line, household_id=row.household_id, outcome="unchanged")
            continue
        head = StreamHead(previous.stream_id, previous.stream_position, previous.hash) if previous else StreamHead(f"household-{row.household_id}")
        appends.append((head, [NewEvent(e, household_id=row.household_id, region_code=row.region_code) for e in new]))
        if row.grid_worker_id:
            grid_workers.add(row.grid_worker_id)
        for m in row.members:
            member_rows.append({"member_id": vault.member_id(m.id_number), "household_id": row.household_id,
                                "id_hash": hashes[m.id_number], "id_cipher": vault.encrypt(m.id_number),
                                "name_cipher": vault.encrypt(m.name), "relation": m.relation,
                                "birth_date": domain.parse_id_number(m.id_number), "labor_capacity": m.labor_capacity.value,
                                "disabled": m.disabled, "in_school": m.in_school})
            saved_hashes[hashes[m.id_number]] = store.HouseholdRef(row.household_id, row.region_code, row.poverty_status)
        outcomes[line] = HouseholdRow(line=line, household_id=row.household_id,
                                      outcome="registered" if previous is None else "updated")
    await uow.append_many(appends)  # the households' rows: projections.py
    await store.save_members(uow.session, [head.stream_id.removeprefix("household-") for head, _ in appends], member_rows)
    await rematch_warnings(uow, saved_hashes, now)
    loads = await store.grid_worker_loads(uow.session, sorted(grid_workers))
    notices.extend(domain.overloaded_grid_workers(loads, ctx.settings.grid_worker_max_households))
    return [outcomes[line] for line, _ in rows]


# Department warnings (部门筛查预警): one or a batch, and those re-matched at registration.

@dataclass(slots=True)
class RowOutcome:
    """A plain dataclass: a million-row batch makes one per row, and a pydantic model costs more."""

    line: int
    outcome: Literal["accepted", "duplicate", "unmatched", "below_threshold", "invalid"]
    warning_id: str | None = None
    clue_id: str | None = None
    household_id: str | None = None
    field: str | None = None
    code: str | None = None  # invalid, below_threshold, repeated: the rule (contracts/codes.py) or pydantic's error type
    reason: str | None = None
    department: str | None = None  # the row's identifiers, also when it is invalid
    source_record_id: str | None = None
    threshold: Decimal | None = None  # below_threshold: what the amount was held to


def clue_of_warning(clue_id: str, household: store.HouseholdRef, now: datetime, risk_types: list, warning):
    """The clue a warning raises, whether it arrives matched or is re-matched later (`warning`: the
    request row or the stored one; both carry the same fields), and its row."""
    return raise_clue(clue_id, household, ClueChannel.DEPARTMENT_WARNING, now, risk_types,
                      department=warning.department, source_record_id=warning.source_record_id,
                      indicator=warning.indicator, amount=warning.amount, observed_at=warning.observed_at,
                      detail=warning.detail, over_threshold=warning.over_threshold)


async def post_warnings(uow: UnitOfWork, principal: Principal, rows: list[tuple[int, WarningIn | RowOutcome]],
                          together: bool = False) -> list[RowOutcome]:
    """Set-based ingestion of department warnings (部门筛查预警): a handful of queries per call,
    whatever the number of rows. A single POST is a batch of one. `together`: the clues go out in
    a few RiskCluesRaised events (batch uploads), not one RiskClueRaised each.

    A matched warning is judged against its household's region (domain.judge_warning): a clue, or
    `below_threshold` (stored, no clue). An unmatched one is stored as it came and judged when its
    person is registered (rematch_warnings): without a household there is no region whose
    threshold applies. A region and year the thresholds table lacks raise MissingRegionYearValue,
    and nothing of the call is stored."""
    vault = IdentityVault(uow.ctx.settings)
    thresholds = reference.load_indicator_thresholds(uow.ctx.settings.indicator_thresholds)
    now = uow.ctx.clock.now()
    outcomes: dict[int, RowOutcome] = {}
    candidates: list[tuple[int, WarningIn]] = []
    seen: set[tuple[str, str]] = set()

    def outcome(line: int, row: WarningIn, kind: str, **facts) -> RowOutcome:
        return RowOutcome(line=line, outcome=kind, department=row.department, source_record_id=row.source_record_id,
                          **facts)

    for line, row in rows:
        if type(row) is RowOutcome:  # invalid already
            outcomes[line] = row
            continue
        key = (row.department, row.source_record_id)
        if principal.department and principal.department != row.department:
            outcomes[line] = outcome(line, row, "invalid", household_id=row.household_id, field="department",
                                     code="department_mismatch",
                                     reason=f"this token posts for {principal.department}, not {row.department}")
            continue
        if problem := domain.warning_problem(row.department, row.indicator, row.amount, row.over_threshold):
            field, code, reason = problem
            outcomes[line] = outcome(line, row, "invalid", household_id=row.household_id, field=field, code=code,
                                     reason=reason)
            continue
        if key in seen:
            outcomes[line] = outcome(line, row, "duplicate", code="warning_repeated_in_request",
                                     reason="repeated earlier in this request")
            continue
        seen.add(key)
        candidates.append((line, row))

    hashes = {line: vault.id_hash(row.id_number) for line, row in candidates if row.id_number and not row.household_id}
    by_person = await store.households_of_people(uow.session, list(set(hashes.values())))
    by_id = await store.households_by_id(uow.session, [row.household_id for _, row in candidates if row.household_id])

    def household_of(line: int, row: WarningIn) -> store.HouseholdRef | None:
        return by_id.get(row.household_id) if row.household_id else by_person.get(hashes[line])

    planned = []
    for line, row in candidates:
        household = household_of(line, row)
        judgement = domain.judge_warning(row.department, row.indicator, row.amount, row.over_threshold,
                                         household.region_code, row.observed_at.year, thresholds) if household else None
        status = "unmatched" if not household else "below_threshold" if judgement.below_threshold else "accepted"
        planned.append((line, row, household, judgement, status, new_id_str(),
                        new_id_str() if status == "accepted" else None))
    claimed = await store.claim_warnings(uow.session, [
        {"department": row.department, "source_record_id": row.source_record_id, "warning_id": warning_id,
         "status": status, "household_id": household.household_id if household else None,
         "id_hash": hashes.get(line), "clue_id": clue_id, "indicator": row.indicator, "amount": row.amount,
         "observed_at": row.observed_at, "detail": row.detail, "received_at": now,
         "over_threshold": row.over_threshold, "threshold": judgement.threshold if judgement else None}
        for line, row, household, judgement, status, warning_id, clue_id in planned
    ])
    duplicates = [(line, row) for line, row, *_ in planned if (row.department, row.source_record_id) not in claimed]
    earlier = await store.earlier_warnings(uow.session, [(r.department, r.source_record_id) for _, r in duplicates])
    for line, row in duplicates:
        before = earlier[(row.department, row.source_record_id)]
        outcomes[line] = outcome(line, row, "duplicate", warning_id=before.warning_id, clue_id=before.clue_id,
                                 household_id=before.household_id)

    new_streams, clues = [], []
    for line, row, household, judgement, status, warning_id, clue_id in planned:
        if (row.department, row.source_record_id) not in claimed:
            continue
        if status == "unmatched":
            new_streams.append((StreamHead(f"warning-{warning_id}"), [NewEvent(WarningUnmatched(
                warning_id=warning_id, department=row.department, source_record_id=row.source_record_id,
                indicator=row.indicator, observed_at=row.observed_at), occurred_at=row.observed_at)]))
            outcomes[line] = outcome(line, row, "unmatched", warning_id=warning_id)
        elif status == "below_threshold":
            code, reason = domain.below_threshold_reason(row.department, row.indicator, row.amount,
                                                         row.observed_at.year, judgement.threshold)
            outcomes[line] = outcome(line, row, "below_threshold", warning_id=warning_id,
                                     household_id=household.household_id, threshold=judgement.threshold,
                                     code=code, reason=reason)
        else:
            clues.append(clue_of_warning(clue_id, household, now, list(judgement.risk_types), row))
            outcomes[line] = outcome(line, row, "accepted", warning_id=warning_id, clue_id=clue_id,
                                     household_id=household.household_id)
    if together:
        new_streams.extend(clues_together(clues, uow.ctx.settings.kafka_partitions))
    else:
        new_streams.extend(clue_on_its_own(clue) for clue in clues)
    await uow.append_many(new_streams)  # the clues' rows: projections.py
    return [outcomes[line] for line, _ in rows]


async def rematch_warnings(uow: UnitOfWork, people: dict[str, store.HouseholdRef], now: datetime) -> None:
    """Warnings kept as unmatched are judged once their person is registered, against the threshold
    of the household's region: a clue each, or below_threshold. A region and year the thresholds
    table lacks raise MissingRegionYearValue (the registration is refused until the row is added)."""
    waiting = await store.unmatched_warnings_of(uow.session, list(people))
    thresholds = reference.load_indicator_thresholds(uow.ctx.settings.indicator_thresholds)
    streams, matched = [], []
    for w in waiting:
        household = people[w.id_hash]
        judgement = domain.judge_warning(w.department, w.indicator, w.amount, w.over_threshold,
                                         household.region_code, (w.observed_at or now).year, thresholds)
        clue_id = None
        if not judgement.below_threshold:
            clue_id = new_id_str()
            streams.append(clue_on_its_own(clue_of_warning(clue_id, household, now, list(judgement.risk_types), w)))
        matched.append({"department": w.department, "source_record_id": w.source_record_id,
                        "status": "below_threshold" if judgement.below_threshold else "accepted",
                        "household_id": household.household_id, "clue_id": clue_id, "threshold": judgement.threshold})
    await uow.append_many(streams)
    await store.mark_matched(uow.session, matched)


# Visits, declarations, key rotation.

@dataclass(frozen=True)
class RecordedVisit:
    visit_id: str
    household_id: str
    clue_id: str | None  # the clue the risks raised, if any


async def record_visit(ctx: ServiceContext, meta: EventMetadata, principal: Principal, visit: VisitIn) -> RecordedVisit:
    """A grid worker's visit (网格员走访); one with risks found raises a clue."""
    domain.check_visitor(principal.role, principal.sub, visit.worker_id)
    now = ctx.clock.now()

    async def work(uow: UnitOfWork) -> RecordedVisit:
        household = await store.household_ref(uow.session, visit.household_id)
        if household is None:
            raise domain.HouseholdNotFound(f"no household {visit.household_id}; register it first (POST /v1/households)")
        require_region(principal, household.region_code)
        domain.check_visited_household(principal.role, principal.sub, household.household_id,
                                       await store.grid_worker_of(uow.session, household.household_id)
                                       if principal.role == "grid_worker" else None)
        visit_id = new_id_str()
        clue_id = new_id_str() if visit.risk_types else None
        streams = [(StreamHead(f"visit-{visit_id}"), [NewEvent(
            VisitRecorded(visit_id=visit_id, household_id=household.household_id, worker_id=visit.worker_id,
                          visited_at=visit.visited_at, risk_types=visit.risk_types, clue_id=clue_id, notes=visit.notes),
            household_id=household.household_id, region_code=household.region_code, occurred_at=visit.visited_at)])]
        if clue_id:
            streams.append(new_clue(clue_id, household, ClueChannel.GRID_VISIT, now, list(visit.risk_types),
                                    worker_id=visit.worker_id, source_record_id=visit_id, observed_at=visit.visited_at))
        await uow.append_many(streams)  # the visit's, the clue's and the household's rows: projections.py
        return RecordedVisit(visit_id, household.household_id, clue_id)

    return await run_command(ctx, meta, work)


@dataclass(frozen=True)
class Declared:
    declaration_id: str
    clue_id: str


async def declare(ctx: ServiceContext, meta: EventMetadata, principal: Principal, declaration: DeclarationIn) -> Declared:
    """A household's self-declaration (农户自主申报) with the token of its QR code: a clue."""
    if declaration.household_id and declaration.household_id != principal.sub:
        raise domain.NotOwnHousehold("this token belongs to another household")
    vault = IdentityVault(ctx.settings)
    now = ctx.clock.now()

    async def work(uow: UnitOfWork) -> Declared:
        if declaration.id_number:
            id_hash = vault.id_hash(declaration.id_number)
            household = (await store.households_of_people(uow.session, [id_hash])).get(id_hash)
            if household is None or household.household_id != principal.sub:
                raise domain.NotOwnHousehold("this ID number is not a member of the token's household")
        else:
            household = await store.household_ref(uow.session, principal.sub)
            if household is None:
                raise domain.HouseholdNotFound("the household of this token is no longer registered")
        declaration_id, clue_id = new_id_str(), new_id_str()
        await uow.append_many([new_clue(clue_id, household, ClueChannel.SELF_DECLARATION, now,
                                        list(declaration.risk_types), source_record_id=declaration_id, observed_at=now)])
        await store.record_declaration(uow.session, {
            "declaration_id": declaration_id, "household_id": household.household_id,
            "phone_cipher": vault.encrypt(declaration.phone), "risk_types": [r.value for r in declaration.risk_types],
            "description": declaration.description, "clue_id": clue_id, "declared_at": now})
        return Declared(declaration_id, clue_id)

    return await run_command(ctx, meta, work)


@dataclass(frozen=True)
class Resealed:
    key_id: str  # the current encryption key id
    resealed: int  # rows sealed again under it by this call
    remaining: int  # rows still sealed under another key


async def reencrypt(ctx: ServiceContext, limit: int) -> Resealed:
    """Seal again, under the current key, up to `limit` rows sealed under an old one. Raises
    UnknownEncryptionKey when a row names a key the service was not given."""
    vault = IdentityVault(ctx.settings)
    async with ctx.sessions() as session, session.begin():
        resealed = await store.reseal_some(session, vault, limit)
    async with ctx.sessions() as session:
        remaining = await store.count_sealed_elsewhere(session, vault)
    return Resealed(vault.key_id, resealed, remaining)
