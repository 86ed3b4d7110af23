"""`fangpin audit timeline`: one household's history across the five services' event stores, in
causal order, each event with its time, service, actor, type and a one-line summary.

Which events (the same choice makes `fangpin audit export`'s bundle):
- every event whose envelope names the household;
- events that name no household but whose payload does: its `household_id`, or a clue's in
  `clues[]` (a `RiskCluesRaised` batch names no household in its envelope);
- events that name no household and are linked to one chosen: the event it was caused by
  (`causation_id`), an event it caused, or an event of its stream (a notification read names none);
  again, until nothing new turns up, across the stores (a consumed event's id is the causation_id
  of what a service appended in reaction).

Causal order: an event comes after the one it was caused by and after the one before it in its
stream, when those are in the history; otherwise by `recorded_at`, and events of one moment (a
simulation's fixed clock) by their UUIDv7 ids, which the wall clock orders.

Each store is read in one snapshot: the household's events by index, then, for the links no index
serves (an event caused by one chosen), a scan in pages of global positions with progress.
"""
from __future__ import annotations

import heapq
from collections import defaultdict
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Mapping, Sequence

import asyncpg
import orjson

from audit.verify import SELECT_EVENTS, AuditError, connect, ensure_event_store, stored_envelope
from contracts.audit import CheckpointSigned
from contracts.base import current_payload
from contracts.envelope import EventEnvelope

SHOWN_ZONE = timezone(timedelta(hours=8))  # the table shows China Standard Time; --json gives UTC, as the hashes spell it
PAGE_POSITIONS = 50_000
_SUMMARY_LIMIT = 200
_QUOTE_LIMIT = 60


@dataclass(frozen=True)
class StoredEvent:
    """One event as its service's store sealed it (`envelope`: the JSON form its hash covers)."""

    service: str
    global_position: int
    envelope: dict[str, Any]

    @property
    def event_id(self) -> str:
        return self.envelope["event_id"]

    @property
    def causation_id(self) -> str | None:
        return self.envelope["causation_id"]

    @property
    def stream_id(self) -> str:
        return self.envelope["stream_id"]

    @property
    def event_type(self) -> str:
        return self.envelope["event_type"]

    @property
    def recorded_at(self) -> datetime:
        return datetime.fromisoformat(self.envelope["recorded_at"])


# -- the one-line summary of each event type (pure) -------------------------------------------------

Summary = Callable[[Mapping[str, Any], "str | None"], str]
_SUMMARIES: dict[str, Summary] = {}


def _summary(*event_types: str):
    def register(fn: Summary) -> Summary:
        for event_type in event_types:
            _SUMMARIES[event_type] = fn
        return fn

    return register


def summarize(event_type: str, payload: Any, household_id: str | None = None) -> str:
    """One line about an event of `household_id`'s history, from its payload (at the current
    schema version). Codes as the events spell them; free text (a reason) only quoted and short,
    notes and minutes never. An unknown type, or a payload not of its type's shape, gives the type
    and its plain fields."""
    describe = _SUMMARIES.get(event_type)
    if describe is not None and isinstance(payload, Mapping):
        try:
            return _cut(describe(payload, household_id))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, StopIteration):
            pass  # altered, or a version this code does not know: say what there is
    return _fallback(event_type, payload)


def _fallback(event_type: str, payload: Any) -> str:
    if not isinstance(payload, Mapping):
        return event_type
    plain = [f"{k}={v}" for k, v in payload.items() if isinstance(v, (str, int, float)) and not isinstance(v, bool)]
    return _cut(f"{event_type}: {', '.join(plain)}" if plain else event_type)


