"""Registry: register, update, bulk-import, read and list households (ID numbers masked), and the
grid workers' loads."""
from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator, model_validator

from contracts.base import decode_payload
from contracts.fields import BirthDate, FieldProblem, refusal
from contracts.vocabulary import LaborCapacity
from runtime.auth import Principal, command_metadata, region_scope, require, require_region
from runtime.eventstore import NewEvent, StreamHead
from runtime.paging import Page, PageRequest, make_page, page_request
from runtime.problems import Problem
from runtime.service import ServiceContext, UnitOfWork, get_context, run_command
from services.intake import domain, store
from services.intake.api.fields import IdNumber
from services.intake.api.ndjson import ndjson_body, run_ndjson_batch, tally
from services.intake.api.warnings import rematch_warnings

router = APIRouter()
REGISTRARS = ("village_cadre", "grid_worker", "work_team", "township_officer", "county_officer")
PovertyStatus = Literal["out_of_poverty", "ordinary"]


class MemberIn(BaseModel):
    id_number: IdNumber
    name: str = Field(min_length=1, max_length=64)
    relation: str = Field(min_length=1, max_length=32)
    birth_date: BirthDate | None = None
    labor_capacity: LaborCapacity
    disabled: bool = False
    in_school: bool = False

    @model_validator(mode="after")
    def _birth_date_matches(self) -> "MemberIn":
        born = domain.parse_id_number(self.id_number)
        if self.birth_date is not None and self.birth_date != born:
            raise refusal(FieldProblem("birth_date_differs_from_id_number",
                                       f"birth_date {self.birth_date} differs from the one in the ID number ({born})"))
        return self


class HouseholdIn(BaseModel):
    household_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    region_code: str = Field(pattern=domain.REGION_CODE.pattern, description="12-digit village code")
    group: str | None = Field(None, max_length=64)
    poverty_status: PovertyStatus
    grid_worker_id: str | None = Field(None, max_length=64)
    members: list[MemberIn] = Field(min_length=1, max_length=30)

    @field_validator("members")
    @classmethod
    def _distinct_people(cls, members: list[MemberIn]) -> list[MemberIn]:
        seen = [m.id_number for m in members]
        if len(seen) != len(set(seen)):
            raise refusal(FieldProblem("id_number_repeated_in_household", "the same ID number appears twice in one household"))
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
    code: str | None = Field(None, description="invalid: the rule, a stable code (GET /v1/codes) or pydantic's error type")
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
    appends, household_rows, member_rows, saved_hashes = [], [], [], {}
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
        household_rows.append({"household_id": row.household_id, "region_code": row.region_code, "group": row.group,
                               "poverty_status": row.poverty_status, "grid_worker_id": row.grid_worker_id, "updated_at": now})
        for m in row.members:
            member_rows.append({"member_id": vault.member_id(m.id_number), "household_id": row.household_id,
                                "id_hash": hashes[m.id_number], "id_cipher": vault.encrypt(m.id_number),
                                "name_cipher": vault.encrypt(m.name), "relation": m.relation,
                                "birth_date": domain.parse_id_number(m.id_number), "labor_capacity": m.labor_capacity.value,
                                "disabled": m.disabled, "in_school": m.in_school})
            saved_hashes[hashes[m.id_number]] = store.HouseholdRef(row.household_id, row.region_code, row.poverty_status)
        outcomes[line] = HouseholdRow(line=line, household_id=row.household_id,
                                      outcome="registered" if previous is None else "updated")
    await uow.append_many(appends)
    await store.save_households(uow.session, household_rows, member_rows)
    await rematch_warnings(uow, saved_hashes, now)
    loads = await store.grid_worker_loads(uow.session, sorted({h["grid_worker_id"] for h in household_rows if h["grid_worker_id"]}))
    notices.extend(domain.overloaded_grid_workers(loads, ctx.settings.grid_worker_max_households))
    return [outcomes[line] for line, _ in rows]


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
        raise Problem(result.status, "Refused", f"{result.field}: {result.reason}", code=result.code,
                      errors=[{"field": result.field, "message": result.reason}])
    out = HouseholdOut(household_id=body.household_id, outcome=result.outcome, notices=notices)
    return JSONResponse(out.model_dump(), status_code=201 if result.outcome == "registered" else 200)


