"""The offline check of an audit bundle (audit/bundle.py, `fangpin audit check-bundle`): a bundle
built here by hand from sealed events and a signed checkpoint checks; each kind of change is found
and named; a file that is not a bundle is refused. No database."""
from __future__ import annotations

import copy
import uuid

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.bundle import (
    NotABundle, ProvenEvent, bundle_bytes, bundle_document, check_bundle, read_bundle,
)
from audit.timeline import StoredEvent
from audit.verify import ALTERED, CHECKPOINT, MISSING
from contracts.envelope import GENESIS_HASH, compute_hash
from runtime.integrity import (
    MerkleFrontier, event_leaf, inclusion_proof, next_checkpoint, public_key_hex, signing_key,
)

KEY = signing_key("44" * 32)
OTHER_KEY = signing_key("55" * 32)
AT = "2026-11-20T01:00:00.000000Z"


def _sealed(position: int, stream: str, stream_position: int, prev_hash: str, household: str | None,
            event_type: str = "HouseholdVerified", payload: dict | None = None) -> StoredEvent:
    envelope = {
        "event_id": str(uuid.UUID(int=position)), "event_type": event_type, "schema_version": 1,
        "stream_id": stream, "stream_position": stream_position, "household_id": household,
        "region_code": "410721001001", "occurred_at": AT, "recorded_at": AT, "producer": "screening",
        "actor": {"kind": "staff", "id": "gw-1", "role": "grid_worker", "region": "410721001001"},
        "correlation_id": str(uuid.UUID(int=1000 + position)), "causation_id": None, "traceparent": None,
        "prev_hash": prev_hash, "payload": payload or {"case_id": "c-1", "eligible": True, "amount": "6200.00"},
    }
    envelope["hash"] = compute_hash(envelope)
    return StoredEvent("screening", position, envelope)


def _store() -> list[StoredEvent]:
    """A store of screening: H1's case stream of three events, another household's stream between."""
    events = []
    heads: dict[str, tuple[int, str]] = {}
    for position, (stream, household) in enumerate(
            [("case-1", "H1"), ("case-2", "H2"), ("case-1", "H1"), ("case-2", "H2"), ("case-1", "H1"),
             ("case-3", "H2")], start=1):
        number, prev = heads.get(stream, (0, GENESIS_HASH))
        event = _sealed(position * 2, stream, number + 1, prev, household)  # positions with gaps, as a store has
        heads[stream] = (number + 1, event.envelope["hash"])
        events.append(event)
    return events


def _bundle(as_of: str | None = None) -> dict:
    store = _store()
    leaves = [event_leaf(e.global_position, e.envelope["hash"]) for e in store]
    frontier = MerkleFrontier()
    for leaf in leaves:
        frontier.append(leaf)
    checkpoint = next_checkpoint(None, frontier, store[-1].global_position + 1, service="screening",
                                 signed_at="2026-11-20T01:00:05.000000Z", key_id="1", private_key=KEY)
    proven = [ProvenEvent(e, i, inclusion_proof(leaves, i, len(leaves)))
              for i, e in enumerate(store) if e.envelope["household_id"] == "H1"]
    return bundle_document("H1", as_of, public_key_hex(KEY), {"screening": (checkpoint, proven)})


def _named(report) -> list[tuple]:
    return [(f.service, f.kind, f.stream_id, f.stream_position, f.global_position, f.event_id, f.checkpoint)
            for f in report.findings]


def _event(bundle: dict, n: int) -> dict:
    return bundle["services"][0]["events"][n]


def _reread(bundle: dict) -> dict:
    return read_bundle(bundle_bytes(bundle))


def test_a_bundle_as_exported_checks_with_its_own_key_and_with_the_key_given():
    bundle = _reread(_bundle())
    report = check_bundle(bundle, raw=bundle_bytes(bundle))
    assert report.intact, [str(f) for f in report.findings]
    assert report.services == [("screening", 3, 1)]
    assert "3 events of household H1 in 1 service, each proven in its service's signed checkpoint" in report.summary()
    assert "the bundle's own public key" in report.key_note() and "--public-key" in report.key_note()
    given_key = check_bundle(bundle, public_key_hex(KEY))
    assert given_key.intact and "the public key given" in given_key.key_note()


def test_another_key_given_is_named_and_the_checkpoints_fail_against_it():
    report = check_bundle(_bundle(), public_key_hex(OTHER_KEY))
    kinds = {(f.service, f.kind) for f in report.findings}
    assert ("bundle", "public key") in kinds and ("screening", CHECKPOINT) in kinds


