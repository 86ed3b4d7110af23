"""A ceiling, not the product: what PostgreSQL alone costs if the batch-warning path were done
set-based inside it (COPY the raw NDJSON lines into a staging table; parse, HMAC, match, claim,
insert clue and event rows in one SQL statement per 10,000 lines). No Python per row, no relay,
no broker; the event hash here covers the payload only. It prints rows/s and PostgreSQL's CPU per
1,000 rows, to weigh that design against the 100 ms per 1,000 rows that 20,000 rows/s allows on
2 cores.

    .venv/bin/python bench/sql_path_ceiling.py [ROWS]      # default 1,000,000
"""
import asyncio
import hashlib
import hmac
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import asyncpg  # noqa: E402
import orjson  # noqa: E402
import psutil  # noqa: E402

from ingest import head_id_number  # noqa: E402
from runtime.embedded import EmbeddedPostgres  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
H = 50_000
KEY = bytes.fromhex("6b" * 32)
d = Path(tempfile.mkdtemp(prefix="pgx-"))
pg = EmbeddedPostgres(d / "pg")
def pg_cpu():
    return sum(p.cpu_times().user + p.cpu_times().system for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres")
async def main():
    c = await asyncpg.connect(pg.url("postgres").replace("postgresql+asyncpg", "postgresql"))
    await c.execute("""
      create table members (id_hash text primary key, household_id text not null, region_code text not null);
      create table warnings (department text, source_record_id text, warning_id uuid, status text, household_id text,
        id_hash text, clue_id uuid, indicator text, amount numeric(14,2), observed_at timestamptz, detail text,
        received_at timestamptz, primary key (department, source_record_id));
      create table clues (clue_id uuid primary key, household_id text, region_code text, channel text, source jsonb,
        indicator text, risk_types text[], priority_groups text[], status text, raised_at timestamptz);
      create index on clues (region_code);
      create table events (global_position bigint generated always as identity primary key, event_id uuid unique,
        event_type text, schema_version int, stream_id text, stream_position int, household_id text, region_code text,
        occurred_at timestamptz, recorded_at timestamptz, producer text, actor jsonb, correlation_id uuid,
        causation_id uuid, traceparent text, prev_hash text, hash text, payload jsonb,
        txid bigint default (pg_current_xact_id()::text)::bigint, unique (stream_id, stream_position));
      create index on events (household_id);
      create unlogged table staging (line int, body text);
    """)
    def mac(value: str) -> str:
        return hmac.new(KEY, value.encode(), hashlib.sha256).hexdigest()
    await c.copy_records_to_table("members", records=[(mac(head_id_number(i)), f"B{i:07d}", "410721100001") for i in range(H)])
    ipad = bytes(b ^ 0x36 for b in KEY.ljust(64, b"\0")); opad = bytes(b ^ 0x5c for b in KEY.ljust(64, b"\0"))
    lines = [(i + 1, orjson.dumps({"department": "civil_affairs", "source_record_id": f"MCA-{i}", "id_number": head_id_number(i % H),
              "indicator": "new_dibao", "observed_at": "2026-11-01T08:00:00+08:00"}).decode()) for i in range(N)]
    # HMAC-SHA256 from the built-in sha256() (no pgcrypto in the embedded server): same value as Python's
    got = await c.fetchval("select encode(sha256($2::bytea || sha256($1::bytea || convert_to($3, 'UTF8'))), 'hex')", ipad, opad, head_id_number(1))
    assert got == mac(head_id_number(1)), (got, mac(head_id_number(1)))
    cpu0, t0 = pg_cpu(), time.perf_counter()
    CH = 10_000
    for start in range(0, N, CH):
        async with c.transaction():
            await c.execute("truncate staging")
            await c.copy_records_to_table("staging", records=lines[start:start + CH])
            await c.execute("""
            with parsed as (
              select line, b->>'department' dep, b->>'source_record_id' src, upper(trim(b->>'id_number')) idn,
                     b->>'indicator' ind, (b->>'observed_at')::timestamptz obs
              from staging, lateral (select body::jsonb b) j),
            matched as (
              select p.*, encode(sha256($2::bytea || sha256($1::bytea || convert_to(p.idn, 'UTF8'))), 'hex') h from parsed p),
            claimed as (
              insert into warnings select m.dep, m.src, gen_random_uuid(), 'accepted', mem.household_id, m.h, uuidv7(), m.ind, null, m.obs, null, now()
              from matched m join members mem on mem.id_hash = m.h
              on conflict do nothing returning *),
            cl as (
              insert into clues select c.clue_id, c.household_id, '410721100001', 'department_warning',
                jsonb_build_object('department', c.department, 'source_record_id', c.source_record_id), c.indicator,
                array['income_drop'], array['new_allowance_or_extreme_poverty'], 'open', now() from claimed c returning clue_id)
            insert into events (event_id, event_type, schema_version, stream_id, stream_position, household_id, region_code,
              occurred_at, recorded_at, producer, actor, correlation_id, causation_id, traceparent, prev_hash, hash, payload)
            select uuidv7(), 'RiskClueRaised', 1, 'clue-' || c.clue_id, 1, c.household_id, '410721100001', c.observed_at, now(),
              'intake', '{"kind":"system","id":"bench"}'::jsonb, gen_random_uuid(), null, null, 'genesis',
              encode(sha256(convert_to(pl::text, 'UTF8')), 'hex'), pl
            from claimed c, lateral (select jsonb_build_object('clue_id', c.clue_id, 'household_id', c.household_id,
              'channel', 'department_warning', 'source', jsonb_build_object('department', c.department, 'source_record_id', c.source_record_id),
              'indicator', c.indicator, 'observed_at', c.observed_at, 'risk_types', array['income_drop'],
              'priority_groups', array['new_allowance_or_extreme_poverty']) pl) x
            """, ipad, opad)
    t1 = time.perf_counter(); cpu1 = pg_cpu()
    n = await c.fetchval("select count(*) from events")
    print(f"rows {N}: events {n}; {N / (t1 - t0):,.0f} rows/s; PostgreSQL CPU per 1,000 rows {(cpu1 - cpu0) * 1e6 / N:.0f} ms")
    await c.close()
try:
    asyncio.run(main())
finally:
    pg.stop()
    shutil.rmtree(d, ignore_errors=True)
