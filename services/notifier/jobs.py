"""What notifier does by the clock: take the reminders and escalations whose time has come, and try
the webhooks and e-mails that are due (the dispatcher). Both read only their own state in the
database, so both go on after a restart where they stopped."""
from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import httpx
import orjson

from contracts.envelope import Actor
from contracts.notifier import DeliveryFailed
from runtime.bulk import update_rows
from runtime.eventstore import EventMetadata, NewEvent
from runtime.service import ServiceContext, UnitOfWork, run_command
from services.notifier import commands, store
from services.notifier.channels.email import MailItem, SmtpServer, compose, send_mail
from services.notifier.channels.outcome import Attempt
from services.notifier.channels.webhook import post_webhook
from services.notifier.domain.delivery_times import next_attempt_delay

SCHEDULER = Actor(kind="system", id="notifier-scheduler", role="scheduler")
DISPATCH_BATCH = 500
TASKS_AT_ONCE = 500
WEBHOOKS_AT_ONCE = 100
_jitter = random.Random()


async def take_task_steps(ctx: ServiceContext) -> int:
    """Every task whose next reminder or escalation is due, one transaction each."""
    taken = 0
    while True:
        async with ctx.sessions() as session:
            due = await store.tasks_with_steps_due(session, ctx.clock.now(), TASKS_AT_ONCE)
        before = taken
        for task_id in due:
            taken += await run_command(ctx, EventMetadata(actor=SCHEDULER),
                                       lambda uow, task_id=task_id: commands.take_task_steps(uow, task_id))
        if len(due) < TASKS_AT_ONCE or taken == before:  # the last page, or one that moved nothing on
            return taken


async def deliver_due(ctx: ServiceContext) -> int:
    """The dispatcher: rounds of claiming what is due, trying it and recording each outcome, until a
    round finds less than a full batch. Returns the tries made."""
    tries = 0
    while True:
        made = await _deliver_round(ctx)
        tries += made
        if made < DISPATCH_BATCH:
            return tries


async def _deliver_round(ctx: ServiceContext) -> int:
    settings, now = ctx.settings, ctx.clock.now()
    lease = now + timedelta(seconds=settings.webhook_timeout_seconds + settings.smtp_timeout_seconds + 60)
    async with ctx.sessions() as session, session.begin():
        claimed = await store.claim_due(session, now, lease, DISPATCH_BATCH)
    if not claimed:
        return 0
    outcomes: dict[str, Attempt] = {}
    webhooks = [d for d in claimed if d.channel == "webhook"]
    if webhooks:
        outcomes.update(await _post_all(ctx, webhooks))
    emails: dict[str, list] = defaultdict(list)
    for d in claimed:
        if d.channel == "email":
            emails[d.address].append(d)
    for address, group in emails.items():
        attempt = await _mail(ctx, address, group)
        outcomes.update({d.delivery_id: attempt for d in group})
    await _record(ctx, claimed, outcomes)
    return len(claimed)


async def _post_all(ctx: ServiceContext, webhooks: list) -> dict[str, Attempt]:
    limit = asyncio.Semaphore(WEBHOOKS_AT_ONCE)

    async def one(client: httpx.AsyncClient, d) -> tuple[str, Attempt]:
        async with limit:
            if not d.secret:
                return d.delivery_id, Attempt("refused", "no signing secret for this recipient")
            # The signature's time is the wall clock's: receivers compare it with theirs (the
            # service's own clock may be a simulation's).
            return d.delivery_id, await post_webhook(client, d.address, d.secret, d.delivery_id, datetime.now(UTC),
                                                     d.body, ctx.settings.webhook_timeout_seconds)

    return dict(await asyncio.gather(*(one(_client(), d) for d in webhooks)))


_clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}


def _client() -> httpx.AsyncClient:
    """One client per event loop, kept: its connections to receivers are reused from round to round."""
    loop = asyncio.get_running_loop()
    for other in [l for l in _clients if l.is_closed()]:
        del _clients[other]
    if loop not in _clients:
        _clients[loop] = httpx.AsyncClient(limits=httpx.Limits(max_connections=WEBHOOKS_AT_ONCE))
    return _clients[loop]


async def _mail(ctx: ServiceContext, address: str, group: list) -> Attempt:
    """Everything due for one address in one message: a single notification, or a digest of several
    (what quiet hours or the digest time held back)."""
    try:
        server = SmtpServer.from_settings(ctx.settings)
    except ValueError as error:
        return Attempt("retry", str(error))
    items = []
    for d in group:
        text = orjson.loads(d.body)
        body = text["subject_en"] + (f"\n截止 / due: {text['due_at']}" if text.get("due_at") else "")
        items.append(MailItem(text["subject"], body, f"{ctx.settings.public_base_url.rstrip('/')}/console"))
    return await send_mail(server, compose(ctx.settings.smtp_sender, address, items))


async def _record(ctx: ServiceContext, claimed: list, outcomes: dict[str, Attempt]) -> None:
    settings, now = ctx.settings, ctx.clock.now()
    updates, dead, gone = [], [], []
    for d in claimed:
        attempt = outcomes[d.delivery_id]
        row = {"delivery_id": d.delivery_id, "detail": attempt.detail, "lease_until": None,
               **{c: getattr(d, c) for c in ("status", "delivered_at", "failed_at", "dead_at", "next_attempt_at")}}
        if attempt.outcome == "delivered":
            row.update(status="delivered", delivered_at=now)
        elif attempt.outcome == "retry" and d.attempts < settings.delivery_max_attempts:
            delay = next_attempt_delay(d.attempts, attempt.retry_after, base=settings.delivery_backoff_base_seconds,
                                       cap=settings.delivery_backoff_cap_seconds, rng=_jitter)
            row.update(status="failed", failed_at=now, next_attempt_at=now + timedelta(seconds=delay))
        else:
            reason = {"retry": "attempts_exhausted", "refused": "refused", "gone": "gone"}[attempt.outcome]
            row.update(status="dead", failed_at=now, dead_at=now, next_attempt_at=None)
            dead.append((d, reason, attempt.detail))
            if attempt.outcome == "gone":
                gone.append(d.recipient)
        updates.append(row)

    async def work(uow: UnitOfWork) -> None:
        await update_rows(uow.session, store.deliveries, updates, key=["delivery_id"])
        for recipient in gone:
            await store.disable_endpoint(uow.session, recipient, "410 Gone: the endpoint asked to be removed", now)
        for d, reason, detail in dead:
            stream = await uow.events.load(f"delivery-{d.delivery_id}")
            await uow.append(stream.stream_id, stream.position, [NewEvent(DeliveryFailed(
                delivery_id=d.delivery_id, notification_id=d.notification_id, channel=d.channel, recipient=d.recipient,
                attempts=d.attempts, reason=reason, detail=detail[:500]))])

    await run_command(ctx, EventMetadata(actor=SCHEDULER), work)
