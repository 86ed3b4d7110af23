"""intake's HTTP surface: the registry and department warnings."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from runtime.ids import new_id_str

from contracts.base import decode_payload
from contracts.intake import ClueSource, HouseholdRegistered, HouseholdUpdated, RiskClueRaised, WarningUnmatched
from contracts.vocabulary import ClueChannel, LaborCapacity
from runtime.auth import Principal, command_metadata, region_scope, require, require_region
from runtime.eventstore import NewEvent, StreamHead
from runtime.paging import Page, PageRequest, make_page, page_request
from runtime.problems import Problem, field_error
from runtime.service import ServiceContext, UnitOfWork, get_context, run_command
from services.intake import domain, store

router = APIRouter(prefix="/v1", tags=["intake"])
REGISTRARS = ("village_cadre", "grid_worker", "work_team", "township_officer", "county_officer")


class MemberIn(BaseModel):
    id_number: str = Field(description="18 characters, GB 11643 check digit")
    name: str = Field(min_length=1, max_length=64)
    relation: str = Field(min_length=1, max_length=32)
    birth_date: date | None = None
    labor_capacity: LaborCapacity
    disabled: bool = False
    in_school: bool = False

    @field_validator("id_number")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        try:
            domain.parse_id_number(value)
        except domain.InvalidIdNumber as exc:
            raise ValueError(str(exc)) from None
        return value.strip().upper()

    @model_validator(mode="after")
    def _birth_date_matches(self) -> "MemberIn":
        born = domain.parse_id_number(self.id_number)
        if self.birth_date is not None and self.birth_date != born:
            raise ValueError(f"birth_date {self.birth_date} differs from the one in the ID number ({born})")
        return self


class HouseholdIn(BaseModel):
    household_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    region_code: str = Field(pattern=domain.REGION_CODE.pattern, description="12-digit village code")
    group: str | None = Field(None, max_length=64)
    poverty_status: Literal["out_of_poverty", "ordinary"]
    grid_worker_id: str | None = Field(None, max_length=64)
    members: list[MemberIn] = Field(min_length=1, max_length=30)

    @field_validator("members")
    @classmethod
    def _distinct_people(cls, members: list[MemberIn]) -> list[MemberIn]:
        seen = [m.id_number for m in members]
        if len(seen) != len(set(seen)):
            raise ValueError("the same ID number appears twice in one household")
        return members


class HouseholdOut(BaseModel):
    household_id: str
    outcome: Literal["registered", "updated", "unchanged"]
    notices: list[str] = Field(default_factory=list, description="things to look at, e.g. an overloaded grid worker")


class HouseholdRow(BaseModel):
    line: int
    household_id: str | None = None
    outcome: Literal["registered", "updated", "unchanged", "invalid"]
    field: str | None = None
    reason: str | None = None
    status: int = Field(422, exclude=True)


class MemberView(BaseModel):
    member_id: str
    id_number: str = Field(description="masked")
    name: str
    relation: str
    birth_date: date
    labor_capacity: str
    disabled: bool
    in_school: bool


class HouseholdView(BaseModel):
    household_id: str
    region_code: str
    group: str | None
    poverty_status: str
    grid_worker_id: str | None
    members: list[MemberView]


REGISTRAR = require(*REGISTRARS, kinds=("staff", "system"))


async def ingest_households(
    uow: UnitOfWork, principal: Principal, rows: list[tuple[int, HouseholdIn | HouseholdRow]], notices: list[str]
) -> list[HouseholdRow]:
    """Register or update households set-based (a few queries per call, whatever the rows), and
    re-match warnings that were waiting for their members. A single POST is a batch of one."""
    ctx = uow.ctx
    vault = store.IdentityVault(ctx.settings)
    regions = store.load_region_table(ctx.settings.region_table)
    now = ctx.clock.now()
    outcomes: dict[int, HouseholdRow] = {}
    valid: list[tuple[int, HouseholdIn]] = []
    seen_households: set[str] = set()
    seen_people: set[str] = set()
    for line, row in rows:
        if isinstance(row, HouseholdRow):
            outcomes[line] = row
            continue

        def refuse(field: str, reason: str, status: int = 422) -> None:
            outcomes[line] = HouseholdRow(line=line, household_id=row.household_id, outcome="invalid",
                                          field=field, reason=reason, status=status)

        people = {m.id_number for m in row.members}
        if problem := regions.problem_with(row.region_code):
            refuse("region_code", problem)
        elif not principal.covers(row.region_code):
            refuse("region_code", f"outside your region {principal.region or '(none)'}", 403)
        elif row.household_id in seen_households:
            refuse("household_id", "repeated earlier in this request")
        elif people & seen_people:
            refuse("members", "a person appears in two households of this request")
        else:
            seen_households.add(row.household_id)
            seen_people |= people
            valid.append((line, row))

    latest = await uow.events.last_events([f"household-{row.household_id}" for _, row in valid])
    hashes = {m.id_number: vault.id_hash(m.id_number) for _, row in valid for m in row.members}
    owners = await store.households_of_people(uow.session, list(hashes.values()))
    today = now.date()
    appends, household_rows, member_rows, saved_hashes = [], [], [], {}
    for line, row in valid:
        previous = latest.get(f"household-{row.household_id}")
        current = decode_payload(previous) if previous else None
        taken = sorted({owners[hashes[m.id_number]][0] for m in row.members if hashes[m.id_number] in owners} - {row.household_id})
        if current is not None and not principal.covers(current.region_code):
            outcomes[line] = HouseholdRow(line=line, household_id=row.household_id, outcome="invalid", field="region_code",
                                          reason=f"the household is registered in {current.region_code}, outside your region", status=403)
            continue
        if taken:
            outcomes[line] = HouseholdRow(line=line, household_id=row.household_id, outcome="invalid", field="members",
                                          reason=f"a member is already registered in household {taken[0]}", status=409)
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
        household_rows.append({"household_id": row.household_id, "region_code": row.region_code, "group": row.group,
                               "poverty_status": row.poverty_status, "grid_worker_id": row.grid_worker_id, "updated_at": now})
        for m in row.members:
            member_rows.append({"member_id": vault.member_id(m.id_number), "household_id": row.household_id,
                                "id_hash": hashes[m.id_number], "id_cipher": vault.encrypt(m.id_number),
                                "name_cipher": vault.encrypt(m.name), "relation": m.relation,
                                "birth_date": domain.parse_id_number(m.id_number), "labor_capacity": m.labor_capacity.value,
                                "disabled": m.disabled, "in_school": m.in_school})
            saved_hashes[hashes[m.id_number]] = (row.household_id, row.region_code)
        outcomes[line] = HouseholdRow(line=line, household_id=row.household_id,
                                      outcome="registered" if previous is None else "updated")
    await uow.append_many(appends)
    await store.save_households(uow.session, household_rows, member_rows)
    await rematch_warnings(uow, saved_hashes, now)
    loads = await store.grid_worker_loads(uow.session, sorted({h["grid_worker_id"] for h in household_rows if h["grid_worker_id"]}))
    notices.extend(domain.overloaded_grid_workers(loads, ctx.settings.grid_worker_max_households))
    return [outcomes[line] for line, _ in rows]


async def rematch_warnings(uow: UnitOfWork, people: dict[str, tuple[str, str]], now: datetime) -> None:
    """Warnings kept as unmatched become clues once their person is registered."""
    waiting = await store.unmatched_warnings_of(uow.session, list(people))
    streams, clue_rows, matched = [], [], []
    for w in waiting:
        household_id, region_code = people[w.id_hash]
        clue_id = new_id_str()
        risk_types = domain.risk_types_of_warning(w.department, w.indicator, w.amount)
        stream, clue_row = clue_from_warning(clue_id, household_id, region_code, w.department, w.source_record_id,
                                             w.indicator, w.amount, w.observed_at, w.detail, risk_types, now)
        streams.append(stream)
        clue_rows.append(clue_row)
        matched.append({"department": w.department, "source_record_id": w.source_record_id,
                        "household_id": household_id, "clue_id": clue_id})
    await uow.append_many(streams)
    await store.insert_clues(uow.session, clue_rows)
    await store.mark_matched(uow.session, matched)


def clue_from_warning(clue_id, household_id, region_code, department, source_record_id, indicator, amount, observed_at,
                      detail, risk_types, now) -> tuple[tuple[StreamHead, list[NewEvent]], dict]:
    """The RiskClueRaised event and the clue row of a matched department warning."""
    source = ClueSource(department=department, source_record_id=source_record_id)
    event = RiskClueRaised(clue_id=clue_id, household_id=household_id, channel=ClueChannel.DEPARTMENT_WARNING,
                           source=source, indicator=indicator, amount=amount, observed_at=observed_at,
                           risk_types=risk_types, detail=detail)
    row = {"clue_id": clue_id, "household_id": household_id, "region_code": region_code,
           "channel": ClueChannel.DEPARTMENT_WARNING.value, "source": source.model_dump(exclude_none=True),
           "indicator": indicator, "risk_types": [r.value for r in risk_types], "status": "open", "raised_at": now}
    new = NewEvent(event, household_id=household_id, region_code=region_code, occurred_at=observed_at)
    return (StreamHead(f"clue-{clue_id}"), [new]), row


@router.post("/households", status_code=201, response_model=HouseholdOut)
async def register_household(
    body: HouseholdIn, request: Request, principal: Principal = Depends(REGISTRAR),
    ctx: ServiceContext = Depends(get_context),
):
    notices: list[str] = []

    async def work(uow: UnitOfWork):
        notices.clear()
        return await ingest_households(uow, principal, [(1, body)], notices)

    [result] = await run_command(ctx, command_metadata(principal, request), work)
    if result.outcome == "invalid":
        raise Problem(result.status, "Refused", f"{result.field}: {result.reason}",
                      errors=[{"field": result.field, "message": result.reason}])
    out = HouseholdOut(household_id=body.household_id, outcome=result.outcome, notices=notices)
    return JSONResponse(out.model_dump(), status_code=201 if result.outcome == "registered" else 200)


class ImportOutcome(BaseModel):
    rows: int = 0
    registered: int = 0
    updated: int = 0
    unchanged: int = 0
    invalid: int = 0
    rejected: list[HouseholdRow] = Field(default_factory=list, description="the invalid rows, with line, field and reason")
    notices: list[str] = Field(default_factory=list)


@router.post("/households:import", response_model=ImportOutcome)
async def import_households(
    request: Request, principal: Principal = Depends(REGISTRAR), ctx: ServiceContext = Depends(get_context),
):
    """NDJSON of households, streamed and committed every few hundred rows; a retry of the same
    file changes nothing that was already imported (those rows answer `unchanged`)."""
    summary = ImportOutcome()
    notices: set[str] = set()

    async def ingest(uow: UnitOfWork, chunk):
        found: list[str] = []
        results = await ingest_households(uow, principal, chunk, found)
        return results, found

    async for results, found in run_ndjson_batch(request, ctx, principal, HouseholdIn, ingest, 500,
                                                lambda line, exc: HouseholdRow(line=line, outcome="invalid", **first_error(exc))):
        notices.update(found)
        for result in results:
            setattr(summary, result.outcome, getattr(summary, result.outcome) + 1)
            if result.outcome == "invalid":
                summary.rejected.append(result)
        summary.rows += len(results)
    summary.notices = sorted(notices)
    return summary


@router.get("/households/{household_id}", response_model=HouseholdView)
async def get_household(
    household_id: str,
    principal: Principal = Depends(require(kinds=("staff", "system"))),
    ctx: ServiceContext = Depends(get_context),
):
    vault = store.IdentityVault(ctx.settings)
    async with ctx.sessions() as session:
        row = await store.household_row(session, household_id)
        if row is None:
            raise Problem(404, "Not found", f"no household {household_id}")
        require_region(principal, row.region_code)
        people = await store.member_rows(session, household_id)
    return HouseholdView(
        household_id=row.household_id, region_code=row.region_code, group=row.group,
        poverty_status=row.poverty_status, grid_worker_id=row.grid_worker_id,
        members=[
            MemberView(member_id=m.member_id, id_number=domain.mask_id_number(vault.decrypt(m.id_cipher)),
                       name=vault.decrypt(m.name_cipher), relation=m.relation, birth_date=m.birth_date,
                       labor_capacity=m.labor_capacity, disabled=m.disabled, in_school=m.in_school)
            for m in people
        ],
    )


class WarningIn(BaseModel):
    department: str = Field(min_length=1, max_length=64)
    source_record_id: str = Field(min_length=1, max_length=128, description="unique per department")
    id_number: str | None = None
    household_id: str | None = None
    indicator: str = Field(min_length=1, max_length=64)
    amount: Decimal | None = Field(None, max_digits=14, decimal_places=2)
    observed_at: datetime
    detail: str | None = Field(None, max_length=2000)

    @field_validator("id_number")
    @classmethod
    def _valid_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            domain.parse_id_number(value)
        except domain.InvalidIdNumber as exc:
            raise ValueError(str(exc)) from None
        return value.strip().upper()

    @model_validator(mode="after")
    def _someone(self) -> "WarningIn":
        if not self.id_number and not self.household_id:
            raise ValueError("give id_number or household_id")
        return self


class WarningOut(BaseModel):
    outcome: Literal["accepted", "duplicate", "unmatched"]
    warning_id: str
    clue_id: str | None = None
    household_id: str | None = None


class RowOutcome(BaseModel):
    line: int
    outcome: Literal["accepted", "duplicate", "unmatched", "invalid"]
    warning_id: str | None = None
    clue_id: str | None = None
    household_id: str | None = None
    field: str | None = None
    reason: str | None = None


WARNING_SENDERS = require("department_system", "department_liaison", kinds=("system", "staff"))


async def ingest_warnings(uow: UnitOfWork, principal: Principal, rows: list[tuple[int, WarningIn | RowOutcome]]) -> list[RowOutcome]:
    """Set-based ingestion of department warnings (部门筛查预警): a handful of queries per call,
    whatever the number of rows. A single POST is a batch of one."""
    vault = store.IdentityVault(uow.ctx.settings)
    now = uow.ctx.clock.now()
    outcomes: dict[int, RowOutcome] = {}
    candidates: list[tuple[int, WarningIn, list]] = []
    seen: set[tuple[str, str]] = set()
    for line, row in rows:
        if isinstance(row, RowOutcome):
            outcomes[line] = row
            continue
        key = (row.department, row.source_record_id)
        if principal.department and principal.department != row.department:
            outcomes[line] = RowOutcome(line=line, outcome="invalid", field="department",
                                        reason=f"this token posts for {principal.department}, not {row.department}")
            continue
        try:
            risk_types = domain.risk_types_of_warning(row.department, row.indicator, row.amount)
        except domain.UnknownIndicator as exc:
            outcomes[line] = RowOutcome(line=line, outcome="invalid", field="indicator", reason=str(exc))
            continue
        if not risk_types:
            outcomes[line] = RowOutcome(line=line, outcome="invalid", field="amount",
                                        reason=f"below the threshold of {row.department}/{row.indicator}")
            continue
        if key in seen:
            outcomes[line] = RowOutcome(line=line, outcome="duplicate", reason="repeated earlier in this request")
            continue
        seen.add(key)
        candidates.append((line, row, risk_types))

    hashes = {line: vault.id_hash(row.id_number) for line, row, _ in candidates if row.id_number and not row.household_id}
    by_person = await store.households_of_people(uow.session, list(set(hashes.values())))
    by_id = await store.regions_of_households(uow.session, [row.household_id for _, row, _ in candidates if row.household_id])

    def household_of(line: int, row: WarningIn) -> tuple[str, str] | None:
        if row.household_id:
            region = by_id.get(row.household_id)
            return (row.household_id, region) if region else None
        return by_person.get(hashes[line])

    planned = []
    for line, row, risk_types in candidates:
        household = household_of(line, row)
        planned.append((line, row, risk_types, household, new_id_str(), new_id_str() if household else None))
    claimed = await store.claim_warnings(uow.session, [
        {"department": row.department, "source_record_id": row.source_record_id, "warning_id": warning_id,
         "status": "accepted" if household else "unmatched", "household_id": household[0] if household else None,
         "id_hash": hashes.get(line), "clue_id": clue_id, "indicator": row.indicator, "amount": row.amount,
         "observed_at": row.observed_at, "detail": row.detail, "received_at": now}
        for line, row, risk_types, household, warning_id, clue_id in planned
    ])
    duplicates = [(line, row) for line, row, *_ in planned if (row.department, row.source_record_id) not in claimed]
    earlier = await store.earlier_warnings(uow.session, [(r.department, r.source_record_id) for _, r in duplicates])
    for line, row in duplicates:
        before = earlier[(row.department, row.source_record_id)]
        outcomes[line] = RowOutcome(line=line, outcome="duplicate", warning_id=before.warning_id,
                                    clue_id=before.clue_id, household_id=before.household_id)

    new_streams, clue_rows = [], []
    for line, row, risk_types, household, warning_id, clue_id in planned:
        if (row.department, row.source_record_id) not in claimed:
            continue
        if household is None:
            new_streams.append((StreamHead(f"warning-{warning_id}"), [NewEvent(WarningUnmatched(
                warning_id=warning_id, department=row.department, source_record_id=row.source_record_id,
                indicator=row.indicator, observed_at=row.observed_at), occurred_at=row.observed_at)]))
            outcomes[line] = RowOutcome(line=line, outcome="unmatched", warning_id=warning_id)
            continue
        household_id, region_code = household
        stream, clue_row = clue_from_warning(clue_id, household_id, region_code, row.department, row.source_record_id,
                                             row.indicator, row.amount, row.observed_at, row.detail, risk_types, now)
        new_streams.append(stream)
        clue_rows.append(clue_row)
        outcomes[line] = RowOutcome(line=line, outcome="accepted", warning_id=warning_id, clue_id=clue_id,
                                    household_id=household_id)
    await uow.append_many(new_streams)
    await store.insert_clues(uow.session, clue_rows)
    return [outcomes[line] for line, _ in rows]


@router.post("/warnings", status_code=201, response_model=WarningOut)
async def post_warning(
    body: WarningIn,
    request: Request,
    principal: Principal = Depends(WARNING_SENDERS),
    ctx: ServiceContext = Depends(get_context),
):
    [result] = await run_command(ctx, command_metadata(principal, request),
                                 lambda uow: ingest_warnings(uow, principal, [(1, body)]))
    if result.outcome == "invalid":
        if result.field == "department":
            raise Problem(403, "Forbidden", result.reason)
        raise field_error(result.field, result.reason)
    status = {"accepted": 201, "duplicate": 200, "unmatched": 202}[result.outcome]
    return JSONResponse(WarningOut(**result.model_dump(include=set(WarningOut.model_fields))).model_dump(), status_code=status)


class BatchOutcome(BaseModel):
    rows: int = 0
    accepted: int = 0
    duplicate: int = 0
    unmatched: int = 0
    invalid: int = 0
    rejected: list[RowOutcome] = Field(default_factory=list, description="the invalid rows, with line, field and reason")


BATCH_CHUNK_ROWS = 1000


@router.post("/warnings:batch", response_model=BatchOutcome)
async def post_warning_batch(
    request: Request,
    principal: Principal = Depends(WARNING_SENDERS),
    ctx: ServiceContext = Depends(get_context),
):
    """NDJSON, one warning a line, up to a million lines; read as a stream and committed every
    thousand rows, so a cut-off upload keeps what was accepted and its retry adds nothing twice."""
    summary = BatchOutcome()

    async def ingest(uow: UnitOfWork, chunk):
        return await ingest_warnings(uow, principal, chunk)

    async for results in run_ndjson_batch(request, ctx, principal, WarningIn, ingest, BATCH_CHUNK_ROWS,
                                          lambda line, exc: RowOutcome(line=line, outcome="invalid", **first_error(exc))):
        for result in results:
            setattr(summary, result.outcome, getattr(summary, result.outcome) + 1)
            if result.outcome == "invalid":
                summary.rejected.append(result)
        summary.rows += len(results)
    return summary


async def run_ndjson_batch(request: Request, ctx: ServiceContext, principal: Principal, model, ingest, chunk_rows: int, invalid):
    """Validate streamed NDJSON lines with `model` and hand chunks of `chunk_rows` to `ingest`,
    each chunk in its own unit of work; yields what `ingest` returns, chunk by chunk."""
    meta = command_metadata(principal, request)
    chunk: list = []
    async for line_number, raw in ndjson_lines(request):
        try:
            chunk.append((line_number, model.model_validate_json(raw)))
        except ValidationError as exc:
            chunk.append((line_number, invalid(line_number, exc)))
        if len(chunk) >= chunk_rows:
            yield await run_command(ctx, meta, lambda uow: ingest(uow, chunk))
            chunk = []
    if chunk:
        yield await run_command(ctx, meta, lambda uow: ingest(uow, chunk))


async def ndjson_lines(request: Request):
    """(line number, bytes) of each non-blank line of a streamed NDJSON body, in constant memory."""
    pending = b""
    number = 0
    async for piece in request.stream():
        pending += piece
        *complete, pending = pending.split(b"\n")
        for line in complete:
            number += 1
            if line.strip():
                yield number, line
    if pending.strip():
        yield number + 1, pending


def first_error(exc: ValidationError) -> dict:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or None
    reason = "malformed JSON" if first.get("type") == "json_invalid" else first.get("msg", "invalid")
    return {"field": field, "reason": reason}


class UnmatchedView(BaseModel):
    warning_id: str
    department: str
    source_record_id: str
    indicator: str
    observed_at: datetime | None
    received_at: datetime


@router.get("/warnings/unmatched", response_model=Page[UnmatchedView])
async def list_unmatched(
    department: str | None = None,
    page: PageRequest = Depends(page_request),
    principal: Principal = Depends(require("department_system", "department_liaison", "county_officer",
                                           kinds=("system", "staff"))),
    ctx: ServiceContext = Depends(get_context),
):
    """Warnings about people the registry does not know, reported back to their department.
    A department system sees only its own."""
    if principal.department:
        if department and department != principal.department:
            raise Problem(403, "Forbidden", f"this token reads {principal.department}'s warnings only")
        department = principal.department
    after = tuple(page.after.split("\x1f", 1)) if page.after else None
    async with ctx.sessions() as session:
        rows = await store.unmatched_page(session, department, after, page.limit + 1)
    return make_page(rows, page, key=lambda r: f"{r.department}\x1f{r.source_record_id}",
                     item=lambda r: UnmatchedView.model_validate(r, from_attributes=True))


class ClueView(BaseModel):
    clue_id: str
    household_id: str
    region_code: str
    channel: str
    source: dict
    indicator: str | None
    risk_types: list[str]
    status: str
    raised_at: datetime


@router.get("/clues", response_model=Page[ClueView])
async def list_clues(
    region: str | None = None,
    status: str | None = None,
    channel: ClueChannel | None = None,
    page: PageRequest = Depends(page_request),
    principal: Principal = Depends(require(kinds=("staff",))),
    ctx: ServiceContext = Depends(get_context),
):
    scope = region_scope(principal, region)
    async with ctx.sessions() as session:
        rows = await store.clue_page(session, scope, status, channel.value if channel else None, page.after, page.limit + 1)
    return make_page(rows, page, key=lambda r: r.clue_id, item=lambda r: ClueView.model_validate(r, from_attributes=True))
