"""Each member of staff's inbox: GET /v1/inbox (filters), GET /v1/inbox/unread-count,
POST /v1/inbox/{id}/read and /acknowledge, and GET /v1/inbox/stream, the same live (Server-Sent Events).

The stream's event ids are the inbox's own numbers (inbox_seq): a person's notifications are numbered
under a lock on their row and commit in that order, so a client that reconnects with `Last-Event-ID: n`
is sent exactly those above n: nothing missed, nothing twice."""
from __future__ import annotations

import asyncio
from datetime import datetime

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from runtime.auth import Staff, command_metadata
from runtime.paging import Page, Paging, make_page
from runtime.problems import Problem, field_error
from runtime.service import Context
from services.notifier import commands, store
from services.notifier.live import signals_of

router = APIRouter()
HEARTBEAT_SECONDS = 15.0  # a comment line now and then keeps proxies from closing an idle stream
RECONNECT_MS = 1000  # how long a client waits before it reconnects (the `retry:` field)


class NotificationView(BaseModel):
    notification_id: str
    inbox_seq: int | None
    kind: str
    subject: str
    subject_en: str
    reference: str
    task_id: str | None
    urgent: bool
    due_at: datetime | None
    created_at: datetime
    read_at: datetime | None
    acknowledged_at: datetime | None


def _view(row) -> NotificationView:
    return NotificationView.model_validate(row, from_attributes=True)


@router.get("/inbox", response_model=Page[NotificationView])
async def inbox(*, unread: bool = False, unacknowledged: bool = False,
                kind: str | None = Query(None, description="only this kind, e.g. verify_household, escalation"),
                reference: str | None = Query(None, description="only about this work, e.g. case:…"),
                page: Paging, principal: Staff, ctx: Context):
    """The caller's notifications, newest first."""
    async with ctx.sessions() as session:
        rows = await store.inbox_page(session, principal.sub, store.InboxFilter(unread, unacknowledged, kind, reference),
                                      page.after, page.limit + 1)
    return make_page(rows, page, key=lambda r: r.notification_id, item=_view)


@router.get("/inbox/unread-count")
async def unread_count(principal: Staff, ctx: Context) -> dict:
    async with ctx.sessions() as session:
        return {"unread": await store.unread_count(session, principal.sub)}


def _not_in_inbox(notification_id: str) -> Problem:
    # A lookup that found nothing, not a rule refused: answered here, with the title every 404 of the API has.
    return Problem(404, "Not found", f"no notification {notification_id} in your inbox", code="notification_not_found")


@router.post("/inbox/{notification_id}/read", response_model=NotificationView)
async def mark_read(notification_id: str, request: Request, principal: Staff, ctx: Context):
    row = await commands.mark_read(ctx, command_metadata(principal, request), principal.sub, notification_id)
    if row is None:
        raise _not_in_inbox(notification_id)
    return _view(row)


@router.post("/inbox/{notification_id}/acknowledge", response_model=NotificationView)
async def acknowledge(notification_id: str, request: Request, principal: Staff, ctx: Context):
    """已受理: acknowledging a task stops its reminders and escalation."""
    row = await commands.acknowledge(ctx, command_metadata(principal, request), principal.sub, notification_id)
    if row is None:
        raise _not_in_inbox(notification_id)
    return _view(row)


@router.get("/inbox/stream", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "`id:` the inbox number, `event: notification`, `data:` the notification"}})
async def stream(request: Request, principal: Staff, ctx: Context,
                 last_event_id: str | None = Header(None, alias="Last-Event-ID"),
                 after: int | None = Query(None, ge=0, description="as Last-Event-ID, for a first connection")):
    """The caller's inbox, live: first everything after `Last-Event-ID` (or `after`; neither: only what
    comes from now on), then each new notification as it commits."""
    if last_event_id is not None:
        if not last_event_id.isdigit():
            raise field_error("Last-Event-ID", "the id of an event this stream sent (a whole number)",
                              code="stream_position_invalid")
        after = int(last_event_id)
    if after is None:
        async with ctx.sessions() as session:
            after = await store.last_inbox_seq(session, principal.sub)
    return StreamingResponse(_events(request, ctx, principal.sub, after), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def _events(request: Request, ctx, staff_id: str, after: int):
    signals = signals_of(ctx.engine)
    grew = await signals.register(staff_id)  # before the first read: a commit meanwhile is not missed
    poll = ctx.settings.inbox_stream_poll_seconds
    try:
        yield f"retry: {RECONNECT_MS}\n\n"
        quiet = 0.0
        while not await request.is_disconnected():
            grew.clear()
            async with ctx.sessions() as session:
                rows = await store.inbox_after(session, staff_id, after, limit=100)
            for row in rows:
                after = row.inbox_seq
                data = orjson.dumps(_view(row).model_dump(mode="json")).decode()
                yield f"id: {row.inbox_seq}\nevent: notification\ndata: {data}\n\n"
            if rows:
                quiet = 0.0
                continue
            try:
                await asyncio.wait_for(grew.wait(), poll)
            except TimeoutError:
                quiet += poll
            if quiet >= HEARTBEAT_SECONDS:
                quiet = 0.0
                yield ": still here\n\n"
    finally:
        await signals.unregister(staff_id, grew)
