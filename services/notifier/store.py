"""notifier's tables and queries. (`notifications` is the staff inbox; the runtime's `inbox`
table is the consumer's record of events already applied.)

Projected from notifier's events: `notifications`, `tasks`. Mirrored from assistance's: `household_helpers`.
Primary records (in no event, never rebuilt): `staff` (names, addresses, the inbox counter),
`preferences`, `subscriptions` (their secrets) and the delivery ledger `deliveries`, which is written
where a notification is decided, never by a projection: a rebuild or a replay re-applies events to
the tables above and so delivers nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from runtime.bulk import copy_rows, upsert_rows
from runtime.db import predicate
from runtime.signals import NOTIFY_PAYLOAD_BYTES, notify


if TYPE_CHECKING:
    from services.notifier.domain.delivery_times import QuietHours

metadata = sa.MetaData()

staff = sa.Table(
    "staff", metadata,
    sa.Column("staff_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("region_code", sa.Text, nullable=False),
    sa.Column("email", sa.Text),
    sa.Column("webhook_url", sa.Text),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # The last inbox_seq handed out; its row lock orders a person's notifications as they commit.
    sa.Column("inbox_seq", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("webhook_secret", sa.Text),  # signs what goes to webhook_url (Standard Webhooks), told once
)

notifications = sa.Table(
    "notifications", metadata,
    sa.Column("notification_id", sa.Text, primary_key=True),
    sa.Column("staff_id", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("reference", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("read_at", sa.DateTime(timezone=True)),
    sa.Column("subject_en", sa.Text, nullable=False, server_default=""),
    sa.Column("task_id", sa.Text),
    sa.Column("urgent", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("due_at", sa.DateTime(timezone=True)),
    sa.Column("inbox_seq", sa.BigInteger),
    sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
)

tasks = sa.Table(
    "tasks", metadata,
    sa.Column("task_id", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("reference", sa.Text, nullable=False),
    sa.Column("region_code", sa.Text, nullable=False),
    sa.Column("level", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("due_at", sa.DateTime(timezone=True)),
    sa.Column("state", sa.Text, nullable=False),  # open, acknowledged, completed
    sa.Column("escalated_to", sa.Text),  # the highest level it reached
    sa.Column("schedule_at", sa.ARRAY(sa.DateTime(timezone=True)), nullable=False),  # each step's time
    sa.Column("next_action_at", sa.DateTime(timezone=True)),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("closed_at", sa.DateTime(timezone=True)),
)

household_helpers = sa.Table(
    "household_helpers", metadata,
    sa.Column("household_id", sa.Text, primary_key=True),
    sa.Column("helper_id", sa.Text, nullable=False),
)

preferences = sa.Table(
    "preferences", metadata,
    sa.Column("staff_id", sa.Text, primary_key=True),
    sa.Column("channels", sa.ARRAY(sa.Text), nullable=False),  # besides the inbox: webhook, email
    sa.Column("quiet_hours", sa.Text),  # "22:00-07:00", local time
    sa.Column("digest", sa.Boolean, nullable=False),  # what is not urgent goes in the daily digest
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

subscriptions = sa.Table(
    "subscriptions", metadata,
    sa.Column("subscription_id", sa.Text, primary_key=True),
    sa.Column("owner", sa.Text, nullable=False),  # the principal who made it
    sa.Column("department", sa.Text),  # a department system's: its department's warnings come to it
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("event_types", sa.ARRAY(sa.Text), nullable=False),
    sa.Column("region_prefix", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("disabled_reason", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# The delivery ledger: one row per notification and channel (and per subscriber of an event).
# status: queued → sent (a try under way) → delivered → read → acknowledged; failed (tries left:
# next_attempt_at) → dead (given up: the dead-letter list). The inbox's row is delivered at once.
deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("delivery_id", sa.Text, primary_key=True),  # also the webhook-id receivers deduplicate on
    sa.Column("notification_id", sa.Text),
    sa.Column("channel", sa.Text, nullable=False),  # inbox, webhook, email
    sa.Column("recipient", sa.Text, nullable=False),  # staff:<id>, subscription:<id>
    sa.Column("address", sa.Text),  # the URL or e-mail address it goes to
    sa.Column("event_type", sa.Text, nullable=False),  # the webhook's `type`
    sa.Column("body", sa.Text),  # what is sent, the same on every try
    sa.Column("urgent", sa.Boolean, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Column("detail", sa.Text),  # the last try's outcome
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    sa.Column("read_at", sa.DateTime(timezone=True)),
    sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
    sa.Column("failed_at", sa.DateTime(timezone=True)),
    sa.Column("dead_at", sa.DateTime(timezone=True)),
)

# Indexes, as the migrations make them (tests/integration/runtime/test_tables_match_migrations.py).
sa.Index("staff_region", staff.c.region_code)
sa.Index("notifications_staff", notifications.c.staff_id, notifications.c.notification_id)
sa.Index("notifications_inbox_seq", notifications.c.staff_id, notifications.c.inbox_seq)
sa.Index("tasks_reference", tasks.c.reference, postgresql_where=tasks.c.state == "open")
sa.Index("tasks_next_action", tasks.c.next_action_at, postgresql_where=tasks.c.state == "open")
sa.Index("deliveries_due", deliveries.c.next_attempt_at, postgresql_where=deliveries.c.status.in_(("queued", "failed", "sent")))
sa.Index("deliveries_notification", deliveries.c.notification_id)
sa.Index("deliveries_dead", deliveries.c.dead_at, postgresql_where=deliveries.c.status == "dead")


async def save_staff(session: AsyncSession, row: dict) -> None:
    await upsert_rows(session, staff, [row], key=["staff_id"])


async def notification_of(session: AsyncSession, staff_id: str, notification_id: str):
    """The notification if it is in this member of staff's inbox, else None."""
    return (await session.execute(sa.select(notifications).where(
        notifications.c.notification_id == notification_id, notifications.c.staff_id == staff_id))).first()


