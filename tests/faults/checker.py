"""The fault suite's checker, in the style of Jepsen's and Vanlightly's Kafka checkers: what every
client was told (the Ledger) against what every store and topic holds.

`collect()` reads the whole system into a Snapshot (each service's events, relay cursor, inbox and
the tables that matter; every topic from its earliest offset; /readyz; the processes); `evaluate()`
is pure and returns Findings, each naming exactly what is missing, doubled or wrong.
`wait_until_healed()` polls both until nothing is found (and still nothing a few seconds later) or a
deadline passes, and gives the time to heal.

The checks:
- answers:      every request was answered, and every warning was told it is stored (201 accepted,
                or 200 duplicate of an earlier accepted one; a batch: every row accepted or duplicate)
- intake:       every warning told accepted is exactly one clue (its row, the clue id it was told, one
                event carrying it); no warning has two clues; a request never answered left at most one
- screening:    every clue of intake is in exactly one case, once, of its household, taken by exactly
                one screening event; no household has two open cases; case rows = VerificationCaseOpened
- notifier:     every case is exactly one task for each village cadre of its village, none for a case
                that does not exist; notification rows = NotificationSent events
- topics:       every event of every store is on its topic `<prefix>fangpin.<service>.events`, nothing on
                it that is not in the store, the relay cursor at the store's last position; every topic
                and its dead-letter topic exists with the configured partitions
- inboxes:      every consumer's inbox holds every event of the topics it consumes (applied or ignored),
                none dead-lettered, none it could not have read
- dead_letters: every `<topic>.dlq` is empty (no message in these scenarios is bad)
- health:       every service answers /readyz 200 and no service process has exited
"""
from __future__ import annotations

import asyncio
import copy
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from contracts.topics import SERVICES, dead_letter_topic, events_topic
from runtime.db import _asyncpg_dsn
from tests.faults.load import Ledger

EXAMPLES = 5  # examples named per finding
CHECKS = ("unreadable", "answers", "intake", "screening", "notifier", "topics", "inboxes", "dead_letters", "health")
# What each service consumes (services/<name>/app.py), so that the checker needs no service imports.
CONSUMES = {"intake": (), "screening": ("intake", "exit_review"), "assistance": ("intake", "screening", "exit_review", "notifier"),
            "exit_review": ("intake", "screening", "assistance"), "notifier": ("intake", "screening", "assistance", "exit_review")}
PAYLOADS_KEPT = {"RiskClueRaised", "RiskCluesRaised", "VerificationCaseOpened", "ClueAttachedToCase",
                 "SubjectRiskAdded", "NotificationSent"}


@dataclass(frozen=True)
class Finding:
    check: str
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.message}"


@dataclass
class ServiceState:
    events: list[tuple[int, str, str]] = field(default_factory=list)  # (global_position, event_id, event_type)
    payloads: dict[str, dict] = field(default_factory=dict)  # event_id -> payload, for PAYLOADS_KEPT
    cursors: dict[str, int] = field(default_factory=dict)  # relay_cursor: topic -> position
    inbox: list[tuple[str, str]] = field(default_factory=list)  # (event_id, outcome)
    tables: dict[str, list[dict]] = field(default_factory=dict)


@dataclass
class TopicState:
    partitions: int
    event_ids: list[str] = field(default_factory=list)  # the event_id header of every record, in read order
    records: int = 0
    first_error: str | None = None  # a dead letter's dlq_error header


@dataclass
class Snapshot:
    services: dict[str, ServiceState] = field(default_factory=dict)
    topics: dict[str, TopicState] = field(default_factory=dict)  # only topics that exist
    readyz: dict[str, str] = field(default_factory=dict)  # service -> "200" or what came instead
    exited: dict[str, int] = field(default_factory=dict)  # service -> exit code of a process that ended
    errors: list[str] = field(default_factory=list)  # what could not be read
    topics_read: bool = False


@dataclass
class SystemView:
    """How to reach a running embedded system."""

    dsn: dict[str, str]  # service -> asyncpg DSN
    bootstrap: str
    prefix: str
    partitions: int
    ports: dict[str, int]
    processes: dict  # service -> subprocess.Popen (the current one; the harness replaces a restarted one)

    @classmethod
    def of(cls, system, partitions: int = 6) -> "SystemView":
        return cls(dsn={s: _asyncpg_dsn(system.database_url(s)) for s in SERVICES}, bootstrap=system.broker.bootstrap,
                   prefix=system.namespace, partitions=partitions, ports=dict(system.ports), processes=system.processes)


