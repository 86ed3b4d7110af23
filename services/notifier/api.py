"""notifier's HTTP surface: the staff directory and each member of staff's inbox."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator

from contracts.notifier import StaffRegistered
from contracts.vocabulary import StaffRole
from runtime.auth import Principal, command_metadata, require, require_region
from runtime.eventstore import NewEvent
from runtime.paging import Page, PageRequest, make_page, page_request
from runtime.problems import Problem
from runtime.service import ServiceContext, UnitOfWork, get_context, run_command
from services.notifier import domain, store

router = APIRouter(prefix="/v1", tags=["notifier"])


class StaffIn(BaseModel):
    staff_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$",
                          description="a pseudonymous id (the person's token subject), never a phone or ID number "
                                      "or a name: it travels in events, which every service keeps for good")
    name: str = Field(min_length=1, max_length=64)
    role: StaffRole
    region_code: str = Field(pattern=r"^\d+$", description="the region the person acts in: 2 to 12 digits")
    email: str | None = Field(None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    webhook_url: str | None = Field(None, max_length=2000, pattern=r"^https?://")

    @field_validator("region_code")
    @classmethod
    def _level(cls, value: str) -> str:
        if len(value) not in domain.REGION_LEVELS:
            raise ValueError("a region code of 2, 4, 6, 9 or 12 digits (province ... village)")
        return value


@router.post("/staff", status_code=201)
async def register_staff(
    body: StaffIn,
    request: Request,
    principal: Principal = Depends(require("county_officer", "township_officer", "administrator", kinds=("staff", "system"))),
    ctx: ServiceContext = Depends(get_context),
):
    require_region(principal, body.region_code)

    async def work(uow: UnitOfWork) -> bool:
        stream = await uow.events.load(f"staff-{body.staff_id}")
        await uow.append(stream.stream_id, stream.position, [NewEvent(
            StaffRegistered(staff_id=body.staff_id, role=body.role, region_code=body.region_code),
            region_code=body.region_code,
        )])
        # The name, e-mail and webhook live here only (the event carries none of them).
        await store.save_staff(uow.session, {**body.model_dump(mode="json"), "updated_at": ctx.clock.now()})
        return stream.position == 0

    created = await run_command(ctx, command_metadata(principal, request), work)
    return JSONResponse({"staff_id": body.staff_id, "outcome": "registered" if created else "updated"},
                          status_code=201 if created else 200)


class NotificationView(BaseModel):
    notification_id: str
    kind: str
    subject: str
    reference: str
    created_at: datetime
    read_at: datetime | None


@router.get("/inbox", response_model=Page[NotificationView])
async def inbox(
    unread: bool = False,
    page: PageRequest = Depends(page_request),
    principal: Principal = Depends(require(kinds=("staff",))),
    ctx: ServiceContext = Depends(get_context),
):
    async with ctx.sessions() as session:
        rows = await store.inbox_page(session, principal.sub, unread, page.after, page.limit + 1)
    return make_page(rows, page, key=lambda r: r.notification_id,
                     item=lambda r: NotificationView.model_validate(r, from_attributes=True))


@router.post("/inbox/{notification_id}/read", response_model=NotificationView)
async def mark_read(notification_id: str, principal: Principal = Depends(require(kinds=("staff",))),
                    ctx: ServiceContext = Depends(get_context)):
    async with ctx.sessions() as session, session.begin():
        row = (await session.execute(
            sa.update(store.notifications)
            .where(store.notifications.c.notification_id == notification_id, store.notifications.c.staff_id == principal.sub)
            .values(read_at=sa.func.coalesce(store.notifications.c.read_at, ctx.clock.now()))
            .returning(*store.notifications.c)
        )).first()
    if row is None:
        raise Problem(404, "Not found", f"no notification {notification_id} in your inbox", code="notification_not_found")
    return NotificationView.model_validate(row, from_attributes=True)
