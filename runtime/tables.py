"""SQLAlchemy views of the tables every service has (created by runtime/migrations/runtime_tables.py)."""
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

metadata = sa.MetaData()

events = sa.Table(
    "events",
    metadata,
    sa.Column("global_position", sa.BigInteger, primary_key=True),
    sa.Column("event_id", pg.UUID(as_uuid=True)),
    sa.Column("event_type", sa.Text),
    sa.Column("schema_version", sa.Integer),
    sa.Column("stream_id", sa.Text),
    sa.Column("stream_position", sa.Integer),
    sa.Column("household_id", sa.Text),
    sa.Column("region_code", sa.Text),
    sa.Column("occurred_at", sa.DateTime(timezone=True)),
    sa.Column("recorded_at", sa.DateTime(timezone=True)),
    sa.Column("producer", sa.Text),
    sa.Column("actor", pg.JSONB),
    sa.Column("correlation_id", pg.UUID(as_uuid=True)),
    sa.Column("causation_id", pg.UUID(as_uuid=True)),
    sa.Column("traceparent", sa.Text),
    sa.Column("prev_hash", sa.Text),
    sa.Column("hash", sa.Text),
    sa.Column("payload", pg.JSONB),
    sa.Column("txid", sa.BigInteger),
    # Routing, not content: the key of the topic partition an event about many households goes to.
    sa.Column("partition_key", sa.Text),
)

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
    sa.Column("topic", sa.Text),
    sa.Column("partition", sa.Integer),
    sa.Column("offset", sa.BigInteger),
    sa.Column("event_type", sa.Text),
    sa.Column("outcome", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("processed_at", sa.DateTime(timezone=True)),
    sa.Column("replayed_at", sa.DateTime(timezone=True)),  # a dead letter applied after all
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("principal", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("request_hash", sa.Text),
    sa.Column("status_code", sa.Integer),
    sa.Column("content_type", sa.Text),
    sa.Column("body", sa.LargeBinary),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("owner", sa.BigInteger),  # the process's liveness lock while the request is in progress
)

ENVELOPE_COLUMNS = [c for c in events.c if c.name not in ("global_position", "txid", "partition_key")]
