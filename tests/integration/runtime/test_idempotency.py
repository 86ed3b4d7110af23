"""Idempotency-Key under faults: a claim whose process died or that is too old is released, a live
one is not; keys belong to the whole principal; the liveness test on pg_locks itself."""
import asyncio
import hashlib
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import orjson
import pytest
import sqlalchemy as sa

from runtime.auth import decode_token
from runtime.idempotency import claim, principal_scope
from runtime.liveness import ProcessLease, dead_owner_condition, new_lease_key
from runtime.tables import idempotency_keys
from tests.conftest import eventually
from tests.factories import household, id_number, warning

pytestmark = pytest.mark.integration
TIMEOUT = timedelta(seconds=300)
MCA = dict(role="department_system", kind="system", department="civil_affairs", sub="mca")


async def post(client, path: str, headers: dict, body: dict, key: str):
    """POST exactly these bytes, so that a test can compute the request's hash."""
    return await client.post(path, content=orjson.dumps(body),
                             headers={**headers, "Content-Type": "application/json", "Idempotency-Key": key})


async def leave_in_progress(system, headers: dict, key: str, path: str, body: dict, owner: int | None,
                            age_seconds: float = 0) -> None:
    """The row a request leaves while it runs (or when its process is killed mid-request)."""
    principal = scope_of(system, headers)
    request_hash = hashlib.sha256(path.encode() + b"?\n" + orjson.dumps(body)).hexdigest()
    async with system.context("intake").sessions() as session, session.begin():
        await session.execute(sa.insert(idempotency_keys).values(
            principal=principal, key=key, request_hash=request_hash, owner=owner,
            created_at=sa.func.now() - timedelta(seconds=age_seconds)))


def scope_of(system, headers: dict) -> str:
    return principal_scope(decode_token(system.context("intake").settings, headers["Authorization"].split()[1]))


async def count(system, sql: str) -> int:
    async with system.context("intake").sessions() as session:
        return await session.scalar(sa.text(sql))


async def is_dead(engine, owner) -> bool:
    async with engine.connect() as conn:
        return await conn.scalar(sa.select(dead_owner_condition(sa.literal(owner, sa.BigInteger))))


async def registered(system, n: int = 1) -> None:
    county = system.token("county_officer", "410721")
    r = await system.clients["intake"].post("/v1/households", headers=county, json=household(f"I{n}", n))
    assert r.status_code == 201


async def test_a_claim_owned_by_a_live_process_answers_409_until_that_process_dies(run_services):
    async with run_services("intake") as system:
        await registered(system)
        intake, mca, body = system.clients["intake"], system.token(**MCA), warning("IK-1", id_number(1))
        other_process = ProcessLease(system.context("intake").engine)
        await other_process.start()
        try:
            await leave_in_progress(system, mca, "k-live", "/v1/warnings", body, owner=other_process.key)
            busy = await post(intake, "/v1/warnings", mca, body, "k-live")
            assert busy.status_code == 409 and busy.headers["idempotent-replayed"] == "true", busy.text
            assert await count(system, "select count(*) from warnings") == 0
        finally:
            await other_process.stop()

        async def released():
            r = await post(intake, "/v1/warnings", mca, body, "k-live")
            return r if r.status_code != 409 else None
        assert (await eventually(released, timeout=10)).status_code == 201


async def test_a_claim_left_by_a_killed_process_is_released_and_the_warning_stored_once(run_services):
    async with run_services("intake") as system:
        await registered(system)
        intake, mca, body = system.clients["intake"], system.token(**MCA), warning("IK-2", id_number(1))
        await leave_in_progress(system, mca, "k-dead", "/v1/warnings", body, owner=new_lease_key())  # nobody holds it

        first = await post(intake, "/v1/warnings", mca, body, "k-dead")
        assert first.status_code == 201 and "idempotent-replayed" not in first.headers, first.text
        again = await post(intake, "/v1/warnings", mca, body, "k-dead")
        assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
        assert await count(system, "select count(*) from warnings") == 1
        assert await count(system, "select count(*) from clues") == 1
        assert await count(system, "select count(*) from events where event_type = 'RiskClueRaised'") == 1


async def test_a_claim_older_than_the_timeout_is_released_even_if_its_owner_lives(run_services):
    async with run_services("intake") as system:
        await registered(system)
        intake, mca, body = system.clients["intake"], system.token(**MCA), warning("IK-3", id_number(1))
        hung = ProcessLease(system.context("intake").engine)
        await hung.start()
        try:
            timeout = system.context("intake").settings.idempotency_in_progress_seconds
            for key, age in (("k-old", timeout + 1), ("k-young", timeout - 60)):
                await leave_in_progress(system, mca, key, "/v1/warnings", body, owner=hung.key, age_seconds=age)
            assert (await post(intake, "/v1/warnings", mca, body, "k-young")).status_code == 409
            old = await post(intake, "/v1/warnings", mca, body, "k-old")
            assert old.status_code == 201 and "idempotent-replayed" not in old.headers, old.text
            assert (await post(intake, "/v1/warnings", mca, body, "k-old")).headers["idempotent-replayed"] == "true"
            assert await count(system, "select count(*) from warnings") == 1
        finally:
            await hung.stop()


