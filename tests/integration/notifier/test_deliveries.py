"""The channels end to end (issue 18), each against a real counterpart on this machine: the live
inbox stream over HTTP (reconnecting with Last-Event-ID), webhooks to a receiver that verifies them
with the Standard Webhooks reference verifier (down, then up; gone; never answering), e-mail to a
local SMTP server (quiet hours deferring into a digest); and a rebuild of the views that delivers
nothing. The ledger is compared with what each counterpart received."""
import asyncio
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest
import pytest_asyncio
import sqlalchemy as sa
from aiohttp import web
from aiosmtpd.controller import Controller
from standardwebhooks import Webhook

from contracts.intake import WarningUnmatched
from contracts.screening import QualityIssueRaised, VerificationCaseOpened
from contracts.vocabulary import RiskType
from runtime.clock import FixedClock
from runtime.projections import rebuild
from services.notifier import jobs
from tests.conftest import free_port, served_over_http
from tests.integration.notifier.routing_helpers import COUNTY, VILLAGE, consume, register_directory, token_of

pytestmark = pytest.mark.integration
CST = ZoneInfo("Asia/Shanghai")
QUIET = {"task_check_seconds": 3600, "delivery_poll_seconds": 3600}  # the test runs the dispatcher itself


def case_opened(n: int) -> VerificationCaseOpened:
    return VerificationCaseOpened(case_id=f"case-{n}", household_id=f"H-{n}", region_code=VILLAGE, clue_id=f"clue-{n}",
                                  risk_types=[RiskType.ILLNESS], step="verification_visit", due_date=date(2026, 12, 20))


# --- live stream -----------------------------------------------------------------------------------

async def read_stream(client: httpx.AsyncClient, url: str, headers: dict, count: int) -> list[tuple[int, dict]]:
    """`count` events of the stream, then the connection is dropped."""
    got = []
    async with client.stream("GET", url, headers=headers, timeout=30) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        event_id = None
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: "):
                got.append((event_id, orjson.loads(line[6:])))
                if len(got) == count:
                    break
    return got


async def test_a_stream_that_reconnects_with_last_event_id_misses_nothing_and_sees_nothing_twice(run_services):
    # The stream's own look comes once a minute here: what arrives within seconds was woken by the commit.
    async with run_services("notifier", **QUIET, inbox_stream_poll_seconds=60) as system:
        ctx = system.context("notifier")
        await register_directory(system)
        cadre = token_of(system, "cadre-1")
        async with served_over_http(system.apps["notifier"]) as base, httpx.AsyncClient() as client:
            url = f"{base}/v1/inbox/stream?after=0"
            reading = asyncio.create_task(read_stream(client, url, cadre, 3))
            for n in range(1, 4):
                await consume(ctx, case_opened(n), household_id=f"H-{n}")
            first = await asyncio.wait_for(reading, 10)
            # Disconnected: more come meanwhile, and the client reconnects from the last id it saw.
            for n in range(4, 7):
                await consume(ctx, case_opened(n), household_id=f"H-{n}")
            again = await asyncio.wait_for(read_stream(client, f"{base}/v1/inbox/stream",
                                                       {**cadre, "Last-Event-ID": str(first[-1][0])}, 3), 10)
            seen = [data["reference"] for _, data in first + again]
            assert seen == [f"case:case-{n}" for n in range(1, 7)], "each once, in order"
            assert [i for i, _ in first + again] == list(range(1, 7))
            bad = await client.get(f"{base}/v1/inbox/stream", headers={**cadre, "Last-Event-ID": "abc"})
            assert bad.status_code == 422 and bad.json()["code"] == "stream_position_invalid"
            refused = await client.get(f"{base}/v1/inbox/stream")
            assert refused.status_code == 401