# ------------------------------------------------------------------------------------------------
# collect
# ------------------------------------------------------------------------------------------------

_TABLES = {
    "intake": {
        "warnings": "select department, source_record_id, status, clue_id, household_id from warnings",
        "clues": "select clue_id, household_id, source->>'department' as department,"
                 " source->>'source_record_id' as source_record_id from clues",
    },
    "screening": {"cases": "select case_id, household_id, region_code, status, clue_ids from cases"},
    "notifier": {
        "staff": "select staff_id, role, region_code from staff",
        "notifications": "select notification_id, staff_id, kind, reference from notifications",
    },
}


async def _read_service(service: str, dsn: str) -> ServiceState:
    conn = await asyncio.wait_for(asyncpg.connect(dsn), 10)
    try:
        state = ServiceState()
        async with conn.transaction(isolation="repeatable_read", readonly=True):  # one snapshot of the store
            for position, event_id, event_type, payload in await conn.fetch(
                    "select global_position, event_id::text, event_type,"
                    " case when event_type = any($1::text[]) then payload::text end"
                    " from events order by global_position", list(PAYLOADS_KEPT)):
                state.events.append((position, event_id, event_type))
                if payload is not None:
                    state.payloads[event_id] = orjson.loads(payload)
            state.cursors = {r["topic"]: r["position"] for r in await conn.fetch("select topic, position from relay_cursor")}
            state.inbox = [(r["event_id"], r["outcome"]) for r in
                           await conn.fetch("select event_id::text, outcome from inbox")]
            for name, sql in _TABLES.get(service, {}).items():
                state.tables[name] = [dict(r) for r in await conn.fetch(sql)]
        return state
    finally:
        await conn.close()


