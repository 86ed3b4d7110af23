"""The only code that writes notifier's read tables, from notifier's own events (runtime.projections).

`notifications` (each member of staff's inbox) is projected from NotificationSent and
NotificationRead. `staff` is a primary record: the name, e-mail and webhook of a person are in no
event (StaffRegistered names the pseudonymous id only), so the directory is kept, never rebuilt.
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.base import decode_payload
from contracts.envelope import EventEnvelope
from runtime.projections import Projections
from services.notifier.store import notifications, staff


async def notifications_sent(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    rows = []
    for envelope in envelopes:
        sent = decode_payload(envelope)
        rows.append({"notification_id": sent.notification_id, "staff_id": sent.staff_id, "kind": sent.kind,
                     "subject": sent.subject, "reference": sent.reference, "created_at": envelope.recorded_at})
    await session.execute(sa.insert(notifications), rows)


async def notifications_read(session: AsyncSession, envelopes: list[EventEnvelope]) -> None:
    for envelope in envelopes:
        read = decode_payload(envelope)
        await session.execute(sa.update(notifications).where(notifications.c.notification_id == read.notification_id)
                              .values(read_at=read.read_at))


PROJECTIONS = Projections(
    tables=(notifications,),
    appliers={"NotificationSent": notifications_sent, "NotificationRead": notifications_read},
    primary_records=(staff,),
)
