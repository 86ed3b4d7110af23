"""End-to-end ingest benchmark: department warnings posted to intake until screening has opened a
verification case for every one of them.

    .venv/bin/python bench/ingest.py                 # 20,000 warnings on a fresh embedded system
    .venv/bin/python bench/ingest.py --warnings 2000

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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warnings", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder (logs) afterwards")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="fangpin-bench-"))
    system = EmbeddedSystem(data_dir, kafka_port=free_port(), ports={s: free_port() for s in SERVICES})
    try:
        system.start(say=lambda line: print(line, flush=True))
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