async def _read_topics(bootstrap: str, names: list[str]) -> dict[str, TopicState]:
    """Every record of the topics that exist, from the earliest offset. Only topics the broker lists
    are read (a metadata request that names a missing topic would have Tansu create it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        described = await admin.describe_topics()  # no names: all topics, creates nothing
    finally:
        await admin.close()
    partitions = {t["topic"]: sorted(p["partition"] for p in t["partitions"])
                  for t in described if t["error_code"] == 0 and t["topic"] in names}
    topics = {name: TopicState(len(ps)) for name, ps in partitions.items()}
    tps = [TopicPartition(name, p) for name, ps in partitions.items() for p in ps]
    if not tps:
        return topics
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                request_timeout_ms=10000, fetch_max_bytes=16 * 1024 * 1024)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        # Read each partition up to the high watermark its fetch responses give. (Not end_offsets():
        # Tansu's ListOffsets answers far less than the records it holds and then serves.)
        pending = set(tps)
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=10000)
            for tp, records in batch.items():
                topic = topics[tp.topic]
                for record in records:
                    headers = dict(record.headers or ())
                    topic.records += 1
                    topic.event_ids.append(headers.get("event_id", b"").decode())
                    if topic.first_error is None and "dlq_error" in headers:
                        topic.first_error = headers["dlq_error"].decode(errors="replace")[:300]
            for tp in list(pending):
                highwater = consumer.highwater(tp)
                if highwater is not None and await consumer.position(tp) >= highwater:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    return topics


async def _readyz(port: int) -> str:
    try:
        async with httpx.AsyncClient(timeout=3) as http:
            r = await http.get(f"http://127.0.0.1:{port}/readyz")
        return str(r.status_code) if r.status_code == 200 else f"{r.status_code} {r.text[:200]}"
    except httpx.HTTPError as exc:
        return type(exc).__name__


async def collect(view: SystemView, timeout: float = 30) -> Snapshot:
    snapshot = Snapshot()

    async def service(name: str) -> None:
        try:
            snapshot.services[name] = await asyncio.wait_for(_read_service(name, view.dsn[name]), timeout)
        except Exception as exc:
            snapshot.errors.append(f"{name}'s database: {type(exc).__name__}: {exc}"[:300])

    async def topics() -> None:
        names = [events_topic(s, view.prefix) for s in SERVICES]
        try:
            snapshot.topics = await asyncio.wait_for(_read_topics(view.bootstrap, names + [dead_letter_topic(t) for t in names]),
                                                     timeout)
            snapshot.topics_read = True
        except Exception as exc:
            snapshot.errors.append(f"the broker's topics: {type(exc).__name__}: {exc}"[:300])

    async def health(name: str) -> None:
        snapshot.readyz[name] = await _readyz(view.ports[name])

    await asyncio.gather(*(service(s) for s in SERVICES), topics(), *(health(s) for s in view.processes))
    for name, process in view.processes.items():
        if process.poll() is not None:
            snapshot.exited[name] = process.returncode
    return snapshot


# ------------------------------------------------------------------------------------------------
# evaluate
# ------------------------------------------------------------------------------------------------

def _some(items: Iterable, n: int = EXAMPLES) -> str:
    items = list(items)
    shown = ", ".join(str(i) for i in items[:n])
    return shown + (f", … ({len(items)} in all)" if len(items) > n else "")


def told_accepted(ledger: Ledger) -> tuple[dict[str, tuple[str, str | None]], dict[str, str], list[Finding]]:
    """(source_record_id -> (household, the clue id the client was told, if any)) for the warnings
    whose client was told they are stored; (source_record_id -> household) of those never answered;
    and the findings about the answers themselves."""
    accepted: dict[str, tuple[str, str | None]] = {}
    unknown: dict[str, str] = {}
    findings: list[Finding] = []
    unanswered, wrong = [], []
    for srid, single in ledger.singles.items():
        told = single.told
        if not told.answered:
            unknown[srid] = single.household_id
            unanswered.append(f"{srid} (key {told.key}, {len(told.attempts)} attempts, last {told.attempts[-1:]})")
            continue
        body = told.body or {}
        if (told.status, body.get("outcome")) in ((201, "accepted"), (200, "duplicate")) and body.get("clue_id"):
            if body.get("household_id") != single.household_id:
                wrong.append(f"{srid} told household {body.get('household_id')}, sent for {single.household_id}")
            accepted[srid] = (single.household_id, body["clue_id"])
        else:
            wrong.append(f"{srid} told {told.status} {orjson.dumps(body).decode()[:200]}")
    if unanswered:
        findings.append(Finding("answers", f"{len(unanswered)} single warnings never got an answer: {_some(unanswered)}"))
    if wrong:
        findings.append(Finding("answers", f"{len(wrong)} single warnings were not told they are stored: {_some(wrong)}"))
    for i, batch in enumerate(ledger.batches):
        told = batch.told
        if not told.answered:
            unknown.update(dict(batch.rows))
            findings.append(Finding("answers", f"batch {i} ({len(batch.rows)} rows, key {told.key}) never got an answer "
                                               f"after {len(told.attempts)} attempts: {_some(told.attempts[-EXAMPLES:])}"))
            continue
        body = told.body or {}
        counts = {k: body.get(k) for k in ("rows", "accepted", "duplicate", "unmatched", "invalid")}
        if told.status != 200 or counts["rows"] != len(batch.rows) or counts["unmatched"] or counts["invalid"] \
                or (counts["accepted"] or 0) + (counts["duplicate"] or 0) != len(batch.rows):
            unknown.update(dict(batch.rows))
            findings.append(Finding("answers", f"batch {i} ({len(batch.rows)} rows) was told {told.status} {counts}, "
                                               f"not every row accepted or duplicate"))
            continue
        for srid, household in batch.rows:
            accepted[srid] = (household, None)
    return accepted, unknown, findings


def _clues_of_events(state: ServiceState) -> Counter:
    """clue id -> how many intake events carry it."""
    carried: Counter = Counter()
    for _, event_id, event_type in state.events:
        payload = state.payloads.get(event_id)
        if event_type == "RiskClueRaised":
            carried[payload["clue_id"]] += 1
        elif event_type == "RiskCluesRaised":
            carried.update(clue["clue_id"] for clue in payload["clues"])
    return carried


def check_intake(intake: ServiceState, ledger: Ledger, accepted: dict) -> list[Finding]:
    findings = []
    warnings = {(w["department"], w["source_record_id"]): w for w in intake.tables["warnings"]}
    clues = {c["clue_id"]: c for c in intake.tables["clues"]}
    clues_by_source: dict[tuple, list[dict]] = defaultdict(list)
    for clue in clues.values():
        clues_by_source[(clue["department"], clue["source_record_id"])].append(clue)
    carried = _clues_of_events(intake)
    dept = ledger.department
    no_warning, not_matched, other_clue, clue_count, wrong_household = [], [], [], [], []
    for srid, (household, told_clue) in sorted(accepted.items()):
        row = warnings.get((dept, srid))
        if row is None:
            no_warning.append(srid)
            continue
        if row["status"] != "accepted" or not row["clue_id"]:
            not_matched.append(f"{srid} (status {row['status']}, clue {row['clue_id']})")
        if told_clue and row["clue_id"] != told_clue:
            other_clue.append(f"{srid} told clue {told_clue}, stored {row['clue_id']}")
        found = clues_by_source.get((dept, srid), [])
        if len(found) != 1:
            clue_count.append(f"{srid}: {len(found)} clues {[c['clue_id'] for c in found]}")
        elif row["clue_id"] and found[0]["clue_id"] != row["clue_id"]:
            other_clue.append(f"{srid}: warning names clue {row['clue_id']}, the clue row is {found[0]['clue_id']}")
        if found and any(c["household_id"] != household for c in found):
            wrong_household.append(f"{srid}: clue of {[c['household_id'] for c in found]}, sent for {household}")
    if no_warning:
        findings.append(Finding("intake", f"{len(no_warning)} warnings told accepted have no row in intake's warnings: "
                                          f"{_some(no_warning)}"))
    for what, items in (("are not stored as accepted with a clue", not_matched),
                        ("do not carry the clue id the client was told", other_clue),
                        ("are not exactly one clue row", clue_count), ("have a clue of another household", wrong_household)):
        if items:
            findings.append(Finding("intake", f"{len(items)} warnings told accepted {what}: {_some(items)}"))
    doubled = [f"{dept_}/{srid} ({len(found)} clues)" for (dept_, srid), found in clues_by_source.items() if len(found) > 1
               and srid not in accepted]
    if doubled:
        findings.append(Finding("intake", f"{len(doubled)} warnings have more than one clue: {_some(sorted(doubled))}"))
    not_once = [f"{clue_id} in {carried[clue_id]} events" for clue_id in sorted(clues) if carried[clue_id] != 1]
    if not_once:
        findings.append(Finding("intake", f"{len(not_once)} clue rows are not carried by exactly one intake event: "
                                          f"{_some(not_once)}"))
    phantom = sorted(set(carried) - set(clues))
    if phantom:
        findings.append(Finding("intake", f"{len(phantom)} clue ids in intake's events have no clue row: {_some(phantom)}"))
    return findings


def check_screening(intake: ServiceState, screening: ServiceState, accepted: dict) -> list[Finding]:
    findings = []
    cases = screening.tables["cases"]
    clue_household = {c["clue_id"]: c["household_id"] for c in intake.tables["clues"]}
    source_of = {c["clue_id"]: c["source_record_id"] for c in intake.tables["clues"]}
    in_cases: dict[str, list[str]] = defaultdict(list)  # clue id -> case ids, once per occurrence
    for case in cases:
        for clue_id in case["clue_ids"]:
            in_cases[clue_id].append(case["case_id"])
    case_by_id = {c["case_id"]: c for c in cases}
    taken: Counter = Counter()
    opened_events = set()
    for _, event_id, event_type in screening.events:
        if event_type in ("VerificationCaseOpened", "ClueAttachedToCase", "SubjectRiskAdded"):
            taken[screening.payloads[event_id]["clue_id"]] += 1
        if event_type == "VerificationCaseOpened":
            opened_events.add(screening.payloads[event_id]["case_id"])
    missing, doubled, wrong_household, not_taken_once = [], [], [], []
    missing_told = 0
    for clue_id in sorted(clue_household):
        label = f"{clue_id} ({source_of[clue_id]}{', told accepted' if source_of[clue_id] in accepted else ''})"
        found = in_cases.get(clue_id, [])
        if not found:
            missing.append(label)
            missing_told += source_of[clue_id] in accepted
        elif len(found) > 1:
            doubled.append(f"{label} in {found}")
        elif case_by_id[found[0]]["household_id"] != clue_household[clue_id]:
            wrong_household.append(f"{label} in case {found[0]} of {case_by_id[found[0]]['household_id']}")
        if taken[clue_id] != 1 and found:
            not_taken_once.append(f"{label} taken by {taken[clue_id]} screening events")
    if missing:
        findings.append(Finding("screening", f"{len(missing)} clues of intake ({missing_told} of them told accepted) are in no case: "
                                             f"{_some(missing)}"))
    if doubled:
        findings.append(Finding("screening", f"{len(doubled)} clues are in a case more than once or in two cases: "
                                             f"{_some(doubled)}"))
    if wrong_household:
        findings.append(Finding("screening", f"{len(wrong_household)} clues are in another household's case: "
                                             f"{_some(wrong_household)}"))
    if not_taken_once:
        findings.append(Finding("screening", f"{len(not_taken_once)} clues are not taken by exactly one screening event: "
                                             f"{_some(not_taken_once)}"))
    phantom = sorted(set(in_cases) - set(clue_household))
    if phantom:
        findings.append(Finding("screening", f"{len(phantom)} clue ids in cases are not clues of intake: {_some(phantom)}"))
    open_per_household = Counter(c["household_id"] for c in cases if c["status"] == "open")
    two_open = [f"{h} ({n} open cases)" for h, n in sorted(open_per_household.items()) if n > 1]
    if two_open:
        findings.append(Finding("screening", f"{len(two_open)} households have more than one open case: {_some(two_open)}"))
    rows = set(case_by_id)
    differences = [f"{what}: {_some(items)}" for what, items in (
        ("rows without event", sorted(rows - opened_events)), ("events without row", sorted(opened_events - rows))) if items]
    if differences:
        findings.append(Finding("screening", "case rows and VerificationCaseOpened events differ: " + "; ".join(differences)))
    return findings


def check_notifier(screening: ServiceState, notifier: ServiceState) -> list[Finding]:
    findings = []
    cadres: dict[str, list[str]] = defaultdict(list)
    for member in notifier.tables["staff"]:
        if member["role"] == "village_cadre":
            cadres[member["region_code"]].append(member["staff_id"])
    tasks = Counter((n["staff_id"], n["reference"]) for n in notifier.tables["notifications"]
                    if n["kind"] == "verify_household")  # a case's later steps, reminders and escalations are others
    missing, doubled, no_cadre = [], [], set()
    expected = set()
    for case in sorted(screening.tables["cases"], key=lambda c: c["case_id"]):
        reference = f"case:{case['case_id']}"
        if not cadres.get(case["region_code"]):
            no_cadre.add(case["region_code"])
        for staff_id in cadres.get(case["region_code"], []):
            expected.add((staff_id, reference))
            count = tasks.get((staff_id, reference), 0)
            if count == 0:
                missing.append(f"{reference} for {staff_id} (household {case['household_id']})")
            elif count > 1:
                doubled.append(f"{reference} for {staff_id}: {count} tasks")
    if no_cadre:
        findings.append(Finding("notifier", f"no village cadre is registered for the villages {sorted(no_cadre)} "
                                            f"(the load registers one per village)"))
    if missing:
        findings.append(Finding("notifier", f"{len(missing)} cases have no task for a village cadre: {_some(missing)}"))
    if doubled:
        findings.append(Finding("notifier", f"{len(doubled)} tasks are doubled: {_some(doubled)}"))
    stray = sorted(f"{ref} for {staff}" for staff, ref in set(tasks) - expected)
    if stray:
        findings.append(Finding("notifier", f"{len(stray)} tasks are for no case of screening (or not a cadre of "
                                            f"its village): {_some(stray)}"))
    rows = {n["notification_id"] for n in notifier.tables["notifications"]}
    sent = Counter(notifier.payloads[e]["notification_id"] for _, e, t in notifier.events if t == "NotificationSent")
    differences = [f"{what}: {_some(items)}" for what, items in (
        ("rows without event", sorted(rows - set(sent))), ("events without row", sorted(set(sent) - rows)),
        ("events doubled", sorted(k for k, n in sent.items() if n > 1))) if items]
    if differences:
        findings.append(Finding("notifier", "notification rows and NotificationSent events differ: " + "; ".join(differences)))
    return findings


def check_topics(snapshot: Snapshot, prefix: str, partitions: int) -> list[Finding]:
    findings = []
    for service, state in snapshot.services.items():
        name = events_topic(service, prefix)
        # Every service's topic and its dead-letter topic, whether or not anything consumes it yet.
        for topic in (name, dead_letter_topic(name)):
            if topic not in snapshot.topics:
                findings.append(Finding("topics", f"topic {topic} does not exist on the broker"))
            elif snapshot.topics[topic].partitions != partitions:
                findings.append(Finding("topics", f"topic {topic} has {snapshot.topics[topic].partitions} partitions, "
                                                  f"not {partitions}"))
        last = state.events[-1][0] if state.events else 0
        cursor = state.cursors.get(name, 0)
        if cursor != last:
            findings.append(Finding("topics", f"{service}'s relay cursor is at {cursor}, the store's last position is {last}"))
        if name not in snapshot.topics:
            if state.events:
                findings.append(Finding("topics", f"none of {service}'s {len(state.events)} events is on {name}"))
            continue
        on_topic = set(snapshot.topics[name].event_ids)
        stored = {event_id for _, event_id, _ in state.events}
        missing = [f"{position} {event_type} {event_id}" for position, event_id, event_type in state.events
                   if event_id not in on_topic]
        if missing:
            findings.append(Finding("topics", f"{len(missing)} of {service}'s {len(state.events)} events are not on {name} "
                                              f"(position, type, id): {_some(missing)}"))
        phantom = sorted(on_topic - stored)
        if phantom:
            findings.append(Finding("topics", f"{len(phantom)} records on {name} are no event of {service}'s store: "
                                              f"{_some(phantom)}"))
    return findings


def check_inboxes(snapshot: Snapshot) -> list[Finding]:
    findings = []
    for consumer, producers in CONSUMES.items():
        if not producers or consumer not in snapshot.services:
            continue
        inbox = snapshot.services[consumer].inbox
        held = {event_id for event_id, _ in inbox}
        twice = sorted(event_id for event_id, n in Counter(event_id for event_id, _ in inbox).items() if n > 1)
        if twice:  # the primary key forbids it; a changed table would not
            findings.append(Finding("inboxes", f"{consumer}'s inbox holds {len(twice)} events twice: {_some(twice)}"))
        readable = set()
        for producer in producers:
            if producer not in snapshot.services:
                continue
            events = snapshot.services[producer].events
            readable |= {event_id for _, event_id, _ in events}
            missing = [f"{position} {event_type} {event_id}" for position, event_id, event_type in events
                       if event_id not in held]
            if missing:
                findings.append(Finding("inboxes", f"{consumer} has not applied {len(missing)} of {producer}'s "
                                                   f"{len(events)} events (position, type, id): {_some(missing)}"))
        dead = [event_id for event_id, outcome in inbox if outcome == "dead_lettered"]
        if dead:
            findings.append(Finding("inboxes", f"{consumer}'s inbox has {len(dead)} dead-lettered events: {_some(dead)}"))
        if all(p in snapshot.services for p in producers):
            stray = sorted(held - readable)
            if stray:
                findings.append(Finding("inboxes", f"{consumer}'s inbox has {len(stray)} events of no store it consumes: "
                                                   f"{_some(stray)}"))
    return findings


def check_dead_letters(snapshot: Snapshot, prefix: str) -> list[Finding]:
    findings = []
    for service in SERVICES:
        topic = dead_letter_topic(events_topic(service, prefix))
        state = snapshot.topics.get(topic)
        if state is not None and state.records:
            findings.append(Finding("dead_letters", f"{topic} holds {state.records} messages (first error: "
                                                    f"{state.first_error}); ids {_some(state.event_ids)}"))
    return findings


def check_health(snapshot: Snapshot) -> list[Finding]:
    findings = [Finding("health", f"{service} has exited (code {code})") for service, code in sorted(snapshot.exited.items())]
    findings += [Finding("health", f"{service} /readyz answered {answer}")
                 for service, answer in sorted(snapshot.readyz.items()) if answer != "200"]
    return findings


def evaluate(snapshot: Snapshot, ledger: Ledger, prefix: str, partitions: int) -> list[Finding]:
    findings = [Finding("unreadable", error) for error in snapshot.errors]
    accepted, _, answers = told_accepted(ledger)
    findings += answers
    s = snapshot.services
    if "intake" in s:
        findings += check_intake(s["intake"], ledger, accepted)
        if "screening" in s:
            findings += check_screening(s["intake"], s["screening"], accepted)
    if "screening" in s and "notifier" in s:
        findings += check_notifier(s["screening"], s["notifier"])
    if snapshot.topics_read:
        findings += check_topics(snapshot, prefix, partitions)
        findings += check_dead_letters(snapshot, prefix)
    findings += check_inboxes(snapshot)
    findings += check_health(snapshot)
    return findings


def report(findings: list[Finding]) -> str:
    return "\n".join(str(f) for f in sorted(findings, key=lambda f: CHECKS.index(f.check)))


def stats(snapshot: Snapshot, ledger: Ledger, prefix: str) -> str:
    """What the run amounted to, for the printed summary."""
    accepted, unknown, _ = told_accepted(ledger)
    parts = [f"warnings told stored: {len(accepted)} ({len(ledger.singles)} singles, "
             f"{sum(len(b.rows) for b in ledger.batches)} batch rows), unanswered {len(unknown)}",
             f"retries: {sum(len(w.told.attempts) - 1 for w in ledger.singles.values())} single, "
             f"{sum(len(b.told.attempts) - 1 for b in ledger.batches)} batch"]
    for service, state in snapshot.services.items():
        topic = snapshot.topics.get(events_topic(service, prefix))
        doubled = (topic.records - len(set(topic.event_ids))) if topic else 0
        parts.append(f"{service}: {len(state.events)} events, {topic.records if topic else 0} records on topic "
                     f"({doubled} repeats)")
    if "screening" in snapshot.services:
        parts.append(f"cases: {len(snapshot.services['screening'].tables.get('cases', []))}")
    if "notifier" in snapshot.services:
        parts.append(f"tasks: {len(snapshot.services['notifier'].tables.get('notifications', []))}")
    return "; ".join(parts)


@dataclass
class Healing:
    healed_after: float | None  # seconds from `since` until every check passed (and still did SETTLE later)
    findings: list[Finding]
    snapshot: Snapshot
    polls: int
    course: list[str] = field(default_factory=list)  # "+12.3s inboxes, topics": the failing checks, at each change


async def wait_until_healed(view: SystemView, ledger: Ledger, since: float, deadline: float, interval: float = 2.0,
                            settle: float = 5.0) -> Healing:
    """Poll the checks until none finds anything, and none again `settle` seconds later; or until
    `deadline` (time.monotonic()), returning the last findings."""
    first_clean: float | None = None
    polls = 0
    course: list[str] = []
    failing: list[str] | None = None
    while True:
        polls += 1
        started = time.monotonic()
        # What clients had been told before the stores are read: an answer that arrives while they are
        # read may be about a row committed after the read, and is checked at the next poll.
        told = copy.deepcopy(ledger)
        snapshot = await collect(view)
        findings = evaluate(snapshot, told, view.prefix, view.partitions)
        now_failing = sorted({f.check for f in findings}, key=CHECKS.index)
        if now_failing != failing:
            new = [next(f for f in findings if f.check == check) for check in now_failing if check not in (failing or [])]
            failing = now_failing
            course.append(f"{started - since:+.1f}s {', '.join(failing) or 'clean'}"
                          + "".join(f"\n        new: {str(f)[:240]}" for f in new))
        if not findings:
            if first_clean is None:
                first_clean = started
            elif started - first_clean >= settle:
                return Healing(first_clean - since, [], snapshot, polls, course)
        else:
            first_clean = None
        now = time.monotonic()
        if now >= deadline and first_clean is None:  # a clean poll may still settle past the deadline
            return Healing(None, findings, snapshot, polls, course)
        await asyncio.sleep(settle / 2 if first_clean is not None else min(interval, max(0.0, deadline - now)))