@dataclass(frozen=True)
class InboxFilter:
    unread: bool = False
    unacknowledged: bool = False
    kind: str | None = None
    reference: str | None = None


async def inbox_page(session: AsyncSession, staff_id: str, only: InboxFilter, after: str | None, limit: int):
    query = sa.select(notifications).where(notifications.c.staff_id == staff_id)
    if only.unread:
        query = query.where(notifications.c.read_at.is_(None))
    if only.unacknowledged:
        query = query.where(notifications.c.acknowledged_at.is_(None))
    if only.kind:
        query = query.where(notifications.c.kind == only.kind)
    if only.reference:
        query = query.where(notifications.c.reference == only.reference)
    if after:
        query = query.where(notifications.c.notification_id < after)
    return (await session.execute(query.order_by(notifications.c.notification_id.desc()).limit(limit))).all()


async def unread_count(session: AsyncSession, staff_id: str) -> int:
    return await session.scalar(sa.select(sa.func.count()).where(notifications.c.staff_id == staff_id,
                                                                 notifications.c.read_at.is_(None)))


async def last_inbox_seq(session: AsyncSession, staff_id: str) -> int:
    return await session.scalar(sa.select(sa.func.coalesce(sa.func.max(notifications.c.inbox_seq), 0))
                                .where(notifications.c.staff_id == staff_id))


async def inbox_after(session: AsyncSession, staff_id: str, after: int, limit: int):
    """The person's notifications numbered above `after`, in their order (the live stream)."""
    return (await session.execute(sa.select(notifications).where(notifications.c.staff_id == staff_id,
                                                                 notifications.c.inbox_seq > after)
                                  .order_by(notifications.c.inbox_seq).limit(limit))).all()


async def staff_in_regions(session: AsyncSession, regions: set[str]) -> dict[tuple[str, str], list[str]]:
    """The staff whose region is exactly one of `regions` (villages' cadres, townships' officers, …),
    by (role, region), in one query."""
    rows = await session.execute(sa.select(staff.c.staff_id, staff.c.role, staff.c.region_code)
                                 .where(staff.c.region_code.in_(sorted(regions))).order_by(staff.c.staff_id))
    found: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        found.setdefault((r.role, r.region_code), []).append(r.staff_id)
    return found


async def helpers_of(session: AsyncSession, household_ids: list[str]) -> dict[str, str]:
    """The households' helpers who are in the directory."""
    rows = await session.execute(sa.select(household_helpers.c.household_id, household_helpers.c.helper_id)
                                 .join(staff, staff.c.staff_id == household_helpers.c.helper_id)
                                 .where(household_helpers.c.household_id.in_(household_ids)))
    return {r.household_id: r.helper_id for r in rows}


@dataclass(frozen=True)
class Person:
    """A member of staff as the ledger needs them: addresses and preferences."""

    staff_id: str
    email: str | None
    webhook_url: str | None
    channels: tuple[str, ...]
    digest: bool
    quiet_hours: "QuietHours | None"


DEFAULT_CHANNELS = ("webhook", "email")  # each where the person has an address; the inbox always
PREFERENCE_COLUMNS = (preferences.c.channels, preferences.c.digest, preferences.c.quiet_hours)


