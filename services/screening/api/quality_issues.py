"""Quality issues the checks raised (jobs.py), e.g. out_of_loop (体外循环)."""
from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from runtime.auth import Staff, region_scope
from runtime.paging import Page, Paging, make_page
from runtime.service import Context
from services.screening import store

router = APIRouter()


class QualityIssueView(BaseModel):
    issue_id: str
    household_id: str
    region_code: str
    kind: str
    detail: str
    raised_at: datetime


@router.get("/quality-issues", response_model=Page[QualityIssueView])
async def list_quality_issues(region: str | None = None, *, page: Paging, principal: Staff, ctx: Context):
    """What the checks caught, e.g. out_of_loop (体外循环)."""
    scope = region_scope(principal, region)
    async with ctx.sessions() as session:
        rows = await store.quality_issue_page(session, scope, page.after, page.limit + 1)
    return make_page(rows, page, key=lambda r: r.issue_id,
                     item=lambda r: QualityIssueView.model_validate(r, from_attributes=True))
