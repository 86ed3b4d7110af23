"""The only code that writes intake's projected read tables, from intake's own events
(runtime.projections): applied in the transaction that appends them, and again by a rebuild.

Projected, rebuilt from intake's events:
- `households`: HouseholdRegistered / HouseholdUpdated; its last visit from VisitRecorded.
- `clues`: RiskClueRaised (one) and RiskCluesRaised (a batch upload's chunk, read in its JSON form:
  a million clues are not a million models).
- `visits`: VisitRecorded.

Primary records, facts no event carries (kept, never rebuilt; written by commands.py through store.py):
- `members`: the sealed ID numbers and names, and the keyed hash of the ID number that matching uses
  (events name a member by a pseudonymous id only).
- `warnings`: each department record as it was sent, with the keyed hash of its person: the ledger
  that refuses a record sent twice and keeps unmatched ones until their person is registered.
- `declarations`: the sealed phone number and the household's own words.
"""
from __future__ import annotations

from datetime import datetime

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.base import current_payload
from contracts.envelope import EventEnvelope
from runtime.bulk import copy_records, insert_rows, update_rows, upsert_rows
from runtime.projections import Projections
from services.intake.store import clues, declarations, households, members, visits, warnings

HOUSEHOLD_COLUMNS = ("region_code", "group", "poverty_status", "grid_worker_id")


async def households_registered(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    """HouseholdRegistered and HouseholdUpdated: the household as it now stands (its last visit kept)."""
    await upsert_rows(session, households, [
        {"household_id": payload["household_id"], **{c: payload.get(c) for c in HOUSEHOLD_COLUMNS},
         "updated_at": envelope.recorded_at} for envelope in envelopes for payload in [current_payload(envelope)]],
        key=("household_id",))


CLUE_COLUMNS = ("clue_id", "household_id", "region_code", "channel", "source", "indicator", "risk_types",
                "priority_groups", "status", "raised_at", "period_year")


def clue_record(clue: dict, region_code: str, raised_at: datetime) -> tuple:
    """A clue's row (its values in CLUE_COLUMNS order) from the clue as its event spells it. The year
    its priority groups are judged for is that of its own facts as the sender wrote them (the
    offset keeps the local year), else the year it was raised in."""
    observed_at = clue.get("observed_at")
    source = {k: v for k, v in clue["source"].items() if v is not None}
    return (clue["clue_id"], clue["household_id"], region_code, clue["channel"], orjson.dumps(source).decode(),
            clue.get("indicator"), clue["risk_types"], clue.get("priority_groups", []), "open", raised_at,
            int(observed_at[:4]) if observed_at else raised_at.year)


async def clue_raised(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await copy_records(session, clues, CLUE_COLUMNS, [
        clue_record(current_payload(envelope), envelope.region_code, envelope.recorded_at) for envelope in envelopes])


async def clues_raised(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await copy_records(session, clues, CLUE_COLUMNS, [
        clue_record(clue, clue["region_code"], envelope.recorded_at)
        for envelope in envelopes for clue in current_payload(envelope)["clues"]])


async def visit_recorded(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    """The visit, and its household's last visit moved forward (never back: visits may arrive late)."""
    rows = []
    last_visits: dict[str, datetime] = {}  # household -> its last visit among these
    for envelope in envelopes:
        payload = current_payload(envelope)
        rows.append({"visit_id": payload["visit_id"], "household_id": payload["household_id"],
                     "worker_id": payload["worker_id"], "visited_at": payload["visited_at"],
                     "risk_types": payload["risk_types"], "notes": payload.get("notes"),
                     "clue_id": payload.get("clue_id"), "recorded_at": envelope.recorded_at})
        visited_at, before = datetime.fromisoformat(payload["visited_at"]), last_visits.get(payload["household_id"])
        if before is None or visited_at > before:
            last_visits[payload["household_id"]] = visited_at
    await insert_rows(session, visits, rows)
    await update_rows(session, households, [{"household_id": household, "last_visited_at": at}
                                            for household, at in last_visits.items()],
                      key=("household_id",), forward_only=("last_visited_at",))


PROJECTIONS = Projections(
    tables=(households, clues, visits),
    appliers={"HouseholdRegistered": households_registered, "HouseholdUpdated": households_registered,
              "RiskClueRaised": clue_raised, "RiskCluesRaised": clues_raised, "VisitRecorded": visit_recorded},
    primary_records=(members, warnings, declarations),
    # Grouped by applier, a page gives the rows store order gives: households come first (a visit
    # moves its household's last visit, and follows its registration in the store), an upsert of a
    # household leaves its last visit alone, a visit only moves it forward (visits commute), and
    # clues are written by their own appliers only.
    rebuild_grouped=True,
)
