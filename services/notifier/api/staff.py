"""The staff directory: POST /v1/staff."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator

from contracts.vocabulary import StaffRole
from runtime.auth import command_metadata, require_region
from runtime.service import Context
from services.notifier import commands, domain
from services.notifier.api.deps import Registrar

router = APIRouter()


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
async def register_staff(body: StaffIn, request: Request, principal: Registrar, ctx: Context):
    require_region(principal, body.region_code)
    created, webhook_secret = await commands.register_staff(ctx, command_metadata(principal, request),
                                                            domain.RegisterStaff(**body.model_dump()))
    answer = {"staff_id": body.staff_id, "outcome": "registered" if created else "updated"}
    if webhook_secret:  # told once: the person's webhook receiver verifies signatures with it
        answer["webhook_secret"] = webhook_secret
    return JSONResponse(answer, status_code=201 if created else 200)
