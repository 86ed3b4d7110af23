"""The tables every service has, as runtime/migrations/runtime_tables.py creates them (a test compares
the two: tests/integration/runtime/test_tables_match_migrations.py)."""
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

metadata = sa.MetaData()

events = sa.Table(
    "events",
    metadata,
    sa.Column("global_position", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("event_id", pg.UUID(as_uuid=True), nullable=False, unique=True),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("schema_version", sa.Integer, nullable=False),
    sa.Column("stream_id", sa.Text, nullable=False),
    sa.Column("stream_position", sa.Integer, nullable=False),
    sa.Column("household_id", sa.Text),
    sa.Column("region_code", sa.Text),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("producer", sa.Text, nullable=False),
    sa.Column("actor", pg.JSONB, nullable=False),
    sa.Column("correlation_id", pg.UUID(as_uuid=True), nullable=False),
    sa.Column("causation_id", pg.UUID(as_uuid=True)),
    sa.Column("traceparent", sa.Text),
    sa.Column("prev_hash", sa.Text, nullable=False),
    sa.Column("hash", sa.Text, nullable=False),
    sa.Column("payload", pg.JSONB, nullable=False),
    # The writing transaction: catch-up readers stay below the oldest one still running.
    sa.Column("txid", sa.BigInteger, nullable=False, server_default=sa.text("(pg_current_xact_id()::text)::bigint")),
    # Routing, not content: the key of the topic partition an event about many households goes to.
    sa.Column("partition_key", sa.Text),
    sa.UniqueConstraint("stream_id", "stream_position", name="events_stream_position_key"),
)
sa.Index("events_household", events.c.household_id)

relay_cursor = sa.Table(
    "relay_cursor",
    metadata,
    sa.Column("topic", sa.Text, primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),  # every event at or below it is on the broker
)

inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("event_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("partition", sa.Integer, nullable=False),
    sa.Column("offset", sa.BigInteger, nullable=False),
    sa.Column("event_type", sa.Text),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("replayed_at", sa.DateTime(timezone=True)),  # a dead letter applied after all
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("principal", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("request_hash", sa.Text, nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("content_type", sa.Text),
    sa.Column("body", sa.LargeBinary),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("owner", sa.BigInteger),  # the process's liveness lock while the request is in progress
)

ENVELOPE_COLUMNS = [c for c in events.c if c.name not in ("global_position", "txid", "partition_key")]
