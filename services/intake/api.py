"""intake's HTTP surface: the registry and department warnings."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator, model_validator
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
        owners = await store.households_of_members(uow.session, [vault.id_hash(m.id_number) for m in body.members])
        taken = {h for h in owners.values() if h != body.household_id}
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


@router.post("/warnings", status_code=201, response_model=WarningOut)
async def post_warning(
    body: WarningIn,
    request: Request,
    principal: Principal = Depends(require("department_system", "department_liaison", kinds=("system", "staff"))),
    ctx: ServiceContext = Depends(get_context),
):
    if principal.department and principal.department != body.department:
        raise Problem(403, "Forbidden", f"this token posts for {principal.department}, not {body.department}")
    try:
        risk_types = domain.risk_types_of_warning(body.department, body.indicator, body.amount)
    except domain.UnknownIndicator as exc:
        raise field_error("indicator", str(exc)) from None
    if not risk_types:
        raise field_error("amount", f"below the threshold of {body.department}/{body.indicator}")
    vault = store.IdentityVault(ctx.settings)
    id_hash = vault.id_hash(body.id_number) if body.id_number else None

    async def work(uow: UnitOfWork) -> WarningOut:
        household = None
        if body.household_id:
            household = await store.household_row(uow.session, body.household_id)
        elif id_hash:
            household = await store.household_of_person(uow.session, id_hash)
        warning_id, clue_id = str(uuid7()), (str(uuid7()) if household else None)
        claimed = await store.claim_warning(uow.session, {
            "department": body.department, "source_record_id": body.source_record_id, "warning_id": warning_id,
            "status": "accepted" if household else "unmatched", "household_id": household.household_id if household else None,
            "id_hash": id_hash, "clue_id": clue_id, "indicator": body.indicator, "amount": body.amount,
            "observed_at": body.observed_at, "detail": body.detail, "received_at": ctx.clock.now(),
        })
        if not claimed:
            earlier = await store.warning_row(uow.session, body.department, body.source_record_id)
            return WarningOut(outcome="duplicate", warning_id=earlier.warning_id, clue_id=earlier.clue_id,
                              household_id=earlier.household_id)
        if household is None:
            await uow.append(f"warning-{warning_id}", 0, [NewEvent(WarningUnmatched(
                warning_id=warning_id, department=body.department, source_record_id=body.source_record_id,
                indicator=body.indicator, observed_at=body.observed_at,
            ), occurred_at=body.observed_at)])
            return WarningOut(outcome="unmatched", warning_id=warning_id)
        source = ClueSource(department=body.department, source_record_id=body.source_record_id)
        await uow.append(f"clue-{clue_id}", 0, [NewEvent(RiskClueRaised(
            clue_id=clue_id, household_id=household.household_id, channel=ClueChannel.DEPARTMENT_WARNING,
            source=source, indicator=body.indicator, amount=body.amount, observed_at=body.observed_at,
            risk_types=risk_types, detail=body.detail,
        ), household_id=household.household_id, region_code=household.region_code, occurred_at=body.observed_at)])
        await uow.session.execute(store.clues.insert().values(
            clue_id=clue_id, household_id=household.household_id, region_code=household.region_code,
            channel=ClueChannel.DEPARTMENT_WARNING.value, source=source.model_dump(exclude_none=True),
            indicator=body.indicator, risk_types=[r.value for r in risk_types], status="open", raised_at=ctx.clock.now(),
        ))
        return WarningOut(outcome="accepted", warning_id=warning_id, clue_id=clue_id, household_id=household.household_id)

    result: WarningOut = await run_command(ctx, command_metadata(principal, request), work)
    status = {"accepted": 201, "duplicate": 200, "unmatched": 202}[result.outcome]
    return JSONResponse(result.model_dump(), status_code=status)


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
