"""Department warnings (部门筛查预警): single, streamed batch, and the unmatched list."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from contracts.fields import Amount, Moment, amount_problem
from contracts.intake import WarningUnmatched
from contracts.vocabulary import ClueChannel
from runtime.auth import Principal, command_metadata, require
from runtime.eventstore import NewEvent, StreamHead
from runtime.ids import new_id_str
from runtime.paging import Page, PageRequest, make_page, page_request
from runtime.problems import Problem, field_error
from runtime.service import ServiceContext, UnitOfWork, get_context, run_command
from services.intake import domain, store
from services.intake.api.clues import clue_on_its_own, clues_together, raise_clue
from services.intake.api.fields import IdNumber
from services.intake.api.ndjson import run_ndjson_batch, tally

router = APIRouter()


class WarningIn(BaseModel):
    department: str = Field(min_length=1, max_length=64)
    source_record_id: str = Field(min_length=1, max_length=128, description="unique per department")
    id_number: IdNumber | None = None
    household_id: str | None = None
    indicator: str = Field(min_length=1, max_length=64)
    amount: Amount | None = None
    observed_at: Moment
    detail: str | None = Field(None, max_length=2000)

    @field_validator("amount")
    @classmethod
    def _within_the_indicators_maximum(cls, amount: Decimal | None, info: ValidationInfo) -> Decimal | None:
        # a field validator, not a model one, so that the error names the field "amount"
        indicator = info.data.get("indicator")  # validated before amount, absent if it failed
        if amount is not None and indicator:
            if problem := amount_problem(amount, domain.amount_maximum(indicator)):
                raise PydanticCustomError("amount", f"{problem} for the indicator {indicator}")
        return amount

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


@dataclass(slots=True)
class RowOutcome:
    """A plain dataclass: a million-row batch makes one per row, and a pydantic model costs more."""

    line: int
    outcome: Literal["accepted", "duplicate", "unmatched", "invalid"]
    warning_id: str | None = None
    clue_id: str | None = None
    household_id: str | None = None
    field: str | None = None
    reason: str | None = None


def clue_of_warning(clue_id: str, household: store.HouseholdRef, now: datetime, risk_types: list, warning):
    """The clue a warning raises, whether it arrives matched or is re-matched later (`warning`: the
    request row or the stored one; both carry the same fields), and its row."""
    return raise_clue(clue_id, household, ClueChannel.DEPARTMENT_WARNING, now, risk_types,
                      department=warning.department, source_record_id=warning.source_record_id,
                      indicator=warning.indicator, amount=warning.amount, observed_at=warning.observed_at,
                      detail=warning.detail)


_DEPARTMENT_ROLES = require("department_system", "department_liaison", kinds=("system", "staff"))


async def warning_sender(principal: Principal = Depends(_DEPARTMENT_ROLES)) -> Principal:
    """A department system or liaison, acting for exactly the one department its token names: a
    token without one could otherwise post any department's warnings."""
    if not principal.department:
        raise Problem(403, "Forbidden", "this token names no department; a department's token carries its "
                      "department (fangpin token --kind system --role department_system --department civil_affairs)",
                      errors=[{"field": "department", "message": "the token has no department claim"}])
    return principal