def _person(row) -> Person:
    from services.notifier.domain.delivery_times import QuietHours

    return Person(row.staff_id, row.email, row.webhook_url,
                  tuple(row.channels) if row.channels is not None else DEFAULT_CHANNELS,
                  row.digest if row.digest is not None else True,
                  QuietHours.parse(row.quiet_hours) if row.quiet_hours else None)


def _preference(column: sa.Column, of: sa.Column):
    return sa.select(column).where(preferences.c.staff_id == of).scalar_subquery().label(column.name)


async def people(session: AsyncSession, staff_ids: list[str]) -> dict[str, Person]:
    rows = await session.execute(sa.select(staff.c.staff_id, staff.c.email, staff.c.webhook_url,
                                           *(_preference(c, staff.c.staff_id) for c in PREFERENCE_COLUMNS))
                                 .where(staff.c.staff_id.in_(set(staff_ids))))
    return {r.staff_id: _person(r) for r in rows}


async def number_in_inboxes(session: AsyncSession, counts: dict[str, int]) -> dict[str, tuple[int, int, Person]]:
    """Places in people's inboxes, `counts[staff_id]` each, with what their deliveries need to know of
    them, in one statement: staff_id -> (the last number taken, how many, the person); theirs are
    the numbers up to it. The rows are locked in one order (no deadlock between two transactions that
    tell the same people) and held to the commit: a transaction that numbers after another commits
    after it, so a reader who has seen number n has seen every number below it."""
    wanted = sa.func.unnest(sa.cast(list(counts), sa.ARRAY(sa.Text)), sa.cast(list(counts.values()), sa.ARRAY(sa.Integer))) \
        .table_valued("staff_id", "n").render_derived(name="wanted")
    locked = (sa.select(staff.c.staff_id, wanted.c.n).join(wanted, wanted.c.staff_id == staff.c.staff_id)
              .order_by(staff.c.staff_id).with_for_update(of=staff).subquery("locked"))
    rows = await session.execute(
        sa.update(staff).where(staff.c.staff_id == locked.c.staff_id).values(inbox_seq=staff.c.inbox_seq + locked.c.n)
        .returning(staff.c.staff_id, staff.c.inbox_seq, locked.c.n, staff.c.email, staff.c.webhook_url,
                   *(_preference(c, staff.c.staff_id) for c in PREFERENCE_COLUMNS)))
    return {r.staff_id: (r.inbox_seq, r.n, _person(r)) for r in rows}


async def queue_deliveries(session: AsyncSession, rows: list[dict]) -> None:
    await copy_rows(session, deliveries, rows)


async def mark_inbox_delivery(session: AsyncSession, notification_id: str, status: str, at: datetime) -> None:
    """The inbox's ledger row read or acknowledged (acknowledged implies read)."""
    values = {"status": status, f"{status}_at": at}
    if status == "acknowledged":
        values["read_at"] = sa.func.coalesce(deliveries.c.read_at, at)
    await session.execute(sa.update(deliveries).where(deliveries.c.notification_id == notification_id,
                                                      deliveries.c.channel == "inbox").values(**values))


async def subscriptions_to(session: AsyncSession, event_types: list[str]):
    """The active subscriptions to any of `event_types` (the caller matches each event's region and department)."""
    return (await session.execute(sa.select(subscriptions).where(
        subscriptions.c.active, subscriptions.c.event_types.op("&&")(sa.cast(event_types, sa.ARRAY(sa.Text))))
        .order_by(subscriptions.c.subscription_id))).all()


async def open_tasks_of(session: AsyncSession, references: list[str]) -> dict[str, list[str]]:
    """The open tasks of each reference."""
    rows = await session.execute(sa.select(tasks.c.reference, tasks.c.task_id)
                                 .where(tasks.c.reference == sa.any_(sa.cast(references, sa.ARRAY(sa.Text))),
                                        tasks.c.state == predicate("open"))
                                 .order_by(tasks.c.task_id))
    found: dict[str, list[str]] = {}
    for r in rows:
        found.setdefault(r.reference, []).append(r.task_id)
    return found


async def tasks_with_steps_due(session: AsyncSession, now: datetime, limit: int = 500) -> list[str]:
    rows = await session.execute(sa.select(tasks.c.task_id).where(tasks.c.state == predicate("open"), tasks.c.next_action_at <= now)
                                 .order_by(tasks.c.next_action_at).limit(limit))
    return list(rows.scalars())


async def webhook_secret_of(session: AsyncSession, staff_id: str) -> str | None:
    return await session.scalar(sa.select(staff.c.webhook_secret).where(staff.c.staff_id == staff_id))


LEASE_STATUSES = ("queued", "failed", "sent")  # "sent" whose lease ran out: its process died mid-try


