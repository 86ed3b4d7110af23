"""intake's HTTP surface: the registry and department warnings."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from uuid6 import uuid7

from contracts.base import decode_payload
from contracts.intake import ClueSource, HouseholdRegistered, HouseholdUpdated, RiskClueRaised, WarningUnmatched
from contracts.vocabulary import ClueChannel, LaborCapacity
from runtime.auth import Principal, command_metadata, region_scope, require, require_region
from runtime.eventstore import NewEvent
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


@router.post("/households", status_code=201, response_model=HouseholdOut)
async def register_household(
    body: HouseholdIn,
    request: Request,
    principal: Principal = Depends(require(*REGISTRARS, kinds=("staff", "system"))),
    ctx: ServiceContext = Depends(get_context),
):
    require_region(principal, body.region_code)
    vault = store.IdentityVault(ctx.settings)
    facts = domain.HouseholdFacts(
        household_id=body.household_id, region_code=body.region_code, group=body.group,
        poverty_status=body.poverty_status, grid_worker_id=body.grid_worker_id,
        members=tuple(
            domain.Member(
                member_id=vault.member_id(m.id_number), relation=m.relation,
                birth_date=domain.parse_id_number(m.id_number), labor_capacity=m.labor_capacity,
                disabled=m.disabled, in_school=m.in_school,
            )
            for m in body.members
        ),
    )

    async def work(uow: UnitOfWork) -> HouseholdOut:
        stream = await uow.events.load(f"household-{body.household_id}")
        current = _latest_household(stream.events)
        if current is not None:
            require_region(principal, current.region_code)
        owners = await store.households_of_people(uow.session, [vault.id_hash(m.id_number) for m in body.members])
        taken = {h for h, _ in owners.values() if h != body.household_id}
        if taken:
            raise Problem(409, "Person already registered", f"a member is already registered in household {sorted(taken)[0]}",
                          errors=[{"field": "members", "message": f"already in household {sorted(taken)[0]}"}])
        new = domain.register_or_update(current, facts, ctx.clock.now().date())
        if not new:
            return HouseholdOut(household_id=body.household_id, outcome="unchanged")
        await uow.append(stream.stream_id, stream.position, [
            NewEvent(e, household_id=body.household_id, region_code=body.region_code) for e in new
        ])
        await store.save_household(
            uow.session,
            {"household_id": body.household_id, "region_code": body.region_code, "group": body.group,
             "poverty_status": body.poverty_status, "grid_worker_id": body.grid_worker_id, "updated_at": ctx.clock.now()},
            [
                {"member_id": vault.member_id(m.id_number), "household_id": body.household_id,
                 "id_hash": vault.id_hash(m.id_number), "id_cipher": vault.encrypt(m.id_number),
                 "name_cipher": vault.encrypt(m.name), "relation": m.relation,
                 "birth_date": domain.parse_id_number(m.id_number), "labor_capacity": m.labor_capacity.value,
                 "disabled": m.disabled, "in_school": m.in_school}
                for m in body.members
            ],
        )
        return HouseholdOut(household_id=body.household_id,
                            outcome="registered" if isinstance(new[0], HouseholdRegistered) else "updated")

    result: HouseholdOut = await run_command(ctx, command_metadata(principal, request), work)
    return JSONResponse(result.model_dump(), status_code=201 if result.outcome == "registered" else 200)


def _latest_household(events) -> HouseholdRegistered | HouseholdUpdated | None:
    latest = None
    for envelope in events:
        if envelope.event_type in ("HouseholdRegistered", "HouseholdUpdated"):
            latest = decode_payload(envelope)
    return latest


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
        planned.append((line, row, risk_types, household, str(uuid7()), str(uuid7()) if household else None))
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
            new_streams.append((f"warning-{warning_id}", NewEvent(WarningUnmatched(
                warning_id=warning_id, department=row.department, source_record_id=row.source_record_id,
                indicator=row.indicator, observed_at=row.observed_at), occurred_at=row.observed_at)))
            outcomes[line] = RowOutcome(line=line, outcome="unmatched", warning_id=warning_id)
            continue
        household_id, region_code = household
        source = ClueSource(department=row.department, source_record_id=row.source_record_id)
        new_streams.append((f"clue-{clue_id}", NewEvent(RiskClueRaised(
            clue_id=clue_id, household_id=household_id, channel=ClueChannel.DEPARTMENT_WARNING, source=source,
            indicator=row.indicator, amount=row.amount, observed_at=row.observed_at, risk_types=risk_types,
            detail=row.detail), household_id=household_id, region_code=region_code, occurred_at=row.observed_at)))
        clue_rows.append({"clue_id": clue_id, "household_id": household_id, "region_code": region_code,
                          "channel": ClueChannel.DEPARTMENT_WARNING.value, "source": source.model_dump(exclude_none=True),
                          "indicator": row.indicator, "risk_types": [r.value for r in risk_types], "status": "open",
                          "raised_at": now})
        outcomes[line] = RowOutcome(line=line, outcome="accepted", warning_id=warning_id, clue_id=clue_id,
                                    household_id=household_id)
    await uow.start_streams(new_streams)
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
    meta = command_metadata(principal, request)
    summary = BatchOutcome()
    chunk: list[tuple[int, WarningIn | RowOutcome]] = []

    async def flush() -> None:
        results = await run_command(ctx, meta, lambda uow: ingest_warnings(uow, principal, chunk))
        for result in results:
            setattr(summary, result.outcome, getattr(summary, result.outcome) + 1)
            if result.outcome == "invalid":
                summary.rejected.append(result)
        summary.rows += len(results)
        chunk.clear()

    async for line_number, raw in ndjson_lines(request):
        try:
            chunk.append((line_number, WarningIn.model_validate_json(raw)))
        except ValidationError as exc:
            chunk.append((line_number, invalid_row(line_number, exc)))
        if len(chunk) >= BATCH_CHUNK_ROWS:
            await flush()
    if chunk:
        await flush()
    return summary


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


def invalid_row(line: int, exc: ValidationError) -> RowOutcome:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or None
    reason = "malformed JSON" if first.get("type") == "json_invalid" else first.get("msg", "invalid")
    return RowOutcome(line=line, outcome="invalid", field=field, reason=reason)


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
