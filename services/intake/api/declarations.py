"""Self-declaration (农户自主申报) through the household's own QR code (一户一码).

The code on a household's leaflet carries a link with a token signed for that household alone;
the token is the household's authority to declare, for itself and for no other household.
"""
from __future__ import annotations

import io
from datetime import timedelta

import qrcode
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, model_validator
from qrcode.image.pure import PyPNGImage

from contracts.fields import FieldProblem, refusal
from contracts.vocabulary import ClueChannel, RiskType
from runtime.auth import (BEARER, Principal, bearer_token, command_metadata, decode_token, issue_token, require,
                          require_region)
from runtime.ids import new_id_str
from runtime.problems import Problem
from runtime.service import ServiceContext, UnitOfWork, get_context, run_command
from runtime.settings import Settings
from services.intake import store
from services.intake.api.clues import new_clue
from services.intake.api.fields import IdNumber

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
async def household_qr(household_id: str, principal: Principal = Depends(require()),
                       ctx: ServiceContext = Depends(get_context)):
    """The household's QR code (一户一码) for its policy leaflet, carrying the declaration link."""
    async with ctx.sessions() as session:
        household = await store.household_ref(session, household_id)
    if household is None:
        raise Problem(404, "Not found", f"no household {household_id}", code="household_not_found")
    require_region(principal, household.region_code)
    link = declaration_link(ctx.settings, declaration_token(ctx.settings, household))
    return Response(qr_png(link), media_type="image/png",
                    headers={"Link": f'<{link}>; rel="declaration"', "Cache-Control": "no-store"})


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


async def household_principal(request: Request, token: str | None = Query(
        None, description="the token of the household's QR link (or send it as a Bearer token)"),
        _declared=Depends(BEARER)) -> Principal:
    raw = bearer_token(request) or token
    if raw is None:
        raise Problem(401, "Unauthorized", "open the link of the household's QR code, or send its token",
                      code="token_missing")
    principal = decode_token(request.app.state.context.settings, raw)
    if principal.kind != "household":
        raise Problem(403, "Forbidden", "declarations are made by the household itself, with the token of its QR code",
                      code="household_token_required")
    return principal


# The bearer scheme or none: the household's token may come as ?token= instead (OpenAPI lists alternatives).
@router.post("/declarations", status_code=201, response_model=DeclarationOut, openapi_extra={"security": [{}]})
async def declare(body: DeclarationIn, request: Request, principal: Principal = Depends(household_principal),
                  ctx: ServiceContext = Depends(get_context)):
    if body.household_id and body.household_id != principal.sub:
        raise Problem(403, "Forbidden", "this token belongs to another household", code="not_own_household")
    vault = store.IdentityVault(ctx.settings)
    now = ctx.clock.now()

    async def work(uow: UnitOfWork) -> DeclarationOut:
        if body.id_number:
            id_hash = vault.id_hash(body.id_number)
            household = (await store.households_of_people(uow.session, [id_hash])).get(id_hash)
            if household is None or household.household_id != principal.sub:
                raise Problem(403, "Forbidden", "this ID number is not a member of the token's household",
                              code="not_own_household")
        else:
            household = await store.household_ref(uow.session, principal.sub)
            if household is None:
                raise Problem(404, "Not found", "the household of this token is no longer registered",
                              code="household_not_found")
        declaration_id, clue_id = new_id_str(), new_id_str()
        stream, clue_row = new_clue(clue_id, household, ClueChannel.SELF_DECLARATION, now, list(body.risk_types),
                                    source_record_id=declaration_id, observed_at=now)
        await uow.append_many([stream])
        await store.insert_clues(uow.session, [clue_row])
        await store.record_declaration(uow.session, {
            "declaration_id": declaration_id, "household_id": household.household_id,
            "phone_cipher": vault.encrypt(body.phone), "risk_types": [r.value for r in body.risk_types],
            "description": body.description, "clue_id": clue_id, "declared_at": now})
        return DeclarationOut(declaration_id=declaration_id, clue_id=clue_id,
                              message=f"received; your village will verify it within {ctx.settings.step_due_days['verification_visit']} days")

    return await run_command(ctx, command_metadata(principal, request), work)