async def test_a_late_commit_cannot_be_skipped_by_the_stream(run_services):
    """The window: a transaction numbers a notification for a person and has not committed; another
    one for the same person must wait for it (the row lock), so the stream can never show number 2
    while number 1 is still to come."""
    from runtime.eventstore import EventMetadata
    from runtime.service import unit_of_work
    from contracts.envelope import Actor
    from services.notifier import commands
    from services.notifier.commands import Message, Outgoing

    async with run_services("notifier", **QUIET) as system:
        ctx = system.context("notifier")
        await register_directory(system)
        meta = EventMetadata(actor=Actor(kind="system", id="tests"))
        outgoing = [Outgoing("cadre-1", Message("test", "测试", "test", "ref:1", False), "Test", None, VILLAGE)]
        first_numbered, release = asyncio.Event(), asyncio.Event()

        async def slow():
            async with unit_of_work(ctx, meta) as uow:
                await commands.send_notifications(uow, outgoing)
                first_numbered.set()
                await release.wait()  # numbered 1, not committed

        async def quick():
            async with unit_of_work(ctx, meta) as uow:
                await commands.send_notifications(uow, outgoing)

        holder = asyncio.create_task(slow())
        await first_numbered.wait()
        second = asyncio.create_task(quick())
        await asyncio.sleep(0.5)
        assert not second.done(), "the second numbering waits for the first transaction"
        async with ctx.sessions() as session:
            assert (await session.execute(sa.text("select count(*) from notifications"))).scalar() == 0
        release.set()
        await holder
        await second
        async with ctx.sessions() as session:
            seqs = (await session.execute(sa.text(
                "select inbox_seq from notifications where staff_id = 'cadre-1' order by inbox_seq"))).scalars().all()
        assert seqs == [1, 2]


# --- webhooks --------------------------------------------------------------------------------------

class Receiver:
    """A webhook receiver that verifies with the reference verifier and records each message once."""

    def __init__(self):
        self.secrets: dict[str, str] = {}  # path -> secret
        self.received: dict[str, list[str]] = {}  # path -> webhook-ids, in arrival order
        self.answers: dict[str, int] = {}  # path -> status to answer instead (410, ...)
        self.hang = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path
        if self.answers.get(path) == 0:  # never answers
            await asyncio.wait_for(self.hang.wait(), 60)
        if path in self.answers:
            return web.Response(status=self.answers[path])
        body = await request.text()
        Webhook(self.secrets[path]).verify(body, dict(request.headers))  # raises on a bad signature
        self.received.setdefault(path, []).append(request.headers["webhook-id"])
        return web.Response(status=204)


