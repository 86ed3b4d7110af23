"""Base class of every event payload, the registry of event types, and upcasters."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from pydantic import BaseModel, ConfigDict

from contracts.envelope import EventEnvelope

_PAYLOADS: dict[str, type["EventPayload"]] = {}
_UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


class EventPayload(BaseModel):
    """A payload knows its event type and schema version; subclasses register themselves.

    Money is `Decimal` (serialised as a string) and counts are ints, never floats, so that the
    canonical JSON behind the hash chain survives a round trip through PostgreSQL jsonb.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    producer: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "event_type" not in cls.__dict__:
            cls.event_type = cls.__name__
        _PAYLOADS[cls.event_type] = cls


@dataclass(frozen=True)
class DumpedPayload:
    """A payload given in the JSON-ready form `payload_class(...).model_dump(mode="json")` has, for
    bulk paths where building the models only to dump them costs more than the rest of the work.
    Whoever makes one answers for its shape (tests decode it with its class); consumers decode it
    like any other."""

    payload_class: type[EventPayload]
    data: dict[str, Any]

    @property
    def event_type(self) -> str:
        return self.payload_class.event_type

    @property
    def schema_version(self) -> int:
        return self.payload_class.schema_version

    def model_dump(self, mode: str = "json") -> dict[str, Any]:
        assert mode == "json", "a dumped payload exists in its JSON form only"
        return self.data


def upcaster(event_type: str, from_version: int):
    """Register a function that turns a payload of `from_version` into `from_version + 1`."""

    def register(fn: Callable[[dict[str, Any]], dict[str, Any]]):
        _UPCASTERS[(event_type, from_version)] = fn
        return fn

    return register


def payload_class(event_type: str) -> type[EventPayload] | None:
    return _PAYLOADS.get(event_type)


def all_payload_classes() -> dict[str, type[EventPayload]]:
    return dict(_PAYLOADS)


def current_payload(envelope: EventEnvelope) -> dict[str, Any]:
    """An envelope's payload in its JSON form at the current schema version (upcast from older
    versions first), not validated: for bulk paths, where a model per event costs more than the work."""
    cls = _PAYLOADS.get(envelope.event_type)
    if cls is None:
        raise LookupError(f"unknown event type {envelope.event_type!r}")
    data, version = envelope.payload, envelope.schema_version
    while version < cls.schema_version:
        step = _UPCASTERS.get((envelope.event_type, version))
        if step is None:
            raise LookupError(f"no upcaster for {envelope.event_type} v{version}")
        data, version = step(dict(data)), version + 1
    return data


def decode_payload(envelope: EventEnvelope) -> EventPayload:
    """The typed payload of an envelope, upcast from older schema versions first."""
    return _PAYLOADS[envelope.event_type].model_validate(current_payload(envelope))