async def test_principals_sharing_a_sub_do_not_share_answers(run_services):
    async with run_services("intake") as system:
        await registered(system)
        intake, body = system.clients["intake"], warning("IK-4", id_number(1))
        system_token = system.token(**MCA)
        liaison = system.token(role="department_liaison", region="410721", kind="staff", department="civil_affairs", sub="mca")
        health = system.token(role="department_system", kind="system", department="health", sub="mca")

        first = await post(intake, "/v1/warnings", system_token, body, "k-shared")
        assert first.status_code == 201
        by_liaison = await post(intake, "/v1/warnings", liaison, body, "k-shared")
        assert by_liaison.status_code == 200 and by_liaison.json()["outcome"] == "duplicate", by_liaison.text
        assert "idempotent-replayed" not in by_liaison.headers
        by_health = await post(intake, "/v1/warnings", health, body, "k-shared")
        assert by_health.status_code == 403 and "idempotent-replayed" not in by_health.headers
        # Each keeps its own answer.
        assert (await post(intake, "/v1/warnings", system_token, body, "k-shared")).json() == first.json()
        assert (await post(intake, "/v1/warnings", liaison, body, "k-shared")).json() == by_liaison.json()
        assert await count(system, "select count(*) from idempotency_keys where key = 'k-shared'") == 3


async def test_a_household_declaring_by_its_qr_link_is_idempotent(run_services):
    async with run_services("intake") as system:
        await registered(system)
        intake, county = system.clients["intake"], system.token("county_officer", "410721")
        link = (await intake.get("/v1/households/I1/qr", headers=county)).headers["link"].split(">")[0].lstrip("<")
        token = parse_qs(urlparse(link).query)["token"][0]
        body = {"household_id": "I1", "phone": "13800000000", "risk_types": ["illness"]}
        first = await post(intake, f"/v1/declarations?token={token}", {}, body, "k-qr")
        again = await post(intake, f"/v1/declarations?token={token}", {}, body, "k-qr")
        assert first.status_code == again.status_code == 201
        assert again.headers.get("idempotent-replayed") == "true" and again.json() == first.json()
        assert await count(system, "select count(*) from declarations") == 1


async def test_of_two_requests_finding_the_same_dead_claim_one_takes_it(run_services):
    async with run_services("intake") as system:
        ctx = system.context("intake")
        body, mca = warning("IK-5", id_number(1)), system.token(**MCA)
        await leave_in_progress(system, mca, "k-race", "/v1/warnings", body, owner=new_lease_key())
        principal = scope_of(system, mca)
        one, two = ProcessLease(ctx.engine), ProcessLease(ctx.engine)
        await one.start()
        await two.start()
        try:
            async with ctx.sessions() as first, ctx.sessions() as second:
                async with first.begin():
                    assert await claim(first, principal, "k-race", "h", one.key, TIMEOUT) is not None
                    # The second waits on the row the first has taken, not yet committed...
                    waiting = asyncio.create_task(_claim_in(second, principal, two.key))
                    await asyncio.sleep(0.5)
                    assert not waiting.done()
                # ...and once it commits, finds a live owner.
                assert await waiting is None
        finally:
            await one.stop()
            await two.stop()


async def _claim_in(session, principal, owner):
    async with session.begin():
        return await claim(session, principal, "k-race", "h", owner, TIMEOUT)


async def test_the_service_claims_with_its_own_lease(run_services):
    async with run_services("intake") as system:
        await registered(system)
        lease = system.apps["intake"].state.lease
        assert not await is_dead(system.context("intake").engine, lease.key)
        r = await post(system.clients["intake"], "/v1/warnings", system.token(**MCA), warning("IK-6", id_number(1)), "k-own")
        assert r.status_code == 201
        assert await count(system, "select owner from idempotency_keys where key = 'k-own'") == lease.key


async def test_pg_locks_tells_a_held_lease_from_a_released_one(service_context):
    ctx = await service_context("intake")
    lease = ProcessLease(ctx.engine)
    # A low word with its top bit set: the halves are unsigned oids, not signed int4s.
    lease.key = (0x7EADBEEF << 32) | 0xF00DCAFE
    await lease.start()
    stop = asyncio.Event()
    keeper = asyncio.create_task(lease.keep(stop, every=0.1))
    try:
        assert not await is_dead(ctx.engine, lease.key)
        [(classid, objid, objsubid, pid)] = await holders(ctx.engine, 0x7EADBEEF)
        assert (classid, objid, objsubid) == (0x7EADBEEF, 0xF00DCAFE, 1)
        assert await is_dead(ctx.engine, lease.key + 1) and await is_dead(ctx.engine, lease.key ^ (1 << 40))
        assert not await is_dead(ctx.engine, None), "a claim without an owner is released by age alone"

        # Its session killed (a database restart, a cut connection): the lease takes the lock again.
        async with ctx.engine.connect() as conn:
            await conn.execute(sa.text("select pg_terminate_backend(:pid)"), {"pid": pid})
            await conn.commit()

        async def held_again():
            return [row for row in await holders(ctx.engine, 0x7EADBEEF) if row.pid != pid]
        await eventually(held_again, timeout=10, interval=0.05)
        assert not await is_dead(ctx.engine, lease.key)
    finally:
        stop.set()
        await keeper
        await lease.stop()
    await eventually(lambda: is_dead(ctx.engine, lease.key), timeout=5, interval=0.05)


async def holders(engine, classid: int) -> list:
    """The advisory locks in this database whose key's high word is `classid`, as pg_locks shows them."""
    async with engine.connect() as conn:
        return (await conn.execute(sa.text(
            "select classid::bigint, objid::bigint, objsubid, pid from pg_locks where locktype = 'advisory' "
            "and database = (select oid from pg_database where datname = current_database()) "
            "and classid::bigint = :classid"), {"classid": classid})).all()