@pytest_asyncio.fixture
async def receiver_site():
    """Start/stop a receiver on a fixed port, so it can be down and then up at the same address."""
    receiver, port = Receiver(), free_port()
    app = web.Application()
    app.router.add_post("/{path:.*}", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    state = {"site": None}

    async def up():
        state["site"] = web.TCPSite(runner, "127.0.0.1", port)
        await state["site"].start()

    async def down():
        await state["site"].stop()

    receiver.url, receiver.up, receiver.down = f"http://127.0.0.1:{port}", up, down
    yield receiver
    receiver.hang.set()
    await runner.cleanup()


async def ledger(ctx, channel: str) -> list[tuple[str, str, int]]:
    async with ctx.sessions() as session:
        rows = (await session.execute(sa.text(
            "select recipient, status, attempts from deliveries where channel = :c order by recipient, created_at"),
            {"c": channel})).all()
    return [tuple(r) for r in rows]


async def test_a_receiver_down_then_up_gets_every_webhook_once_verified(run_services, receiver_site):
    clock = FixedClock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    async with run_services("notifier", clock=clock, **QUIET, delivery_backoff_base_seconds=10) as system:
        ctx = system.context("notifier")
        answers = await register_directory(system, **{"cadre-1": {"webhook_url": f"{receiver_site.url}/cadre-1"}})
        receiver_site.secrets["/cadre-1"] = answers["cadre-1"]["webhook_secret"]
        assert answers["cadre-1"]["webhook_secret"].startswith("whsec_") and "webhook_secret" not in answers["cadre-2"]
        for n in range(1, 4):
            await consume(ctx, case_opened(n), household_id=f"H-{n}")
        assert await jobs.deliver_due(ctx) == 3  # nothing listens: each try fails
        assert await ledger(ctx, "webhook") == [("staff:cadre-1", "failed", 1)] * 3
        assert await jobs.deliver_due(ctx) == 0, "a failed delivery waits for its backoff"
        await receiver_site.up()
        clock.advance(timedelta(hours=1))
        assert await jobs.deliver_due(ctx) == 3
        assert await jobs.deliver_due(ctx) == 0
        async with ctx.sessions() as session:
            ids = set((await session.execute(sa.text(
                "select delivery_id from deliveries where channel = 'webhook'"))).scalars())
        assert sorted(receiver_site.received["/cadre-1"]) == sorted(ids), "each delivery once, under its own id"
        assert await ledger(ctx, "webhook") == [("staff:cadre-1", "delivered", 2)] * 3


async def test_gone_and_silent_receivers_end_in_the_dead_letter_list_and_an_operator_resends(run_services, receiver_site):
    clock = FixedClock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    await receiver_site.up()
    async with run_services("notifier", clock=clock, **QUIET, webhook_timeout_seconds=0.5, delivery_max_attempts=2,
                            delivery_backoff_base_seconds=1) as system:
        ctx, notifier = system.context("notifier"), system.clients["notifier"]
        await register_directory(system, **{"cadre-1": {"webhook_url": f"{receiver_site.url}/silent"}})
        department = system.token("department_system", COUNTY, kind="system", sub="mca-system", department="civil_affairs")
        made = await notifier.post("/v1/subscriptions", headers=department, json={
            "url": f"{receiver_site.url}/gone", "event_types": ["WarningUnmatched"]})
        assert made.status_code == 201, made.text
        bad = await notifier.post("/v1/subscriptions", headers=department, json={
            "url": "ftp://example/x", "event_types": ["WarningUnmatched"]})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"].endswith("url")
        receiver_site.answers.update({"/silent": 0, "/gone": 410})
        await consume(ctx, case_opened(1), household_id="H-1")
        await consume(ctx, WarningUnmatched(warning_id="w-1", department="civil_affairs", source_record_id="r-9",
                                            indicator="new_dibao"), household_id=None, region_code=VILLAGE)
        await consume(ctx, WarningUnmatched(warning_id="w-2", department="health", source_record_id="r-10",
                                            indicator="high_medical"), household_id=None, region_code=VILLAGE)
        assert await jobs.deliver_due(ctx) == 2, "the health department's warning is not the civil affairs system's"
        clock.advance(timedelta(minutes=5))
        assert await jobs.deliver_due(ctx) == 1  # the silent one again; the gone one is dead already
        dead = (await notifier.get("/v1/deliveries?status=dead", headers=system.token("operator", kind="system"))).json()
        reasons = {d["recipient"].split(":")[0]: d["detail"] for d in dead["items"]}
        assert set(reasons) == {"staff", "subscription"}
        assert "410" in reasons["subscription"] and "timeout" in reasons["staff"].lower(), reasons
        listed = (await notifier.get("/v1/subscriptions", headers=department)).json()
        assert listed[0]["active"] is False and "410" in listed[0]["disabled_reason"]
        async with ctx.sessions() as session:
            failed = (await session.execute(sa.text(
                "select payload->>'reason' from events where event_type = 'DeliveryFailed' order by 1"))).scalars().all()
        assert failed == ["attempts_exhausted", "gone"]
        # The receiver answers again; the operator resends the dead one; it arrives once.
        receiver_site.answers.pop("/silent")
        receiver_site.secrets["/silent"] = (await notifier.get("/v1/preferences", headers=token_of(system, "cadre-1"))).json()["webhook_secret"]
        staff_dead = next(d for d in dead["items"] if d["recipient"] == "staff:cadre-1")
        operator = system.token("operator", kind="system")
        assert (await notifier.post(f"/v1/deliveries/{staff_dead['delivery_id']}/resend", headers=operator)).status_code == 200
        again = await notifier.post(f"/v1/deliveries/{staff_dead['delivery_id']}/resend", headers=operator)
        assert again.status_code == 409 and again.json()["code"] == "delivery_not_dead"
        assert await jobs.deliver_due(ctx) == 1
        assert receiver_site.received["/silent"] == [staff_dead["delivery_id"]]
        assert (await notifier.get("/v1/deliveries?status=dead", headers=token_of(system, "cadre-1"))).status_code == 403


# --- e-mail ----------------------------------------------------------------------------------------

class Mailbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        import email
        from email import policy

        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"


@pytest.fixture
def smtp_server():
    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    mailbox.port = port
    yield mailbox
    controller.stop()


async def test_quiet_hours_defer_e_mail_into_one_digest_and_urgent_mail_goes_at_once(run_services, smtp_server):
    # 23:00 in the county: inside the township officer's quiet hours (22:00-07:00).
    clock = FixedClock(datetime(2026, 12, 1, 23, 0, tzinfo=CST))
    async with run_services("notifier", clock=clock, **QUIET, smtp_host="127.0.0.1", smtp_port=smtp_server.port) as system:
        ctx, notifier = system.context("notifier"), system.clients["notifier"]
        await register_directory(system, **{"township-1": {"email": "township@example.org"},
                                            "cadre-1": {"email": "cadre@example.org"}})
        township = token_of(system, "township-1")
        put = await notifier.put("/v1/preferences", headers=township,
                                 json={"channels": ["email"], "quiet_hours": "22:00-07:00", "digest": False})
        assert put.status_code == 200 and put.json()["quiet_hours"] == "22:00-07:00"
        wrong = await notifier.put("/v1/preferences", headers=township,
                                   json={"channels": ["email"], "quiet_hours": "25:00-07:00", "digest": False})
        assert wrong.status_code == 422
        for n in (1, 2):
            await consume(ctx, QualityIssueRaised(issue_id=f"q-{n}", household_id=f"H-{n}", region_code=VILLAGE,
                                                  kind="allowance_outside_monitoring", detail="低保新增未纳入监测"),
                          household_id=f"H-{n}")
        await consume(ctx, case_opened(3), household_id="H-3")  # urgent, for the cadres (no quiet hours)
        await jobs.deliver_due(ctx)
        assert [(to, m["Subject"]) for to, m in smtp_server.messages] == [
            (["cadre@example.org"], "请于 2026-12-20 前完成农户 H-3 的入户核查（案件 case-3）")]
        clock.advance(timedelta(hours=7, minutes=59))
        assert await jobs.deliver_due(ctx) == 0, "deferred, not dropped, not early"
        clock.advance(timedelta(minutes=2))  # 07:01
        assert await jobs.deliver_due(ctx) == 2
        to, digest = smtp_server.messages[-1]
        assert to == ["township@example.org"] and digest["Subject"] == "防贫监测：2 条待办与通知"
        assert "q-1" not in digest.get_content() and "H-1" in digest.get_content() and "H-2" in digest.get_content()
        assert await ledger(ctx, "email") == [("staff:cadre-1", "delivered", 1)] + [("staff:township-1", "delivered", 1)] * 2


async def test_a_refusing_mail_server_is_recorded_and_the_other_deliveries_go_on(run_services, smtp_server):
    class Refusing(Mailbox):
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if address.startswith("gone@"):
                return "550 5.1.1 no such user"
            envelope.rcpt_tos.append(address)
            return "250 OK"

    refusing, port = Refusing(), free_port()
    controller = Controller(refusing, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        clock = FixedClock(datetime(2026, 12, 1, 10, 0, tzinfo=CST))
        async with run_services("notifier", clock=clock, **QUIET, smtp_host="127.0.0.1", smtp_port=port) as system:
            ctx = system.context("notifier")
            await register_directory(system, **{"cadre-1": {"email": "gone@example.org"},
                                                "cadre-2": {"email": "here@example.org"}})
            await consume(ctx, case_opened(1), household_id="H-1")
            assert await jobs.deliver_due(ctx) == 2
            assert [to for to, _ in refusing.messages] == [["here@example.org"]]
            assert await ledger(ctx, "email") == [("staff:cadre-1", "dead", 1), ("staff:cadre-2", "delivered", 1)]
    finally:
        controller.stop()


# --- replay ----------------------------------------------------------------------------------------

async def test_rebuilding_the_views_from_the_events_delivers_nothing(run_services, receiver_site):
    await receiver_site.up()
    async with run_services("notifier", **QUIET, inbox_stream_poll_seconds=0.05) as system:
        ctx = system.context("notifier")
        answers = await register_directory(system, **{"cadre-1": {"webhook_url": f"{receiver_site.url}/cadre-1"}})
        receiver_site.secrets["/cadre-1"] = answers["cadre-1"]["webhook_secret"]
        for n in (1, 2):
            await consume(ctx, case_opened(n), household_id=f"H-{n}")
        assert await jobs.deliver_due(ctx) == 2
        before = await ledger(ctx, "webhook") + await ledger(ctx, "inbox")
        async with ctx.sessions() as session, session.begin():
            await rebuild(session, ctx.projections)  # the audit's replay: every view again from the events
        assert await jobs.deliver_due(ctx) == 0
        assert await ledger(ctx, "webhook") + await ledger(ctx, "inbox") == before
        assert len(receiver_site.received["/cadre-1"]) == 2
        async with served_over_http(system.apps["notifier"]) as base, httpx.AsyncClient() as client:
            stream = asyncio.create_task(read_stream(client, f"{base}/v1/inbox/stream",
                                                     {**token_of(system, "cadre-1"), "Last-Event-ID": "2"}, 1))
            await asyncio.sleep(1.0)
            assert not stream.done(), "the rebuilt inbox holds nothing new for a client that saw it all"
            stream.cancel()
