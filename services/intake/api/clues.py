"""Clues (风险线索) from all three channels: how one is raised, and the list."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from functools import lru_cache

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from contracts.base import DumpedPayload
from contracts.fields import AS_OF_DESCRIPTION, AsOf
from contracts.intake import RiskClueRaised, RiskCluesRaised
from contracts.vocabulary import ClueChannel, PriorityGroup, RiskType
from runtime.auth import Principal, region_scope, require
from runtime.eventstore import NewEvent, StreamHead
from runtime.ids import new_id_str
from runtime.kafka import partition_of
from runtime.paging import Page, PageRequest, make_page, page_request
from runtime.problems import field_error
from runtime.service import ServiceContext, get_context
from services.intake import domain, store

router = APIRouter()


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
) -> tuple[dict, tuple]:
    """A clue of any channel, marked with the priority groups its facts put the household in: what
    it says, as a BatchedClue in JSON (built as such: a batch upload makes one per row, and models
    built only to be dumped again cost more than the rest of the row), and its row for
    store.insert_clues."""
    period_year = (observed_at or now).year  # as the sender wrote it: its offset keeps the local year
    risk_spelled, groups_spelled = _labels(department, indicator, tuple(risk_types), period_year,
                                           household.poverty_status)
    risks, groups = list(risk_spelled), list(groups_spelled)
    source = {"department": department, "source_record_id": source_record_id, "worker_id": worker_id,
              "over_threshold": over_threshold}
    clue = {"clue_id": clue_id, "household_id": household.household_id, "region_code": household.region_code,
            "channel": channel.value, "source": source,
            "indicator": indicator, "amount": None if amount is None else str(amount),
            "observed_at": None if observed_at is None else observed_at.isoformat(),
            "risk_types": risks, "priority_groups": groups, "detail": detail}
    row = store.clue_record(clue_id=clue_id, household_id=household.household_id, region_code=household.region_code,
                            channel=channel.value, source={k: v for k, v in source.items() if v is not None},
                            indicator=indicator, risk_types=risks, priority_groups=groups, raised_at=now,
                            period_year=period_year)
    return clue, row


def new_clue(clue_id: str, household: store.HouseholdRef, channel: ClueChannel, now: datetime,
             risk_types: list[RiskType], **facts) -> tuple[tuple[StreamHead, list[NewEvent]], tuple]:
    """A clue raised on its own: its RiskClueRaised event (a new stream) and its row."""
    clue, row = raise_clue(clue_id, household, channel, now, risk_types, **facts)
    return clue_on_its_own(clue), row


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
    region: str | None = None,
    status: str | None = None,
    channel: ClueChannel | None = None,
    priority_group: PriorityGroup | None = None,
    as_of: AsOf | None = Query(None, description=f"{AS_OF_DESCRIPTION}. With priority_group: a group of 'this "
                               "year' (当年) holds the clues whose facts are of as_of's year, raised then or since"),
    page: PageRequest = Depends(page_request),
    principal: Principal = Depends(require(kinds=("staff",))),
    ctx: ServiceContext = Depends(get_context),
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