async def ingest_warnings(uow: UnitOfWork, principal: Principal, rows: list[tuple[int, WarningIn | RowOutcome]],
                          together: bool = False) -> list[RowOutcome]:
    """Set-based ingestion of department warnings (部门筛查预警): a handful of queries per call,
    whatever the number of rows. A single POST is a batch of one. `together`: the clues go out in
    a few RiskCluesRaised events (batch uploads), not one RiskClueRaised each."""
    vault = store.IdentityVault(uow.ctx.settings)
    now = uow.ctx.clock.now()
    outcomes: dict[int, RowOutcome] = {}
    candidates: list[tuple[int, WarningIn, list]] = []
    seen: set[tuple[str, str]] = set()
    for line, row in rows:
        if type(row) is RowOutcome:  # invalid already
            outcomes[line] = row
            continue
        key = (row.department, row.source_record_id)
        if principal.department and principal.department != row.department:
            outcomes[line] = RowOutcome(line=line, outcome="invalid", field="department",
                                        reason=f"this token posts for {principal.department}, not {row.department}")
            continue
        try:
            risk_types = domain.risk_types_of_warning(row.department, row.indicator, row.amount, row.observed_at.year)
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
    by_id = await store.households_by_id(uow.session, [row.household_id for _, row, _ in candidates if row.household_id])

    def household_of(line: int, row: WarningIn) -> store.HouseholdRef | None:
        return by_id.get(row.household_id) if row.household_id else by_person.get(hashes[line])

    planned = []
    for line, row, risk_types in candidates:
        household = household_of(line, row)
        planned.append((line, row, risk_types, household, new_id_str(), new_id_str() if household else None))
    claimed = await store.claim_warnings(uow.session, [
        {"department": row.department, "source_record_id": row.source_record_id, "warning_id": warning_id,
         "status": "accepted" if household else "unmatched", "household_id": household.household_id if household else None,
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

    new_streams, clues, clue_rows = [], [], []
    for line, row, risk_types, household, warning_id, clue_id in planned:
        if (row.department, row.source_record_id) not in claimed:
            continue
        if household is None:
            new_streams.append((StreamHead(f"warning-{warning_id}"), [NewEvent(WarningUnmatched(
                warning_id=warning_id, department=row.department, source_record_id=row.source_record_id,
                indicator=row.indicator, observed_at=row.observed_at), occurred_at=row.observed_at)]))
            outcomes[line] = RowOutcome(line=line, outcome="unmatched", warning_id=warning_id)
            continue
        clue, clue_row = clue_of_warning(clue_id, household, now, risk_types, row)
        clues.append(clue)
        clue_rows.append(clue_row)
        outcomes[line] = RowOutcome(line, "accepted", warning_id, clue_id, household.household_id)
    if together:
        new_streams.extend(clues_together(clues, uow.ctx.settings.kafka_partitions))
    else:
        new_streams.extend(clue_on_its_own(clue) for clue in clues)
    await uow.append_many(new_streams)
    await store.insert_clues(uow.session, clue_rows)
    return [outcomes[line] for line, _ in rows]


@router.post("/warnings", status_code=201, response_model=WarningOut)
async def post_warning(
    body: WarningIn,
    request: Request,
    principal: Principal = Depends(warning_sender),
    ctx: ServiceContext = Depends(get_context),
):
    [result] = await run_command(ctx, command_metadata(principal, request),
                                 lambda uow: ingest_warnings(uow, principal, [(1, body)]))
    if result.outcome == "invalid":
        if result.field == "department":
            raise Problem(403, "Forbidden", result.reason)
        raise field_error(result.field, result.reason)
    status = {"accepted": 201, "duplicate": 200, "unmatched": 202}[result.outcome]
    return JSONResponse(WarningOut.model_validate(asdict(result)).model_dump(), status_code=status)


class BatchOutcome(BaseModel):
    rows: int = 0
    accepted: int = 0
    duplicate: int = 0
    unmatched: int = 0
    invalid: int = 0
    rejected: list[RowOutcome] = Field(default_factory=list, description="the invalid rows, with line, field and reason")


BATCH_CHUNK_ROWS = 2000


@router.post("/warnings:batch", response_model=BatchOutcome)
async def post_warning_batch(
    request: Request,
    principal: Principal = Depends(warning_sender),
    ctx: ServiceContext = Depends(get_context),
):
    """NDJSON, one warning a line, up to a million lines; read as a stream and committed every
    BATCH_CHUNK_ROWS rows, so a cut-off upload keeps what was accepted and its retry adds nothing twice."""
    summary = BatchOutcome()

    async def ingest(uow: UnitOfWork, chunk):
        return await ingest_warnings(uow, principal, chunk, together=True)

    async for results in run_ndjson_batch(request, ctx, principal, WarningIn, ingest, BATCH_CHUNK_ROWS,
                                          lambda line, **why: RowOutcome(line=line, outcome="invalid", **why)):
        tally(summary, results)
    return summary



async def rematch_warnings(uow: UnitOfWork, people: dict[str, store.HouseholdRef], now: datetime) -> None:
    """Warnings kept as unmatched become clues once their person is registered."""
    waiting = await store.unmatched_warnings_of(uow.session, list(people))
    streams, clue_rows, matched = [], [], []
    for w in waiting:
        household = people[w.id_hash]
        clue_id = new_id_str()
        year = (w.observed_at or now).year
        risk_types = domain.risk_types_of_warning(w.department, w.indicator, w.amount, year)
        clue, clue_row = clue_of_warning(clue_id, household, now, risk_types, w)
        streams.append(clue_on_its_own(clue))
        clue_rows.append(clue_row)
        matched.append({"department": w.department, "source_record_id": w.source_record_id,
                        "household_id": household.household_id, "clue_id": clue_id})
    await uow.append_many(streams)
    await store.insert_clues(uow.session, clue_rows)
    await store.mark_matched(uow.session, matched)


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


