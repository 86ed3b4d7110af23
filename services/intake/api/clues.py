"""Clues (风险线索) from all three channels: how one is raised, and the list."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from contracts.intake import ClueSource, RiskClueRaised
from contracts.vocabulary import ClueChannel, PriorityGroup, RiskType
from runtime.auth import Principal, region_scope, require
from runtime.eventstore import NewEvent, StreamHead
from runtime.paging import Page, PageRequest, make_page, page_request
from runtime.service import ServiceContext, get_context
from services.intake import domain, store

router = APIRouter()


def new_clue(
    clue_id: str, household: store.HouseholdRef, channel: ClueChannel, now: datetime, risk_types: list[RiskType], *,
    department: str | None = None, source_record_id: str | None = None, worker_id: str | None = None,
    indicator: str | None = None, amount: Decimal | None = None, observed_at: datetime | None = None,
    detail: str | None = None,
) -> tuple[tuple[StreamHead, list[NewEvent]], dict]:
    """A clue of any channel: its RiskClueRaised event (a new stream) and its row, marked with the
    priority groups its facts put the household in."""
    groups = domain.priority_groups(department, indicator, risk_types, (observed_at or now).year,
                                    household.poverty_status, now.year)
    source = ClueSource(department=department, source_record_id=source_record_id, worker_id=worker_id)
    event = RiskClueRaised(clue_id=clue_id, household_id=household.household_id, channel=channel, source=source,
                           indicator=indicator, amount=amount, observed_at=observed_at, risk_types=risk_types,
                           priority_groups=groups, detail=detail)
    row = {"clue_id": clue_id, "household_id": household.household_id, "region_code": household.region_code,
           "channel": channel.value, "indicator": indicator,
           "source": {k: v for k, v in (("department", department), ("source_record_id", source_record_id),
                                        ("worker_id", worker_id)) if v is not None},
           "risk_types": [r.value for r in risk_types], "priority_groups": [g.value for g in groups],
           "status": "open", "raised_at": now}
    new = NewEvent(event, household_id=household.household_id, region_code=household.region_code, occurred_at=observed_at)
    return (StreamHead(f"clue-{clue_id}"), [new]), row


class ClueView(BaseModel):
    clue_id: str
    household_id: str
    region_code: str
    channel: str
    source: dict
    indicator: str | None
    risk_types: list[str]
    priority_groups: list[str]
    status: str
    raised_at: datetime


@router.get("/clues", response_model=Page[ClueView])
async def list_clues(
    region: str | None = None,
    status: str | None = None,
    channel: ClueChannel | None = None,
    priority_group: PriorityGroup | None = None,
    page: PageRequest = Depends(page_request),
    principal: Principal = Depends(require(kinds=("staff",))),
    ctx: ServiceContext = Depends(get_context),
):
    scope = region_scope(principal, region)
    async with ctx.sessions() as session:
        rows = await store.clue_page(session, scope, status, channel.value if channel else None,
                                     priority_group.value if priority_group else None, page.after, page.limit + 1)
    return make_page(rows, page, key=lambda r: r.clue_id, item=lambda r: ClueView.model_validate(r, from_attributes=True))
