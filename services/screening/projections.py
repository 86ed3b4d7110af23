"""The only code that writes screening's projected read tables, from screening's own events
(runtime.projections). So far `quality_issues`, from QualityIssueRaised; `cases`, `subjects`,
`allowance_watch` and the mirrored `household_labour` are still written by commands.py and jobs.py
(issue 15, step 2, continues with them)."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.base import decode_payload
from contracts.envelope import EventEnvelope
from runtime.projections import Projections
from services.screening.store import quality_issues


async def quality_issues_raised(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    await session.execute(sa.insert(quality_issues), [
        {**decode_payload(envelope).model_dump(), "raised_at": envelope.recorded_at} for envelope in envelopes])


PROJECTIONS = Projections(tables=(quality_issues,), appliers={"QualityIssueRaised": quality_issues_raised})
