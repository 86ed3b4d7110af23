"""End-to-end ingest benchmark: department warnings posted to intake until screening has opened a
verification case for every one of them.

    .venv/bin/python bench/ingest.py                 # 20,000 warnings on a fresh embedded system
    .venv/bin/python bench/ingest.py --warnings 2000
    .venv/bin/python bench/ingest.py --batch         # 1,000,000 warnings through POST /v1/warnings:batch
    .venv/bin/python bench/ingest.py --batch --workers 2 --requests 40 --in-flight 8   # two intake processes

It starts its own embedded system (PostgreSQL, Tansu, five service processes) in a temporary folder
on free ports, registers one household per warning (not timed), then times the warnings.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("FANGPIN_ENVIRONMENT", "development")  # a throwaway system on the development keys
from contracts.topics import SERVICES  # noqa: E402
from runtime.auth import issue_token  # noqa: E402
from runtime.embedded import EmbeddedSystem, free_port  # noqa: E402
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

    quantiles = statistics.quantiles(latencies, n=100)
    print(f"cores: {os.cpu_count()}")
    print(f"warnings accepted over HTTP: {accepted / posted:.1f}/s ({posted:.1f}s), "
          f"latency p50 {quantiles[49] * 1000:.0f} ms, p95 {quantiles[94] * 1000:.0f} ms")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warnings", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batch", action="store_true", help="bulk mode: NDJSON through POST /v1/warnings:batch")
    parser.add_argument("--rows", type=int, default=1_000_000, help="batch mode: warnings to send")
    parser.add_argument("--households", type=int, default=50_000, help="batch mode: registered households the rows point to")
    parser.add_argument("--requests", type=int, default=1,
                        help="batch mode: split the rows over this many requests, sent side by side")
    parser.add_argument("--in-flight", type=int, default=None,
                        help="batch mode: at most this many of the requests at a time (default: all of them)")
    parser.add_argument("--workers", type=int, default=1, help="batch mode: intake processes (FANGPIN_WORKERS)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder (logs) afterwards")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="fangpin-bench-"))
    os.environ["FANGPIN_WORKERS"] = str(args.workers)  # read by the services the embedded system starts
    # Batch mode measures intake alone (its store and relay); the slice mode needs screening too.
    system = EmbeddedSystem(data_dir, kafka_port=free_port(), ports={s: free_port() for s in SERVICES},
                            services=("intake",) if args.batch else SERVICES)
    try:
        system.start(say=lambda line: print(line, flush=True))
        if args.batch:
            asyncio.run(bench_batch(system, args.rows, args.households, args.requests, args.in_flight or args.requests))
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


if __name__ == "__main__":
    main()
