"""Key rotation: values sealed under an old encryption key are sealed again under the current one,
a batch per call (`fangpin keys reencrypt` calls until none is left, showing progress)."""
from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from runtime.auth import Principal, require
from runtime.problems import Problem
from runtime.service import ServiceContext, get_context
from services.intake import store

router = APIRouter()


class ResealIn(BaseModel):
    limit: int = Field(1000, ge=1, le=10_000, description="rows to seal again in this call")


class ResealOut(BaseModel):
    key_id: str = Field(description="the current encryption key id")
    resealed: int = Field(description="rows sealed again under it by this call")
    remaining: int = Field(description="rows still sealed under another key")


@router.post("/keys:reencrypt", response_model=ResealOut)
async def reencrypt(
    body: ResealIn | None = None,
    principal: Principal = Depends(require("administrator", kinds=("staff", "system"))),
    ctx: ServiceContext = Depends(get_context),
):
    vault = store.IdentityVault(ctx.settings)
    limit = (body or ResealIn()).limit
    try:
        async with ctx.sessions() as session, session.begin():
            resealed = await store.reseal_some(session, vault, limit)
    except store.UnknownEncryptionKey as exc:
        raise Problem(409, "Encryption key missing", str(exc), code="encryption_key_missing") from exc
    async with ctx.sessions() as session:
        remaining = await store.count_sealed_elsewhere(session, vault)
    return ResealOut(key_id=vault.key_id, resealed=resealed, remaining=remaining)
