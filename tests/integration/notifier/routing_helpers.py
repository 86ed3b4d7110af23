"""What the notifier tests share: a directory of one village's staff up to its county, and an event
of another service handed to the notifier as its consumer would hand it."""
from __future__ import annotations

from datetime import datetime

from contracts.base import EventPayload
from contracts.envelope import Actor
from runtime.eventstore import EventMetadata
from runtime.service import run_command
from services.notifier import commands
from tests.factories import envelope

VILLAGE, TOWNSHIP, COUNTY = "410721001001", "410721001", "410721"
STAFF = {"cadre-1": ("village_cadre", VILLAGE), "cadre-2": ("village_cadre", VILLAGE),
         "township-1": ("township_officer", TOWNSHIP), "county-1": ("county_officer", COUNTY),
         "helper-1": ("helper", VILLAGE)}


async def register_directory(system, **addresses) -> dict[str, dict]:
    """STAFF in the directory; `addresses` gives some of them e-mail or webhook_url: {staff_id: {...}}.
    Returns each registration's answer (a webhook's secret is in it)."""
    notifier, county = system.clients["notifier"], system.token("county_officer", COUNTY)
    answers = {}
    for staff_id, (role, region) in STAFF.items():
        body = {"staff_id": staff_id, "name": staff_id, "role": role, "region_code": region, **addresses.get(staff_id, {})}
        response = await notifier.post("/v1/staff", headers=county, json=body)
        assert response.status_code == 201, response.text
        answers[staff_id] = response.json()
    return answers


async def consume(ctx, payload: EventPayload, household_id: str = "H-1", region_code: str = VILLAGE,
                  at: datetime | None = None):
    """The event as the consumer hands it to the handler (in a unit of work of its own); the envelope."""
    event = envelope(payload.event_type, payload.model_dump(mode="json"), stream_id=f"test-{household_id}",
                     household_id=household_id)
    event = event.model_copy(update={"region_code": region_code, "occurred_at": at or ctx.clock.now()})
    meta = EventMetadata(actor=Actor(kind="system", id="tests", role="consumer"))
    await run_command(ctx, meta, lambda uow: commands.route_events(uow, [event]))
    return event


def token_of(system, staff_id: str) -> dict:
    role, region = STAFF[staff_id]
    return system.token(role, region, sub=staff_id)


def sealed(payload: EventPayload, household_id: str | None, region_code: str = VILLAGE, producer: str | None = None):
    """A well-formed envelope of another service's event, hashed, as its relay would publish it."""
    from contracts.envelope import compute_hash

    event = envelope(payload.event_type, payload.model_dump(mode="json"), stream_id=f"test-{household_id}",
                     household_id=household_id)
    event = event.model_copy(update={"region_code": region_code, "producer": producer or payload.producer})
    return event.model_copy(update={"hash": compute_hash(event.model_dump())})


async def publish(settings, *events) -> None:
    """The events on their producers' topics of this test, keyed by household as the relays key them."""
    from aiokafka import AIOKafkaProducer

    from contracts.topics import events_topic
    from runtime.kafka import ensure_topics

    topics = {e.producer: events_topic(e.producer, settings.topic_prefix) for e in events}
    await ensure_topics(settings, list(topics.values()))
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(topics[event.producer], event.to_json(), key=(event.household_id or "-").encode())
    finally:
        await producer.stop()
