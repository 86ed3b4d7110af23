"""Each member of staff's own delivery preferences: GET and PUT /v1/preferences. The inbox (and its
live stream) always has everything; besides it a person chooses webhook and e-mail, quiet hours
that defer e-mail (never drop it), and whether what is not urgent waits for the daily digest."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field, field_validator

from runtime.auth import Staff
from runtime.service import Context
from services.notifier import store
from services.notifier.domain.delivery_times import QuietHours

router = APIRouter()


class Preferences(BaseModel):
    channels: list[Literal["webhook", "email"]] = Field(description="besides the inbox, which always has everything")
    quiet_hours: str | None = Field(None, description="HH:MM-HH:MM in the deployment's time zone, e.g. 22:00-07:00")
    digest: bool = Field(description="what is not urgent goes in one e-mail a day (at digest_time)")

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str | None) -> str | None:
        if value:
            QuietHours.parse(value)  # a ValueError names what is wrong
        return value


class PreferencesView(Preferences):
    email: str | None
    webhook_url: str | None
    webhook_secret: str | None = Field(description="verifies the signatures of the webhooks sent to you")


async def _current(ctx, staff_id: str) -> PreferencesView:
    async with ctx.sessions() as session:
        person = (await store.people(session, [staff_id])).get(staff_id)
        secret = await store.webhook_secret_of(session, staff_id)
    if person is None:
        return PreferencesView(channels=[], quiet_hours=None, digest=True, email=None, webhook_url=None,
                               webhook_secret=None)
    quiet = f"{person.quiet_hours.start:%H:%M}-{person.quiet_hours.end:%H:%M}" if person.quiet_hours else None
    return PreferencesView(channels=list(person.channels), quiet_hours=quiet, digest=person.digest, email=person.email,
                           webhook_url=person.webhook_url, webhook_secret=secret)


@router.get("/preferences", response_model=PreferencesView)
async def preferences(principal: Staff, ctx: Context):
    return await _current(ctx, principal.sub)


@router.put("/preferences", response_model=PreferencesView)
async def set_preferences(body: Preferences, principal: Staff, ctx: Context):
    async with ctx.sessions() as session, session.begin():
        await store.save_preferences(session, {"staff_id": principal.sub, "channels": sorted(set(body.channels)),
                                               "quiet_hours": body.quiet_hours, "digest": body.digest,
                                               "updated_at": ctx.clock.now()})
    return await _current(ctx, principal.sub)
