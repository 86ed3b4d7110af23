"""A query a partial index serves keeps the index under the generic plan PostgreSQL caches for a
prepared statement (runtime.db.predicate). The driver prepares every statement once per connection;
after a few calls PostgreSQL may plan it once for any parameters, and with the index's predicate as a
parameter (`status = $2`) that plan cannot use a partial index `WHERE status = 'open'`: it scanned
the whole table at every call (2.5 s a call at 100,000 cases, on the batch path). Each query is
captured as the driver is handed it and explained as that generic plan (EXPLAIN (GENERIC_PLAN))."""
import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.integration


async def generic_plan(ctx, run_query) -> str:
    """The generic plan PostgreSQL would cache for the one SELECT `run_query(session)` sends."""
    sent: list[tuple[str, tuple]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, tuple(parameters or ())))

    sa.event.listen(ctx.engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with ctx.sessions() as session, session.begin():
            await run_query(session)
    finally:
        sa.event.remove(ctx.engine.sync_engine, "before_cursor_execute", capture)
    [(statement, parameters)] = [(s, p) for s, p in sent if s.lstrip().upper().startswith("SELECT")]
    async with ctx.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        await raw.execute("SET plan_cache_mode = force_generic_plan")
        await raw.execute(f"PREPARE the_query AS {statement}")
        try:
            arguments = ", ".join(map(_literal, parameters))
            rows = await raw.fetch(f"EXPLAIN EXECUTE the_query({arguments})" if parameters else "EXPLAIN EXECUTE the_query")
        finally:
            await raw.execute("DEALLOCATE the_query; RESET plan_cache_mode")
        return "\n".join(r[0] for r in rows)


def _literal(value) -> str:
    if isinstance(value, (list, tuple)):
        return "ARRAY[" + ", ".join(map(_literal, value)) + "]"
    return "'" + str(value).replace("'", "''") + "'"


async def migrated(service_context, service: str, fill: str):
    ctx = await service_context(service)
    async with ctx.engine.begin() as conn:  # enough rows that an index beats a scan
        await conn.execute(sa.text(fill))
        await conn.execute(sa.text("analyze"))
    return ctx


async def test_screening_finds_the_open_cases_of_a_run_through_its_partial_index(service_context):
    from services.screening import store

    ctx = await migrated(service_context, "screening", """
        insert into cases (case_id, household_id, region_code, status, step, due_date, risk_types, clue_ids, opened_at, updated_at)
        select 'c' || g, 'H' || g, '410721001001', case when g % 10 = 0 then 'closed' else 'open' end,
               'verification_visit', current_date, '{}', '{}', now(), now() from generate_series(1, 20000) g""")
    plan = await generic_plan(ctx, lambda session: store.open_cases_of(session, ["H1", "H2"]))
    assert "cases_one_open_per_household" in plan, plan
    assert "Seq Scan" not in plan, plan


async def test_the_notifier_finds_the_open_tasks_of_references_through_its_partial_index(service_context):
    from services.notifier import store

    ctx = await migrated(service_context, "notifier", """
        insert into tasks (task_id, kind, reference, region_code, level, role, state, schedule_at, opened_at)
        select 't' || g, 'verify_household', 'case:' || g, '410721001001', 'village', 'village_cadre',
               case when g % 10 = 0 then 'completed' else 'open' end, '{}', now() from generate_series(1, 20000) g""")
    plan = await generic_plan(ctx, lambda session: store.open_tasks_of(session, ["case:1", "case:2"]))
    assert "tasks_reference" in plan, plan
    assert "Seq Scan" not in plan, plan

