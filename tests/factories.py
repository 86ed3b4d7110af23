"""Valid test data: ID numbers with correct GB 11643 check digits, households, warnings."""
from __future__ import annotations

from services.intake.domain import id_check_digit

VILLAGE = "410721001001"
OTHER_TOWNSHIP_VILLAGE = "410721002001"


def id_number(sequence: int, region6: str = "410721", birth: str = "19800101") -> str:
    first17 = f"{region6}{birth}{sequence % 1000:03d}"
    return first17 + id_check_digit(first17)


def household(household_id: str, sequence: int, region_code: str = VILLAGE, **overrides) -> dict:
    body = {
        "household_id": household_id,
        "region_code": region_code,
        "group": "3",
        "poverty_status": "out_of_poverty",
        "grid_worker_id": "gw-1",
        "members": [
            {"id_number": id_number(sequence), "name": "张三", "relation": "head", "labor_capacity": "full"},
            {"id_number": id_number(sequence + 500, birth="20100305"), "name": "张小", "relation": "child",
             "labor_capacity": "none", "in_school": True},
        ],
    }
    body.update(overrides)
    return body


def warning(source_record_id: str, id_no: str, department: str = "civil_affairs", indicator: str = "new_dibao", **overrides) -> dict:
    body = {
        "department": department,
        "source_record_id": source_record_id,
        "id_number": id_no,
        "indicator": indicator,
        "observed_at": "2026-11-01T08:00:00+08:00",
        "detail": "new minimum-allowance case",
    }
    body.update(overrides)
    return body


def envelope(event_type: str = "TestHappened", payload: dict | None = None, stream_id: str = "test-1", position: int = 1,
             household_id: str = "H-test", prev_hash: str | None = None):
    """A well-formed, correctly hashed envelope for feeding a consumer directly."""
    from datetime import datetime, timezone

    from runtime.ids import new_id

    from contracts.envelope import GENESIS_HASH, Actor, EventEnvelope, compute_hash

    now = datetime.now(timezone.utc)
    draft = EventEnvelope(
        event_id=new_id(), event_type=event_type, stream_id=stream_id, stream_position=position,
        household_id=household_id, region_code=VILLAGE, occurred_at=now, recorded_at=now, producer="tests",
        actor=Actor(kind="system", id="tests"), correlation_id=new_id(), prev_hash=prev_hash or GENESIS_HASH,
        hash="", payload=payload or {},
    )
    return draft.model_copy(update={"hash": compute_hash(draft.model_dump())})
