"""Key rotation: values sealed under an old encryption key are sealed again under the current one,
a batch per call (`fangpin keys reencrypt` calls until none is left, showing progress)."""
from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from runtime.problems import Problem
from runtime.service import Context
from services.intake import commands
from services.intake.api.deps import Administrator
from services.intake.vault import UnknownEncryptionKey

router = APIRouter()


class ResealIn(BaseModel):
    limit: int = Field(1000, ge=1, le=10_000, description="rows to seal again in this call")


class ResealOut(BaseModel):
    key_id: str = Field(description="the current encryption key id")
    resealed: int = Field(description="rows sealed again under it by this call")
    remaining: int = Field(description="rows still sealed under another key")


@router.post("/keys:reencrypt", response_model=ResealOut)
async def reencrypt(principal: Administrator, ctx: Context, body: ResealIn | None = None):
    try:
        done = await commands.reencrypt(ctx, (body or ResealIn()).limit)
    except UnknownEncryptionKey as exc:
        # A configuration gap, not a refusal of the command: its own title, kept as clients know it.
        raise Problem(409, "Encryption key missing", str(exc), code="encryption_key_missing") from exc
    return ResealOut(key_id=done.key_id, resealed=done.resealed, remaining=done.remaining)
