"""The delivery ledger: GET /v1/deliveries (by status, e.g. the dead-letter list `?status=dead`),
GET /v1/notifications/{id}/deliveries (one notification's rows, for the person it went to or an
operator), POST /v1/deliveries/{id}/resend (an operator sends a dead one again)."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from runtime.auth import Principal, Staff
from runtime.paging import Page, Paging, make_page
from runtime.problems import Problem
from runtime.service import Context
from services.notifier import store
from services.notifier.api.deps import Operator

router = APIRouter()


class DeliveryView(BaseModel):
    delivery_id: str
    notification_id: str | None
    channel: str
    recipient: str
    address: str | None
    event_type: str
    status: str
    attempts: int
    detail: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    acknowledged_at: datetime | None
    failed_at: datetime | None
    dead_at: datetime | None


def _view(row) -> DeliveryView:
    return DeliveryView.model_validate(row, from_attributes=True)


@router.get("/deliveries", response_model=Page[DeliveryView])
async def deliveries(*, status: Literal["queued", "sent", "delivered", "read", "acknowledged", "failed", "dead"] = Query(
        "dead", description="dead: the dead-letter list, waiting for a resend"),
        page: Paging, principal: Operator, ctx: Context):
    async with ctx.sessions() as session:
        rows = await store.deliveries_page(session, status, page.after, page.limit + 1)
    return make_page(rows, page, key=lambda r: r.delivery_id, item=_view)


@router.get("/notifications/{notification_id}/deliveries", response_model=list[DeliveryView])
async def of_notification(notification_id: str, principal: Staff, ctx: Context):
    """Each channel's row of a notification of the caller's (an administrator or operator: anyone's)."""
    async with ctx.sessions() as session:
        rows = await store.deliveries_of(session, notification_id)
    if not rows or not (_operates(principal) or all(r.recipient == f"staff:{principal.sub}" for r in rows)):
        raise Problem(404, "Not found", f"no notification {notification_id} in your inbox", code="notification_not_found")
    return [_view(r) for r in rows]


def _operates(principal: Principal) -> bool:
    return principal.role in ("administrator", "operator")


@router.post("/deliveries/{delivery_id}/resend", response_model=DeliveryView)
async def resend(delivery_id: str, principal: Operator, ctx: Context):
    """A dead delivery queued again, its tries counted anew (the same webhook-id: a receiver that had
    it after all sees a repeat it can recognise)."""
    async with ctx.sessions() as session, session.begin():
        row = await store.delivery(session, delivery_id)
        if row is None:
            raise Problem(404, "Not found", f"no delivery {delivery_id}", code="delivery_not_found")
        if row.status != "dead":
            raise Problem(409, "Conflict", f"delivery {delivery_id} is {row.status}, not dead", code="delivery_not_dead",
                          status_now=row.status)
        row = await store.requeue(session, delivery_id, ctx.clock.now())
    return _view(row)