def _cut(text: str, limit: int = _SUMMARY_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _quoted(text: Any) -> str:
    return f"“{_cut(' '.join(str(text).split()), _QUOTE_LIMIT)}”"


def _risks(p: Mapping[str, Any]) -> str:
    return f"risks: {', '.join(p['risk_types']) or 'none'}"


def _next(p: Mapping[str, Any]) -> str:
    due = p.get("due_date")
    return f"next: {p['step']}" + (f" due {due}" if due else "")


def _clue(c: Mapping[str, Any]) -> str:
    source = c.get("source") or {}
    said = f"clue {c['clue_id']} via {c['channel']}"
    if source.get("department"):
        said += f" from {source['department']}"
    if source.get("worker_id"):
        said += f" by grid worker {source['worker_id']}"
    if c.get("indicator"):
        said += f" ({c['indicator']})"
    if c.get("amount") is not None:
        said += f", {c['amount']} yuan"
    return f"{said}; {_risks(c)}"


def _household(p: Mapping[str, Any]) -> str:
    return f"village {p['region_code']}, {len(p['members'])} members, {p['poverty_status']}"


@_summary("HouseholdRegistered")
def _(p, _h):
    return f"registered: {_household(p)}"


@_summary("HouseholdUpdated")
def _(p, _h):
    return f"registry facts changed: {_household(p)}"


@_summary("RiskClueRaised")
def _(p, _h):
    return _clue(p)


@_summary("RiskCluesRaised")
def _(p, household_id):
    clues = p["clues"]
    own = [c for c in clues if c["household_id"] == household_id]
    count = f"{len(clues)} clue{'s' if len(clues) != 1 else ''}"
    return f"batch of {count}; this household's: " + ("; ".join(_clue(c) for c in own) or "none")


@_summary("WarningUnmatched")
def _(p, _h):
    return f"warning {p['warning_id']} from {p['department']} ({p['indicator']}) matched no registered person"


@_summary("VisitRecorded")
def _(p, _h):
    found = f"{_risks(p)}, clue {p['clue_id']}" if p["risk_types"] else "no risk found"
    return f"visit {p['visit_id']} by grid worker {p['worker_id']}: {found}"


@_summary("VerificationCaseOpened")
def _(p, _h):
    return f"case {p['case_id']} opened from clue {p['clue_id']}; {_risks(p)}; {p['step']} due {p['due_date']}"


@_summary("ClueAttachedToCase")
def _(p, _h):
    return f"clue {p['clue_id']} joins case {p['case_id']}; {_risks(p)}"


@_summary("SubjectRiskAdded")
def _(p, _h):
    return f"new risk of the monitoring subject from clue {p['clue_id']}; {_risks(p)}"


@_summary("HouseholdVerified")
def _(p, _h):
    year = f" {p['income_year']}" if p.get("income_year") else ""
    verdict = "eligible" if p["eligible"] else "not eligible"
    return (f"verified: per-capita net income {p['per_capita_net_income']} against the{year} line "
            f"{p['monitoring_line']}: {verdict}; next: {p['step']}")


@_summary("VillageDeliberated")
def _(p, _h):
    return f"village deliberation: {p['decision']} ({p['attendees']} attending); {_next(p)}"


@_summary("PublicNoticePosted")
def _(p, _h):
    return f"public notice until {p['ends_on']}"


@_summary("ObjectionRaised")
def _(p, _h):
    return f"objection {p['objection_id']} raised: {_quoted(p['reason'])}"


@_summary("ObjectionResolved")
def _(p, _h):
    return f"objection {p['objection_id']} {'upheld' if p['upheld'] else 'dismissed'}; {_next(p)}"


@_summary("CaseReturned")
def _(p, _h):
    return f"returned by the {p['by']} to {p['step']}: {_quoted(p['reason'])}"


@_summary("PublicNoticeClosed")
def _(p, _h):
    return f"public notice ended {p['ended_on']}; {_next(p)}"


@_summary("TownshipReviewed")
def _(p, _h):
    return f"township review: {p['decision']}; {_next(p)}"


@_summary("CountyDecided")
def _(p, _h):
    return f"county decision: {p['decision']}"


@_summary("SubjectIdentified")
def _(p, _h):
    return f"monitoring subject ({p['category']}); {_risks(p)}"


@_summary("IdentificationRejected")
def _(p, _h):
    return f"not identified ({p['level']}): {_quoted(p['reason'])}"


@_summary("RemovalProposed")
def _(p, _h):
    return f"removal proposed: {_quoted(p['reason'])}"


@_summary("SubjectRemoved")
def _(p, _h):
    return "removed from monitoring"


@_summary("RemovalRejected")
def _(p, _h):
    return "removal rejected: stays a monitoring subject"


@_summary("ProtectionProposed")
def _(p, _h):
    return "protected mark proposed (no member can work)"


@_summary("SubjectProtected")
def _(p, _h):
    return "protected mark confirmed"


@_summary("ProtectionDeclined")
def _(p, _h):
    return "protected mark declined"


@_summary("SubjectRiskEliminated")
def _(p, _h):
    return f"risk eliminated (exit {p['exit_id']})"


@_summary("SubjectMonitoredAgain")
def _(p, _h):
    return f"monitored again (exit {p['exit_id']} rolled back)"


@_summary("AllowanceWatchesChecked")
def _(p, _h):
    return f"out-of-loop check of {len(p['clue_ids'])} clues"


@_summary("QualityIssueRaised")
def _(p, _h):
    return f"quality issue {p['issue_id']}: {p['kind']}"


@_summary("CaseStepOverdue")
def _(p, _h):
    return f"case {p['case_id']}: {p['step']} overdue (due {p['due_date']})"


@_summary("ExitApproved")
def _(p, _h):
    return f"exit {p['exit_id']} approved"


@_summary("ExitRolledBack")
def _(p, _h):
    return f"exit {p['exit_id']} rolled back: {_quoted(p['reason'])}"


@_summary("StaffRegistered")
def _(p, _h):
    return f"staff {p['staff_id']} registered as {p['role']} in {p['region_code']}"


@_summary("NotificationSent")
def _(p, _h):
    return f"{p['kind']} task to staff {p['staff_id']} ({p['reference']})"


@_summary("NotificationRead")
def _(p, _h):
    return f"read by staff {p['staff_id']}"


@_summary(CheckpointSigned.event_type)
def _(p, _h):
    return f"checkpoint {p['sequence']} up to global position {p['upto_position']}"


def current_form(envelope: Mapping[str, Any]) -> Any:
    """The payload at its type's current schema version (upcast); as stored when that cannot be had."""
    try:
        return current_payload(EventEnvelope.model_validate(envelope))
    except (LookupError, ValueError, TypeError):
        return envelope.get("payload")


# -- causal order and the entries (pure) ----------------------------------------------------------

def causal_order(events: Iterable[StoredEvent]) -> list[StoredEvent]:
    """Each event after its cause and its stream's previous event (those in the list), else by time."""
    events = list(events)
    by_id = {e.event_id: i for i, e in enumerate(events)}
    after: dict[int, set[int]] = defaultdict(set)  # event -> the events that must come first
    streams: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, e in enumerate(events):
        streams[(e.service, e.stream_id)].append(i)
        cause = by_id.get(e.causation_id) if e.causation_id else None
        if cause is not None and cause != i:
            after[i].add(cause)
    for members in streams.values():
        members.sort(key=lambda i: events[i].envelope["stream_position"])
        for earlier, later in zip(members, members[1:]):
            after[later].add(earlier)
    followers: dict[int, list[int]] = defaultdict(list)
    for i, firsts in after.items():
        for first in firsts:
            followers[first].append(i)

    def key(i: int) -> tuple:
        e = events[i]
        return e.recorded_at, e.event_id, e.service, e.global_position, i

    waiting = {i: len(after[i]) for i in range(len(events))}
    ready = [key(i) for i in range(len(events)) if not waiting[i]]
    heapq.heapify(ready)
    ordered: list[int] = []
    while len(ordered) < len(events):
        if not ready:  # a cycle of causes (a tampered store): go on with the earliest left
            left = min(key(i) for i in waiting if waiting[i] > 0)
            waiting[left[-1]] = 0
            ready.append(left)
        i = heapq.heappop(ready)[-1]
        ordered.append(i)
        for follower in followers[i]:
            if waiting[follower] > 0:
                waiting[follower] -= 1
                if not waiting[follower]:
                    heapq.heappush(ready, key(follower))
    return [events[i] for i in ordered]


def timeline_entries(events: Sequence[StoredEvent], household_id: str) -> list[dict[str, Any]]:
    """The timeline for machines (`--json`): each event's envelope but its payload and hashes, and
    its summary. Times in UTC, as the store's hashes spell them."""
    entries = []
    for e in events:
        envelope = e.envelope
        entries.append({
            "recorded_at": envelope["recorded_at"], "occurred_at": envelope["occurred_at"], "service": e.service,
            "event_type": e.event_type, "schema_version": envelope["schema_version"],
            "summary": summarize(e.event_type, current_form(envelope), household_id),
            "actor": envelope["actor"], "household_id": envelope["household_id"],
            "region_code": envelope["region_code"], "stream_id": e.stream_id,
            "stream_position": envelope["stream_position"], "global_position": e.global_position,
            "event_id": e.event_id, "correlation_id": envelope["correlation_id"], "causation_id": e.causation_id,
        })
    return entries


def actor_text(actor: Any) -> str:
    if not isinstance(actor, Mapping):
        return str(actor)
    said = f"{actor.get('kind')} {actor.get('id')}"
    return said + (f" ({actor['role']})" if actor.get("role") else "")


def shown_time(utc_spelled: str) -> str:
    return datetime.fromisoformat(utc_spelled).astimezone(SHOWN_ZONE).strftime("%Y-%m-%d %H:%M:%S")


def timeline_table(entries: Sequence[Mapping[str, Any]], household_id: str, as_of: datetime | None = None):
    """The readable table: one event a row, numbered; "after" names the row of its cause."""
    from rich.table import Table

    title = f"Household {household_id}: {len(entries)} events" + (
        f", as of {as_of.astimezone(SHOWN_ZONE).isoformat()}" if as_of else "")
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("recorded (UTC+08:00)", no_wrap=True)
    table.add_column("service", no_wrap=True)
    table.add_column("actor", min_width=12)
    table.add_column("event", no_wrap=True)
    table.add_column("summary", overflow="fold", min_width=30)
    table.add_column("after", no_wrap=True)
    line_of = {entry["event_id"]: n for n, entry in enumerate(entries, start=1)}
    for n, entry in enumerate(entries, start=1):
        cause = entry["causation_id"]
        after = "" if cause is None else f"#{line_of[cause]}" if cause in line_of else f"{cause[:13]}…"
        table.add_row(str(n), shown_time(entry["recorded_at"]), entry["service"], actor_text(entry["actor"]),
                      entry["event_type"], entry["summary"], after)
    return table


# -- reading the stores -----------------------------------------------------------------------------

ScanProgress = Callable[[str, int, int], None]  # (service, global positions searched, positions in the store)

_UP_TO = " and ($2::timestamptz is null or recorded_at <= $2)"
_NAMING_NONE = f" and household_id is null and event_type <> '{CheckpointSigned.event_type}'"
_BY_HOUSEHOLD = SELECT_EVENTS + " where household_id = $1" + _UP_TO + " order by global_position"
_BY_ID = SELECT_EVENTS + " where event_id = any($1::uuid[])" + _UP_TO + _NAMING_NONE
_BY_STREAM = SELECT_EVENTS + " where stream_id = any($1::text[])" + _UP_TO + _NAMING_NONE
_PAGE = " and global_position > $3 and global_position <= $4"
_CAUSED = SELECT_EVENTS + " where causation_id = any($1::uuid[])" + _UP_TO + _NAMING_NONE + _PAGE
_CAUSED_OR_NAMING = (SELECT_EVENTS + " where true" + _UP_TO + _NAMING_NONE + _PAGE
                     + " and (causation_id = any($1::uuid[]) or payload @> $5::jsonb or payload @> $6::jsonb)")


class _Selection:
    """The events of one household's history, gathered from the stores (service -> connection)."""

    def __init__(self, stores: Mapping[str, asyncpg.Connection], household_id: str, as_of: datetime | None,
                 progress: ScanProgress | None) -> None:
        self.stores, self.household_id, self.as_of, self.progress = stores, household_id, as_of, progress
        self.found: dict[tuple[str, int], StoredEvent] = {}
        self.ids: set[str] = set()
        self.unsearched: set[str] = set()  # ids whose effects no scan has looked for yet
        self.asked_causes: set[str] = set()
        self.asked_streams: set[tuple[str, str]] = set()

    def take(self, service: str, rows: Iterable[Any]) -> int:
        new = 0
        for row in rows:
            if (service, row[0]) in self.found:
                continue
            event = StoredEvent(service, row[0], stored_envelope(row))
            self.found[(service, row[0])] = event
            self.ids.add(event.event_id)
            self.unsearched.add(event.event_id)
            new += 1
        return new

    async def gather(self) -> list[StoredEvent]:
        for service, connection in self.stores.items():
            self.take(service, await connection.fetch(_BY_HOUSEHOLD, self.household_id, self.as_of))
        if not self.found:
            return []
        first = True
        while True:
            await self._linked_by_index()
            searched, self.unsearched = self.unsearched, set()
            if not searched and not first:
                return list(self.found.values())
            for service, connection in self.stores.items():
                await self._scan(service, connection, sorted(searched), naming=first)
            first = False

    async def _linked_by_index(self) -> None:
        """Causes and stream mates that name no household, until nothing new turns up."""
        while True:
            causes = {e.causation_id for e in self.found.values() if e.causation_id} - self.ids - self.asked_causes
            self.asked_causes |= causes
            new = 0
            for service, connection in self.stores.items():
                streams = {e.stream_id for e in self.found.values() if e.service == service} - {
                    s for owner, s in self.asked_streams if owner == service}
                self.asked_streams |= {(service, s) for s in streams}
                if causes:
                    new += self.take(service, await connection.fetch(_BY_ID, sorted(causes), self.as_of))
                if streams:
                    new += self.take(service, await connection.fetch(_BY_STREAM, sorted(streams), self.as_of))
            if not new:
                return

    async def _scan(self, service: str, connection: asyncpg.Connection, caused_by: list[str], naming: bool) -> None:
        """The events naming no household caused by `caused_by`, and (`naming`) those whose payload
        names the household, in pages of global positions."""
        last = await connection.fetchval("select coalesce(max(global_position), 0) from events")
        mentions = (orjson.dumps({"household_id": self.household_id}).decode(),
                    orjson.dumps({"clues": [{"household_id": self.household_id}]}).decode())
        for low in range(0, last, PAGE_POSITIONS):
            high = min(low + PAGE_POSITIONS, last)
            if naming:
                rows = await connection.fetch(_CAUSED_OR_NAMING, caused_by, self.as_of, low, high, *mentions)
            else:
                rows = await connection.fetch(_CAUSED, caused_by, self.as_of, low, high)
            self.take(service, rows)
            if self.progress is not None:
                self.progress(service, high, last)


async def household_events(targets: Sequence[tuple[str, str]], household_id: str, as_of: datetime | None = None,
                           progress: ScanProgress | None = None) -> list[StoredEvent]:
    """The events of `household_id`'s history (see the module's docstring) in the stores of
    `targets` ((service, database URL) each), recorded at or before `as_of` if given; empty when
    no event names it. Not ordered: causal_order orders them."""
    async with AsyncExitStack() as stack:
        stores: dict[str, asyncpg.Connection] = {}
        for service, url in targets:
            connection = await connect(url, service)
            stack.push_async_callback(connection.close)
            await ensure_event_store(connection, service)
            await stack.enter_async_context(connection.transaction(isolation="repeatable_read", readonly=True))
            stores[service] = connection
        try:
            return await _Selection(stores, household_id, as_of, progress).gather()
        except asyncpg.PostgresError as exc:
            raise AuditError(f"the stores could not be searched ({type(exc).__name__}: {exc})") from exc
