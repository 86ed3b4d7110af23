"""notifier's channels against real servers on this machine (no PostgreSQL, no broker): webhooks
an aiohttp receiver checks with the Standard Webhooks reference verifier, and e-mail an aiosmtpd
server receives. Each answer a receiver can give comes back as the right Attempt."""
import asyncio
import email
import email.policy
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio
from aiohttp import web
from aiosmtpd.controller import Controller
from standardwebhooks import Webhook, WebhookVerificationError

from runtime.embedded import free_port
from runtime.settings import Settings
from services.notifier.channels import MailItem, SmtpServer, compose, new_webhook_secret, post_webhook, send_mail, \
    webhook_body

pytestmark = pytest.mark.integration
SECRET = new_webhook_secret()


class Receiver:
    """A webhook endpoint per answer; every request it gets is kept."""

    def __init__(self):
        self.requests: list[tuple[str, dict, str]] = []  # path, headers, body
        self.release = asyncio.Event()  # lets the endpoint that never answers go when the test ends

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.requests.append((request.path, dict(request.headers), body))
        match request.path:
            case "/verified":
                try:
                    Webhook(SECRET).verify(body, dict(request.headers))
                except WebhookVerificationError as exc:
                    return web.Response(status=401, text=str(exc))
                return web.Response(status=204)
            case "/busy":
                return web.Response(status=503, text="down for maintenance " + "x" * 500, headers={"Retry-After": "7"})
            case "/limited":
                later = datetime.now(UTC) + timedelta(seconds=120)
                return web.Response(status=429, headers={"Retry-After": later.strftime("%a, %d %b %Y %H:%M:%S GMT")})
            case "/gone":
                return web.Response(status=410, text="endpoint disabled")
            case "/bad":
                return web.Response(status=400, text="unknown event type")
            case "/silent":
                await asyncio.wait_for(self.release.wait(), 30)
                return web.Response(status=200)
            case "/trickle":  # each byte well within a read timeout, the whole answer not
                response = web.StreamResponse(status=500)
                await response.prepare(request)
                for _ in range(30):
                    await response.write(b"x")
                    await asyncio.sleep(0.1)
                return response
        return web.Response(status=404)


@pytest_asyncio.fixture
async def receiver():
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/{path:.*}", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    receiver.url = f"http://127.0.0.1:{port}"
    yield receiver
    receiver.release.set()
    await runner.cleanup()


@pytest_asyncio.fixture
async def client():
    """A client that notes every request it sends."""
    sent = []

    async def note(request):
        sent.append(request)

    async with httpx.AsyncClient(event_hooks={"request": [note]}) as client:
        client.sent = sent
        yield client


def body() -> str:
    return webhook_body("task.assigned", datetime(2026, 3, 10, 7, 0, tzinfo=UTC),
                        {"notification_id": "n-1", "subject": "入户核实：王某某家", "due_date": "2026-03-17"})


async def post(client, url, msg_id="msg-1", timeout=2.0):
    return await post_webhook(client, url, SECRET, msg_id, datetime.now(UTC), body(), timeout)


async def test_a_signed_webhook_passes_the_reference_verifier_and_is_delivered(receiver, client):
    attempt = await post(client, f"{receiver.url}/verified")
    assert attempt.outcome == "delivered", attempt.detail
    [(_, headers, received)] = receiver.requests
    assert headers["webhook-id"] == "msg-1" and headers["Content-Type"] == "application/json"
    assert headers["webhook-timestamp"].isdigit()
    assert Webhook(SECRET).verify(received, headers) == {
        "type": "task.assigned", "timestamp": "2026-03-10T07:00:00Z",
        "data": {"notification_id": "n-1", "subject": "入户核实：王某某家", "due_date": "2026-03-17"}}


async def test_the_signature_covers_the_body_and_the_secret(receiver, client):
    await post(client, f"{receiver.url}/verified")
    [(_, headers, received)] = receiver.requests
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(received.replace("王某某", "李某某"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_webhook_secret()).verify(received, headers)
    other_secret = await post_webhook(client, f"{receiver.url}/verified", new_webhook_secret(), "msg-2",
                                      datetime.now(UTC), body(), 2.0)
    assert other_secret.outcome == "refused" and other_secret.detail.startswith("401 Unauthorized")


async def test_an_unavailable_receiver_is_retried_after_its_retry_after_with_the_same_id(receiver, client):
    first, second = await post(client, f"{receiver.url}/busy"), await post(client, f"{receiver.url}/busy")
    assert first == second
    assert (first.outcome, first.retry_after) == ("retry", 7.0)
    assert first.detail.startswith("503 Service Unavailable: down for maintenance")
    assert len(first.detail) < 260  # the body's first 200 characters, not all of it
    assert [headers["webhook-id"] for _, headers, _ in receiver.requests] == ["msg-1", "msg-1"]


async def test_a_retry_after_date_is_read_as_the_seconds_until_then(receiver, client):
    attempt = await post(client, f"{receiver.url}/limited")
    assert attempt.outcome == "retry" and attempt.detail == "429 Too Many Requests"
    assert 115 <= attempt.retry_after <= 121


async def test_gone_disables_and_another_4xx_refuses(receiver, client):
    gone, bad = await post(client, f"{receiver.url}/gone"), await post(client, f"{receiver.url}/bad")
    assert (gone.outcome, gone.detail) == ("gone", "410 Gone: endpoint disabled")
    assert (bad.outcome, bad.detail, bad.retry_after) == ("refused", "400 Bad Request: unknown event type", None)


async def test_a_receiver_that_never_answers_is_a_timeout_to_retry(receiver, client):
    started = asyncio.get_running_loop().time()
    attempt = await post(client, f"{receiver.url}/silent", timeout=0.5)
    assert (attempt.outcome, attempt.detail) == ("retry", "timeout after 0.5 s")
    assert asyncio.get_running_loop().time() - started < 2


async def test_a_receiver_that_trickles_its_answer_is_cut_off_at_the_timeout(receiver, client):
    started = asyncio.get_running_loop().time()
    attempt = await post(client, f"{receiver.url}/trickle", timeout=0.5)
    assert (attempt.outcome, attempt.detail) == ("retry", "timeout after 0.5 s")
    assert asyncio.get_running_loop().time() - started < 1.5


async def test_nothing_listening_is_retried(client):
    attempt = await post(client, f"http://127.0.0.1:{free_port()}/hook")
    assert attempt.outcome == "retry" and attempt.detail.startswith("connection failed: ConnectError")


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/hook", "file:///etc/passwd", "hooks.example.org/x", "http:///x",
                                 "http://[::1/x"])
