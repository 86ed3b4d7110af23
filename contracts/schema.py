"""Write the JSON Schema of every event payload and of the envelope: `fangpin schema DIR`."""
from __future__ import annotations

from pathlib import Path

import orjson

from contracts.catalog import all_payload_classes
from contracts.envelope import EventEnvelope


def write_schemas(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    documents = {"EventEnvelope": EventEnvelope.model_json_schema()}
    for event_type, cls in sorted(all_payload_classes().items()):
        schema = cls.model_json_schema()
        schema["x-event-type"] = event_type
        schema["x-schema-version"] = cls.schema_version
        schema["x-producer"] = cls.producer
        documents[event_type] = schema
    for name, schema in documents.items():
        path = out_dir / f"{name}.schema.json"
        path.write_bytes(orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        written.append(path)
    return written