class ImportOutcome(BaseModel):
    rows: int = 0
    registered: int = 0
    updated: int = 0
    unchanged: int = 0
    invalid: int = 0
    rejected: list[HouseholdRow] = Field(default_factory=list, description="the invalid rows, with line, field, code and reason")
    notices: list[str] = Field(default_factory=list)


EXAMPLE_HOUSEHOLD = {
    "household_id": "H-0001", "region_code": "410721001001", "group": "3", "poverty_status": "out_of_poverty",
    "grid_worker_id": "gw-1", "members": [
        {"id_number": "41072119800101001X", "name": "张三", "relation": "head", "labor_capacity": "full"},
        {"id_number": "410721201003055013", "name": "张小", "relation": "child", "labor_capacity": "none", "in_school": True}],
}


@router.post("/households:import", response_model=ImportOutcome, openapi_extra=ndjson_body(HouseholdIn, EXAMPLE_HOUSEHOLD))
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
                                                lambda line, **why: HouseholdRow(line=line, outcome="invalid", **why),
                                                identifiers=("household_id",)):
        notices.update(found)
        tally(summary, results)
    summary.notices = sorted(notices)
    return summary


class HouseholdListItem(BaseModel):
    """A household in a list: no member's ID number or name (a list would hand out many people's at
    once); GET /v1/households/{household_id} shows one household's members, masked."""

    household_id: str
    region_code: str
    group: str | None
    poverty_status: str
    grid_worker_id: str | None
    member_count: int
    last_visited_at: datetime | None = Field(description="null: never visited")


@router.get("/households", response_model=Page[HouseholdListItem])
async def list_households(
    region: str | None = Query(None, description="a region prefix inside yours; default: your region"),
    grid_worker_id: str | None = Query(None, max_length=64),
    poverty_status: PovertyStatus | None = None,
    page: PageRequest = Depends(page_request),
    principal: Principal = Depends(require(kinds=("staff",))),
    ctx: ServiceContext = Depends(get_context),
):
    """Households of a region by household id, to find one and open it."""
    scope = region_scope(principal, region)
    async with ctx.sessions() as session:
        rows = await store.household_page(session, scope, grid_worker_id, poverty_status, page.after, page.limit + 1)
    return make_page(rows, page, key=lambda r: r.household_id,
                     item=lambda r: HouseholdListItem.model_validate(r, from_attributes=True))


class GridWorkerLoad(BaseModel):
    grid_worker_id: str
    household_count: int = Field(description="all the worker's households, the load the limit is about")
    max_households: int = Field(description="the limit, grid_worker_max_households")
    overloaded: bool


@router.get("/grid-workers", response_model=Page[GridWorkerLoad])
async def list_grid_workers(
    region: str | None = Query(None, description="a region prefix inside yours; default: your region"),
    overloaded: bool | None = Query(None, description="true: only those above the limit; false: only those within it"),
    page: PageRequest = Depends(page_request),
    principal: Principal = Depends(require(kinds=("staff",))),
    ctx: ServiceContext = Depends(get_context),
):
    """Grid workers (网格员) with households in a region and how many households each has: those with
    more than `grid_worker_max_households` (15) are to be given fewer."""
    scope = region_scope(principal, region)
    limit = ctx.settings.grid_worker_max_households
    async with ctx.sessions() as session:
        rows = await store.grid_worker_page(session, scope, limit if overloaded is True else None,
                                            limit if overloaded is False else None, page.after, page.limit + 1)
    return make_page(rows, page, key=lambda r: r.grid_worker_id, item=lambda r: GridWorkerLoad(
        grid_worker_id=r.grid_worker_id, household_count=r.household_count, max_households=limit,
        overloaded=domain.grid_worker_overloaded(r.household_count, limit)))


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
            raise Problem(404, "Not found", f"no household {household_id}", code="household_not_found")
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