def test_an_altered_payload_names_the_event_by_service_stream_position_and_id():
    bundle = _bundle()
    second = _event(bundle, 1)
    second["envelope"]["payload"]["eligible"] = False
    report = check_bundle(bundle)
    assert ("screening", ALTERED, "case-1", 2, second["global_position"], second["envelope"]["event_id"], None) \
        in _named(report)
    said = (f"screening: stream case-1 position 2, global position 6, event {second['envelope']['event_id']}: "
            "altered: its content does not give its hash")
    assert any(str(f).startswith(said) for f in report.findings), [str(f) for f in report.findings]


@pytest.mark.parametrize("change", ["hash", "proof", "leaf_index", "global_position"])
def test_a_changed_hash_proof_node_leaf_index_or_position_is_named_on_its_event(change):
    bundle = _bundle()
    event = _event(bundle, 2)
    if change == "hash":
        event["envelope"]["hash"] = "0" + event["envelope"]["hash"][1:]
    elif change == "proof":
        event["proof"][0] = "ff" + event["proof"][0][2:]
    else:
        event[change] += 1
    named = {(f.service, f.stream_id, f.stream_position, f.event_id) for f in check_bundle(bundle).findings}
    assert ("screening", "case-1", 3, event["envelope"]["event_id"]) in named


@pytest.mark.parametrize("field, value", [("root", "00" * 32), ("signature", "00" * 64), ("tree_size", 99),
                                          ("upto_position", 5)])
def test_a_changed_checkpoint_is_named_and_proves_nothing(field, value):
    bundle = _bundle()
    bundle["services"][0]["checkpoint"][field] = value
    report = check_bundle(bundle)
    assert {(f.service, f.kind, f.checkpoint) for f in report.findings} >= {("screening", CHECKPOINT, 1)}
    assert any("signature does not verify" in f.what for f in report.findings)


def test_an_event_taken_out_of_its_stream_leaves_a_hole_named_in_the_stream():
    bundle = _bundle()
    del bundle["services"][0]["events"][1]
    report = check_bundle(bundle)
    [hole] = [f for f in report.findings if f.kind == MISSING]
    assert (hole.stream_id, hole.stream_position) == ("case-1", 2) and "not in the bundle" in hole.what


def test_an_event_of_another_household_or_after_the_cut_is_named():
    bundle = _bundle(as_of="2026-11-20T09:00:00+08:00")
    assert check_bundle(bundle).intact
    bundle["household_id"] = "H2"
    report = check_bundle(bundle)
    assert any("names household H1, not the bundle's H2" in f.what for f in report.findings)
    early = _bundle(as_of="2026-11-20T08:59:59+08:00")  # a second before the events were recorded
    assert any("recorded after the bundle's as_of" in f.what for f in check_bundle(early).findings)


@pytest.mark.parametrize("raw, said", [
    (b"\x89PNG\r\n", "is not JSON"),
    (b"[1, 2, 3]", "is not a Fangpin audit bundle"),
    (b'{"format": "something-else", "version": 1}', "is not a Fangpin audit bundle"),
    (b'{"format": "fangpin-audit-bundle", "version": 2}', "format version 2; this fangpin reads version 1"),
    (b'{"format": "fangpin-audit-bundle", "version": 1, "household_id": "H1"}', "lacks"),
    (b'{"format": "fangpin-audit-bundle", "version": 1, "household_id": "H1", "as_of": "yesterday", '
     b'"public_key": "00", "services": [], "digest": "00"}', "as_of"),
])
def test_what_is_not_a_bundle_is_refused_in_one_line(raw, said):
    with pytest.raises(NotABundle) as refused:
        read_bundle(raw)
    assert said in str(refused.value) and "\n" not in str(refused.value)


_RAW = bundle_bytes(_bundle())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(_RAW) - 1), st.integers(1, 255))
def test_any_byte_of_the_file_changed_fails_the_check(at, xor):
    changed = bytearray(_RAW)
    changed[at] ^= xor
    try:
        bundle = read_bundle(bytes(changed))
    except NotABundle:
        return
    assert check_bundle(bundle, raw=bytes(changed)).findings, (at, _RAW[max(0, at - 30):at + 30])


def test_the_checker_does_not_change_the_bundle_it_is_given():
    bundle = _bundle()
    before = copy.deepcopy(bundle)
    check_bundle(bundle)
    assert bundle == before and orjson.loads(bundle_bytes(bundle)) == before
