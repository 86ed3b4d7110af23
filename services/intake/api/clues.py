"""Clues (风险线索) from all three channels: the list (commands.raise_clue raises one)."""
from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from contracts.fields import AS_OF_DESCRIPTION, AsOf
from contracts.vocabulary import ClueChannel, PriorityGroup
from runtime.auth import Staff, region_scope
from runtime.paging import Page, Paging, make_page
from runtime.problems import field_error
from runtime.service import Context
from services.intake import domain, store

router = APIRouter()


class ClueView(BaseModel):
    clue_id: str
    household_id: str
    region_code: str
    channel: str
    source: dict
    indicator: str | None
    risk_types: list[str]
    priority_groups: list[str] = Field(description="the groups of the concentrated screening of period_year")
    period_year: int = Field(description="the year of the clue's facts (observed_at as sent, else the year it "
                                         "was raised): its groups of 'this year' (当年) are that year's")
    status: str
    raised_at: datetime


@router.get("/clues", response_model=Page[ClueView])
async def list_clues(
    *,
    region: str | None = None,
    status: str | None = None,
    channel: ClueChannel | None = None,
    priority_group: PriorityGroup | None = None,
    as_of: AsOf | None = Query(None, description=f"{AS_OF_DESCRIPTION}. With priority_group: a group of 'this "
                               "year' (当年) holds the clues whose facts are of as_of's year, raised then or since"),
    page: Paging,
    principal: Staff,
    ctx: Context,
):
    """`priority_group`: the clues of one of the five groups of the concentrated screening (集中排查)
    of the year of now or of `as_of`, as known now. A group of 'this year' (new allowance, quarterly
    income fall) is judged by the year of each clue's facts, so a December warning raised in January
    is in December's year's group (as_of in that year), not in January's."""
    if as_of is not None and priority_group is None:
        raise field_error("as_of", "goes with priority_group: it is the date whose year the groups are judged for",
                          code="as_of_without_priority_group")
    scope = region_scope(principal, region)
    year = (as_of or ctx.clock.now()).year
    async with ctx.sessions() as session:
        rows = await store.clue_page(session, scope, status, channel.value if channel else None,
                                     priority_group.value if priority_group else None, page.after, page.limit + 1,
                                     period_year=year if priority_group in domain.GROUPS_OF_THE_YEAR else None)
    return make_page(rows, page, key=lambda r: r.clue_id, item=lambda r: ClueView.model_validate(r, from_attributes=True))
