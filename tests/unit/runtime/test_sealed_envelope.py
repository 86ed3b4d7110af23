"""runtime.eventstore.sealed_envelope: a stored row, taken as already validated, gives the envelope
validation would give, whether its actor is handed over as a model or read from the row."""
from datetime import datetime, timezone
from uuid import uuid4

import orjson

from contracts.envelope import Actor, EventEnvelope
from runtime.eventstore import sealed_envelope

AT = datetime(2026, 11, 20, 2, 0, 0, 123456, tzinfo=timezone.utc)
ROW = {"event_id": uuid4(), "event_type": "StaffRegistered", "schema_version": 2, "stream_id": "staff-s1",
       "stream_position": 3, "household_id": None, "region_code": "410721001001", "occurred_at": AT, "recorded_at": AT,
       "producer": "notifier", "actor": {"kind": "staff", "id": "county-1", "role": "county_officer", "region": "410721"},
       "correlation_id": uuid4(), "causation_id": None, "traceparent": None, "prev_hash": "0" * 64, "hash": "a" * 64,
       "payload": '{"staff_id":"s1","role":"village_cadre","region_code":"410721001001"}',
       "partition_key": "H1"}  # routing, as the store's sealer returns it: no field of the envelope


def test_a_sealed_row_gives_the_envelope_validation_gives_with_its_actor_handed_over_or_read():
    validated = EventEnvelope.model_validate({**{k: v for k, v in ROW.items() if k != "partition_key"},
                                              "payload": orjson.loads(ROW["payload"])})
    actor = Actor.model_construct(**ROW["actor"])
    for envelope in (sealed_envelope(ROW), sealed_envelope(ROW, actor)):
        assert envelope == validated
        assert envelope.model_fields_set == validated.model_fields_set
        assert envelope.model_dump() == validated.model_dump()
    assert sealed_envelope(ROW, actor).actor is actor  # made once for the events that share it
