"""runtime.projections.rebuild on a real PostgreSQL: the events of the store, as stored, handed to the
appliers page by page up to a position; grouped by applier where the projections allow it."""
import pytest

from contracts.envelope import Actor
from contracts.intake import WarningUnmatched
from contracts.notifier import NotificationSent, StaffRegistered
from runtime import projections as projections_module
from runtime.eventstore import EventMetadata, EventStore, NewEvent, StreamHead
from runtime.projections import Projections, rebuild

pytestmark = pytest.mark.integration
META = EventMetadata(actor=Actor(kind="system", id="tests"))


def staff(name: str) -> NewEvent:
    return NewEvent(StaffRegistered(staff_id=name, role="village_cadre", region_code="410721001001"))


def sent(name: str) -> NewEvent:
    return NewEvent(NotificationSent(notification_id=name, staff_id="s", kind="task", subject="-", reference="-"))


def unmatched(name: str) -> NewEvent:
    return NewEvent(WarningUnmatched(warning_id=name, department="civil_affairs", source_record_id=name,
                                     indicator="new_dibao"))


async def stored_in_order(ctx, *events: tuple[str, NewEvent]) -> list:
    """The events appended, one stream each (named as given), in this order; then as the store reads them."""
    async with ctx.sessions() as session, session.begin():
        store = EventStore(session, ctx.name, ctx.clock)
        await store.append_many([(StreamHead(stream), [event]) for stream, event in events], META)
    async with ctx.sessions() as session:
        return [envelope for _, envelope in await EventStore(session, ctx.name, ctx.clock).read_all()]


def recording(calls: list, name: str):
    async def apply(session, envelopes):
        calls.append((name, envelopes))
    return apply


async def test_a_rebuild_may_apply_each_page_grouped_by_applier_in_their_declared_order(service_context, monkeypatch):
    ctx = await service_context()
    stored = await stored_in_order(ctx, ("a", staff("a")), ("b", sent("b")), ("c", staff("c")), ("d", sent("d")),
                                   ("e", staff("e")))
    monkeypatch.setattr(projections_module, "REBUILD_BATCH", 3)
    calls: list = []
    grouped = Projections(appliers={"NotificationSent": recording(calls, "sent"), "StaffRegistered": recording(calls, "staff")},
                          rebuild_grouped=True)
    async with ctx.sessions() as session:
        read = await rebuild(session, grouped, upto_position=4)
    assert read == 4
    # pages of three: a b c, then d (e is beyond position 4)
    assert [(name, [e.stream_id for e in envelopes]) for name, envelopes in calls] == [
        ("sent", ["b"]), ("staff", ["a", "c"]), ("sent", ["d"])]
    handed = {e.stream_id: e for _, envelopes in calls for e in envelopes}
    assert [handed[e.stream_id] for e in stored[:4]] == stored[:4]  # each envelope as the store holds it


async def test_events_no_applier_takes_do_not_split_a_run_of_one_type(service_context):
    ctx = await service_context()
    await stored_in_order(ctx, ("a", staff("a")), ("w", unmatched("w")), ("c", staff("c")), ("b", sent("b")))
    calls: list = []
    in_store_order = Projections(appliers={"NotificationSent": recording(calls, "sent"),
                                           "StaffRegistered": recording(calls, "staff")})
    async with ctx.sessions() as session:
        assert await rebuild(session, in_store_order) == 4
    assert [(name, [e.stream_id for e in envelopes]) for name, envelopes in calls] == [("staff", ["a", "c"]), ("sent", ["b"])]
