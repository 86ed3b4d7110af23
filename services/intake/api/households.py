"""Registry: register, update, bulk-import, read and list households (ID numbers masked), and the
grid workers' loads."""
from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator, model_validator

from contracts.fields import BirthDate, FieldProblem, refusal
from contracts.vocabulary import LaborCapacity
from runtime.auth import Staff, StaffOrSystem, command_metadata, region_scope, require_region
from runtime.ndjson import ndjson_body, run_ndjson_batch, tally
from runtime.paging import Page, Paging, make_page
from runtime.problems import Problem
from runtime.service import Context, UnitOfWork, run_command
from services.intake import commands, domain, store
from services.intake.api.deps import Registrar
from services.intake.api.fields import IdNumber
from services.intake.commands import HouseholdRow
from services.intake.vault import IdentityVault

router = APIRouter()
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
async def register_household(body: HouseholdIn, request: Request, principal: Registrar, ctx: Context):
    notices: list[str] = []

    async def work(uow: UnitOfWork):
        notices.clear()
        return await commands.register_households(uow, principal, [(1, body)], notices)

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
async def import_households(request: Request, principal: Registrar, ctx: Context):
    """NDJSON of households, streamed and committed every few hundred rows; a retry of the same
    file changes nothing that was already imported (those rows answer `unchanged`)."""
    summary = ImportOutcome()
    notices: set[str] = set()

    async def ingest(uow: UnitOfWork, chunk):
        found: list[str] = []
        results = await commands.register_households(uow, principal, chunk, found)
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
    *,
    region: str | None = Query(None, description="a region prefix inside yours; default: your region"),
    grid_worker_id: str | None = Query(None, max_length=64),
    poverty_status: PovertyStatus | None = None,
    page: Paging,
    principal: Staff,
    ctx: Context,
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
    *,
    region: str | None = Query(None, description="a region prefix inside yours; default: your region"),
    overloaded: bool | None = Query(None, description="true: only those above the limit; false: only those within it"),
    page: Paging,
    principal: Staff,
    ctx: Context,
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
    principal: StaffOrSystem,
    ctx: Context,
):
    vault = IdentityVault(ctx.settings)
    async with ctx.sessions() as session:
        row = await store.household_row(session, household_id)
        if row is None:
            raise domain.HouseholdNotFound(f"no household {household_id}")
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