async def claim_due(session: AsyncSession, now: datetime, lease_until: datetime, limit: int):
    """Webhooks and e-mails whose time has come, taken for one try (status sent, leased): rows another
    dispatcher holds are skipped, and a try whose process died is taken again when its lease ends."""
    due = (sa.select(deliveries.c.delivery_id)
           .where(deliveries.c.status.in_(LEASE_STATUSES), deliveries.c.next_attempt_at <= now,
                  sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now))
           .order_by(deliveries.c.next_attempt_at).limit(limit).with_for_update(skip_locked=True))
    claimed = (sa.update(deliveries).where(deliveries.c.delivery_id.in_(due.scalar_subquery()))
               .values(status="sent", sent_at=now, attempts=deliveries.c.attempts + 1, lease_until=lease_until)
               .returning(deliveries).cte("claimed"))
    secret = sa.func.coalesce(
        sa.select(subscriptions.c.secret).where(claimed.c.recipient == "subscription:" + subscriptions.c.subscription_id)
        .scalar_subquery(),
        sa.select(staff.c.webhook_secret).where(claimed.c.recipient == "staff:" + staff.c.staff_id).scalar_subquery())
    return (await session.execute(sa.select(claimed, secret.label("secret")))).all()


async def disable_endpoint(session: AsyncSession, recipient: str, reason: str, at: datetime) -> None:
    """An endpoint that answered 410 Gone: a subscription is disabled; a person's webhook channel is
    switched off (their inbox and e-mail go on)."""
    kind, _, ident = recipient.partition(":")
    if kind == "subscription":
        await session.execute(sa.update(subscriptions).where(subscriptions.c.subscription_id == ident)
                              .values(active=False, disabled_reason=reason))
    else:
        stmt = pg_insert(preferences).values(staff_id=ident, channels=["email"], digest=True, updated_at=at)
        await session.execute(stmt.on_conflict_do_update(index_elements=["staff_id"], set_={
            "channels": sa.func.array_remove(preferences.c.channels, "webhook"), "updated_at": at}))


async def deliveries_page(session: AsyncSession, status: str, after: str | None, limit: int):
    query = sa.select(deliveries).where(deliveries.c.status == status)
    if after:
        query = query.where(deliveries.c.delivery_id > after)
    return (await session.execute(query.order_by(deliveries.c.delivery_id).limit(limit))).all()


async def deliveries_of(session: AsyncSession, notification_id: str):
    return (await session.execute(sa.select(deliveries).where(deliveries.c.notification_id == notification_id)
                                  .order_by(deliveries.c.channel))).all()


async def delivery(session: AsyncSession, delivery_id: str):
    return (await session.execute(sa.select(deliveries).where(deliveries.c.delivery_id == delivery_id)
                                  .with_for_update())).first()


async def requeue(session: AsyncSession, delivery_id: str, now: datetime):
    return (await session.execute(sa.update(deliveries).where(deliveries.c.delivery_id == delivery_id)
                                  .values(status="queued", attempts=0, next_attempt_at=now, dead_at=None,
                                          lease_until=None).returning(deliveries))).first()


async def save_subscription(session: AsyncSession, row: dict) -> None:
    await session.execute(sa.insert(subscriptions).values(**row))


async def subscriptions_of(session: AsyncSession, owner: str):
    return (await session.execute(sa.select(subscriptions).where(subscriptions.c.owner == owner)
                                  .order_by(subscriptions.c.subscription_id))).all()


async def delete_subscription(session: AsyncSession, subscription_id: str, owner: str) -> bool:
    deleted = await session.execute(sa.delete(subscriptions).where(subscriptions.c.subscription_id == subscription_id,
                                                                   subscriptions.c.owner == owner))
    return deleted.rowcount > 0


async def save_preferences(session: AsyncSession, row: dict) -> None:
    await upsert_rows(session, preferences, [row], key=["staff_id"])


INBOX_CHANNEL = "fangpin_inbox"  # LISTEN/NOTIFY: whose inbox grew (services/notifier/live.py)


async def signal_inboxes(session: AsyncSession, staff_ids: list[str]) -> None:
    """Wakes the live streams of these people when (and only if) the transaction commits."""
    chunk: list[str] = []
    for staff_id in dict.fromkeys(staff_ids):
        if chunk and sum(len(s) + 1 for s in chunk) + len(staff_id) > NOTIFY_PAYLOAD_BYTES:
            await notify(session, INBOX_CHANNEL, ",".join(chunk))
            chunk = []
        chunk.append(staff_id)
    if chunk:
        await notify(session, INBOX_CHANNEL, ",".join(chunk))
