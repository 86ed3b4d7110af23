"""Each member of staff's inbox: GET /v1/inbox, POST /v1/inbox/{notification_id}/read."""
from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel

from runtime.auth import Staff, command_metadata
from runtime.paging import Page, Paging, make_page
from runtime.problems import Problem
from runtime.service import Context
from services.notifier import commands, store

router = APIRouter()


class NotificationView(BaseModel):
    notification_id: str
    kind: str
    subject: str
    reference: str
    created_at: datetime
    read_at: datetime | None


@router.get("/inbox", response_model=Page[NotificationView])
async def inbox(*, unread: bool = False, page: Paging, principal: Staff, ctx: Context):
    async with ctx.sessions() as session:
        rows = await store.inbox_page(session, principal.sub, unread, page.after, page.limit + 1)
    return make_page(rows, page, key=lambda r: r.notification_id,
                     item=lambda r: NotificationView.model_validate(r, from_attributes=True))


@router.post("/inbox/{notification_id}/read", response_model=NotificationView)
async def mark_read(notification_id: str, request: Request, principal: Staff, ctx: Context):
    row = await commands.mark_read(ctx, command_metadata(principal, request), principal.sub, notification_id)
    if row is None:
        # A lookup that found nothing, not a rule refused: answered here, with the title every 404 of the API has.
        raise Problem(404, "Not found", f"no notification {notification_id} in your inbox", code="notification_not_found")
    return NotificationView.model_validate(row, from_attributes=True)
