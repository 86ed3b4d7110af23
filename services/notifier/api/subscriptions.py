"""Webhook subscriptions of other systems: POST /v1/subscriptions, GET /v1/subscriptions,
DELETE /v1/subscriptions/{id}. Deliveries are signed per the Standard Webhooks specification with the
subscription's secret (`whsec_…`, made here when none is given, told once in the answer)."""
from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, field_validator

from runtime.auth import require_region
from runtime.ids import new_id_str
from runtime.problems import Problem
from runtime.service import Context
from services.notifier import store
from services.notifier.api.deps import Subscriber
from services.notifier.channels.webhook import new_webhook_secret
from services.notifier.reference import routing_table

router = APIRouter()


class SubscriptionIn(BaseModel):
    url: str = Field(max_length=2000, pattern=r"^https?://[^\s]+$", description="an http(s) URL that receives POSTs")
    secret: str | None = Field(None, pattern=r"^whsec_[A-Za-z0-9+/=]{32,}$",
                               description="a Standard Webhooks secret (whsec_ and base64 of 24 to 64 bytes); none: one is made")
    event_types: list[str] = Field(min_length=1, max_length=100)
    region: str = Field("", pattern=r"^\d{0,12}$", description="a region prefix; empty: all of the caller's")


class SubscriptionView(BaseModel):
    subscription_id: str
    url: str
    event_types: list[str]
    region_prefix: str
    department: str | None
    active: bool
    disabled_reason: str | None
    created_at: datetime


@router.post("/subscriptions", status_code=201)
async def subscribe(body: SubscriptionIn, principal: Subscriber, ctx: Context) -> dict:
    routed = routing_table(ctx.settings.notifier_routing).event_types
    unknown = sorted(set(body.event_types) - routed)
    if unknown:
        raise Problem(422, "Unprocessable Content", "notifier sends only the event types its routing table names",
                      code="invalid_request", errors=[{"field": "event_types", "message": f"not routed: {', '.join(unknown)}",
                                                       "code": "invalid_request"}])
    region = body.region or principal.region
    if region:
        require_region(principal, region)
    row = {"subscription_id": new_id_str(), "owner": principal.sub, "department": principal.department,
           "url": body.url, "secret": body.secret or new_webhook_secret(), "event_types": sorted(set(body.event_types)),
           "region_prefix": region, "active": True, "disabled_reason": None, "created_at": ctx.clock.now()}
    async with ctx.sessions() as session, session.begin():
        await store.save_subscription(session, row)
    view = SubscriptionView.model_validate(row).model_dump(mode="json")
    return {**view, "secret": row["secret"]}


@router.get("/subscriptions", response_model=list[SubscriptionView])
async def subscriptions(principal: Subscriber, ctx: Context):
    async with ctx.sessions() as session:
        return [SubscriptionView.model_validate(r, from_attributes=True)
                for r in await store.subscriptions_of(session, principal.sub)]


@router.delete("/subscriptions/{subscription_id}", status_code=204)
async def unsubscribe(subscription_id: str, principal: Subscriber, ctx: Context):
    async with ctx.sessions() as session, session.begin():
        if not await store.delete_subscription(session, subscription_id, principal.sub):
            raise Problem(404, "Not found", f"no subscription {subscription_id} of yours", code="subscription_not_found")
    return Response(status_code=204)
