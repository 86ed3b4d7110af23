"""Self-declaration (农户自主申报) through the household's own QR code (一户一码).

The code on a household's leaflet carries a link with a token signed for that household alone;
the token is the household's authority to declare, for itself and for no other household.
"""
from __future__ import annotations

import io
from datetime import timedelta

import qrcode
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, model_validator
from qrcode.image.pure import PyPNGImage

from contracts.fields import FieldProblem, refusal
from contracts.vocabulary import RiskType
from runtime.auth import Staff, command_metadata, issue_token, require_region
from runtime.service import Context
from runtime.settings import Settings
from services.intake import commands, domain, reference, store
from services.intake.api.deps import HouseholdToken
from services.intake.api.fields import IdNumber
from services.intake.vault import IdentityVault

router = APIRouter()
DECLARATION_TOKEN_DAYS = 5 * 365  # printed on a leaflet that stays on the wall for years


def declaration_token(settings: Settings, household: store.HouseholdRef) -> str:
    return issue_token(settings, sub=household.household_id, role="household", region=household.region_code,
                       kind="household", ttl=timedelta(days=DECLARATION_TOKEN_DAYS))


def declaration_link(settings: Settings, token: str) -> str:
    """The one place the QR code's link is made: the declaration page at the public address."""
    return f"{settings.public_base_url.rstrip('/')}/declare?token={token}"


def qr_png(text: str) -> bytes:
    out = io.BytesIO()
    qrcode.make(text, image_factory=PyPNGImage, error_correction=qrcode.constants.ERROR_CORRECT_M).save(out)
    return out.getvalue()


@router.get("/households/{household_id}/qr", response_class=Response,
            responses={200: {"content": {"image/png": {}}, "description": "the QR code; its link is in the Link header"}})
async def household_qr(household_id: str, principal: Staff, ctx: Context):
    """The household's QR code (一户一码) for its policy leaflet, carrying the declaration link."""
    async with ctx.sessions() as session:
        household = await store.household_ref(session, household_id)
    if household is None:
        raise domain.HouseholdNotFound(f"no household {household_id}")
    require_region(principal, household.region_code)
    link = declaration_link(ctx.settings, declaration_token(ctx.settings, household))
    return Response(qr_png(link), media_type="image/png",
                    headers={"Link": f'<{link}>; rel="declaration"', "Cache-Control": "no-store"})


class DeclaringHousehold(BaseModel):
    """What the declaration page shows the household of its token, so that it knows the link is its
    own: nothing that identifies anyone to a stranger holding the phone."""
    household_id: str
    region_code: str
    village: str | None = Field(description="the village's name in the region table")
    head_name: str | None = Field(description="the head of household's name, masked (张*明); null if none is registered")
    members: int = Field(description="how many members the household has")


@router.get("/declarations/household", response_model=DeclaringHousehold, openapi_extra={"security": [{}]})
async def declaring_household(principal: HouseholdToken, ctx: Context, response: Response):
    """The household of the token, masked, for the declaration page (一键申报)."""
    vault = IdentityVault(ctx.settings)
    async with ctx.sessions() as session:
        row = await store.household_row(session, principal.sub)
        if row is None:
            raise domain.HouseholdNotFound("the household of this token is no longer registered")
        people = await store.member_rows(session, principal.sub)
    head = domain.head_of_household(people)
    response.headers["Cache-Control"] = "no-store"
    return DeclaringHousehold(
        household_id=row.household_id, region_code=row.region_code, members=len(people),
        village=reference.load_region_table(ctx.settings.region_table).name_of(row.region_code),
        head_name=domain.mask_name(vault.decrypt(head.name_cipher)) if head else None)


class DeclarationIn(BaseModel):
    household_id: str | None = Field(None, max_length=64)
    id_number: IdNumber | None = Field(None, description="a member's ID number, instead of household_id")
    phone: str = Field(pattern=r"^\+?[0-9][0-9 -]{5,19}$", description="where the village can call back")
    risk_types: list[RiskType] = Field(min_length=1)
    description: str | None = Field(None, max_length=2000)

    @model_validator(mode="after")
    def _someone(self) -> "DeclarationIn":
        if not self.household_id and not self.id_number:
            raise refusal(FieldProblem("household_or_id_number_missing", "give household_id or id_number"))
        return self


class DeclarationOut(BaseModel):
    declaration_id: str
    clue_id: str
    message: str


# The bearer scheme or none: the household's token may come as ?token= instead (OpenAPI lists alternatives).
@router.post("/declarations", status_code=201, response_model=DeclarationOut, openapi_extra={"security": [{}]})
async def declare(body: DeclarationIn, request: Request, principal: HouseholdToken, ctx: Context):
    declared = await commands.declare(ctx, command_metadata(principal, request), principal, body)
    return DeclarationOut(declaration_id=declared.declaration_id, clue_id=declared.clue_id,
                          message=f"received; your village will verify it within {ctx.settings.step_due_days['verification_visit']} days")