async def test_a_url_that_is_not_http_is_refused_without_a_request(client, url):
    attempt = await post(client, url)
    assert attempt.outcome == "refused" and attempt.detail.startswith("not an http(s) URL")
    assert client.sent == []


# E-mail ----------------------------------------------------------------------------------------------

class Mailbox:
    """An SMTP handler: keeps what it accepts; `refuse_rcpt` / `refuse_data` answer with that line instead."""

    def __init__(self, refuse_rcpt: str | None = None, refuse_data: str | None = None):
        self.refuse_rcpt, self.refuse_data = refuse_rcpt, refuse_data
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.raw: list[bytes] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse_rcpt:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.refuse_data:
            return self.refuse_data
        self.raw.append(envelope.content)
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content, policy=email.policy.default)))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp():
    """`smtp(handler)` serves it on a free port and gives the SmtpServer to send to."""
    controllers = []

    def serve(handler) -> SmtpServer:
        controller = Controller(handler, hostname="127.0.0.1", port=free_port())
        controller.start()
        controllers.append(controller)
        return SmtpServer.from_settings(Settings(smtp_host="127.0.0.1", smtp_port=controller.port, smtp_timeout_seconds=5))

    yield serve
    for controller in controllers:
        controller.stop()


ITEMS = [MailItem("入户核实：王某某家", "请在 3 月 17 日前完成入户核实。", "https://fangpin.example.cn/tasks/n-1"),
         MailItem("村级评议：李某某家", "请组织村民代表评议。", "https://fangpin.example.cn/tasks/n-2"),
         MailItem("系统通知", "监测标准已更新。")]


async def test_one_item_arrives_as_its_own_message_with_its_chinese_subject(smtp):
    mailbox = Mailbox()
    attempt = await send_mail(smtp(mailbox), compose("fangpin@county.example.cn", "wf@example.org", ITEMS[:1]))
    assert attempt.outcome == "delivered", attempt.detail
    [(recipients, message)] = mailbox.messages
    assert recipients == ["wf@example.org"] and message["From"] == "fangpin@county.example.cn"
    assert message["Subject"] == "入户核实：王某某家"
    assert message.get_content().replace("\r\n", "\n") == "请在 3 月 17 日前完成入户核实。\n\nhttps://fangpin.example.cn/tasks/n-1\n"


async def test_several_items_arrive_as_one_digest_listing_each(smtp):
    mailbox = Mailbox()
    attempt = await send_mail(smtp(mailbox), compose("fangpin@county.example.cn", "wf@example.org", ITEMS))
    assert attempt.outcome == "delivered", attempt.detail
    [(_, message)] = mailbox.messages
    assert message["Subject"] == "防贫监测：3 条待办与通知"
    assert b"\nSubject: =?utf-8?" in mailbox.raw[0]  # sent encoded (RFC 2047), decoded by the reader
    text = message.get_content()
    for item in ITEMS:
        assert item.subject in text and item.body in text and (item.link or "") in text
    assert text.index(ITEMS[0].subject) < text.index(ITEMS[1].subject) < text.index(ITEMS[2].subject)
    assert compose("a@b.org", "c@d.org", ITEMS, language="en")["Subject"] == "Fangpin: 3 notifications"


async def test_a_recipient_the_server_refuses_for_good_is_refused(smtp):
    server = smtp(Mailbox(refuse_rcpt="550 5.1.1 no such user"))
    attempt = await send_mail(server, compose("fangpin@county.example.cn", "nobody@example.org", ITEMS[:1]))
    assert (attempt.outcome, attempt.detail) == ("refused", "550 5.1.1 no such user")


async def test_a_server_that_asks_to_come_back_later_is_retried(smtp):
    server = smtp(Mailbox(refuse_data="451 4.3.0 try again later"))
    attempt = await send_mail(server, compose("fangpin@county.example.cn", "wf@example.org", ITEMS[:1]))
    assert (attempt.outcome, attempt.detail) == ("retry", "451 4.3.0 try again later")


async def test_no_smtp_server_listening_is_retried():
    server = SmtpServer("127.0.0.1", free_port(), None, None, starttls=False, timeout=2)
    attempt = await send_mail(server, compose("fangpin@county.example.cn", "wf@example.org", ITEMS[:1]))
    assert attempt.outcome == "retry" and "SMTPConnectError" in attempt.detail


async def test_an_smtp_server_that_never_greets_is_a_timeout_to_retry():
    mute = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
    port = mute.sockets[0].getsockname()[1]
    try:
        server = SmtpServer("127.0.0.1", port, None, None, starttls=False, timeout=0.5)
        attempt = await send_mail(server, compose("fangpin@county.example.cn", "wf@example.org", ITEMS[:1]))
    finally:
        mute.close()
    assert (attempt.outcome, attempt.detail) == ("retry", "timeout after 0.5 s")
