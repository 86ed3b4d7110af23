"""`GET /v1/codes` on every service: the stable codes of contracts/codes.py, for a client to list
(the same on every service: the codes are shared)."""
from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from contracts.codes import REGISTERED, Kind
from runtime.auth import Principal, current_principal

router = APIRouter(prefix="/v1", tags=["codes"])


class CodeView(BaseModel):
    code: str
    kind: Kind
    text: str = Field(description="the rule, in English")
    text_zh: str | None = Field(description="its Chinese term, where the policy documents give one")


class CodeList(BaseModel):
    codes: list[CodeView]


@router.get("/codes", response_model=CodeList)
async def list_codes(kind: Kind | None = None, _principal: Principal = Depends(current_principal)) -> CodeList:
    """Every code a recommendation reason, a ladder step, a refusal (problem `code`, `errors[].code`, a
    rejected row's `code`) or a kept batch row carries; `kind` keeps one kind."""
    return CodeList(codes=[CodeView(code=c.code, kind=c.kind, text=c.text, text_zh=c.text_zh)
                           for c in REGISTERED if kind is None or c.kind is kind])
