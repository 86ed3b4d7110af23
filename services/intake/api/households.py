"""Registry: register, update, bulk-import and read households (ID numbers masked)."""
from __future__ import annotations

from datetime import date
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator, model_validator

from contracts.base import decode_payload
from contracts.fields import BirthDate
from contracts.vocabulary import LaborCapacity
from runtime.auth import Principal, command_metadata, require, require_region
from runtime.eventstore import NewEvent, StreamHead
from runtime.problems import Problem
from runtime.service import ServiceContext, UnitOfWork, get_context, run_command
from services.intake import domain, store
from services.intake.api.fields import IdNumber
from services.intake.api.ndjson import run_ndjson_batch, tally
from services.intake.api.warnings import rematch_warnings

router = APIRouter()
REGISTRARS = ("village_cadre", "grid_worker", "work_team", "township_officer", "county_officer")


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
        taken = sorted({owners[hashes[m.id_number]].household_id for m in row.members if hashes[m.id_number] in owners} - {row.household_id})
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
                                                lambda line, **why: HouseholdRow(line=line, outcome="invalid", **why)):
        notices.update(found)
        tally(summary, results)
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


