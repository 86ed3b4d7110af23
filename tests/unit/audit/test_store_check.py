"""The decisions of `fangpin audit verify` (audit/verify.py StoreCheck), fed events and checkpoints
by hand: no database."""
import hashlib

from audit.verify import ALTERED, BROKEN_LINK, CHECKPOINT, MISSING, OUT_OF_ORDER, ROOT_DIFFERS, StoreCheck
from contracts.envelope import GENESIS_HASH
from runtime.integrity import MerkleFrontier, event_leaf, next_checkpoint, sign_checkpoint, signing_key

KEY = signing_key("33" * 32)


def _hash(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def _events(n: int) -> list[tuple]:
    """n events of one stream `s`, at global positions 1..n, chained."""
    return [(p, "s", p, _hash(p - 1) if p > 1 else GENESIS_HASH, _hash(p), _hash(p)) for p in range(1, n + 1)]


def _checkpoints(events: list[tuple], uptos: list[int]) -> list[dict]:
    frontier, made, taken = MerkleFrontier(), [], 0
    for upto in uptos:
        for event in events[taken:]:
            if event[0] > upto:
                break
            frontier.append(event_leaf(event[0], event[4]))
            taken += 1
        made.append(next_checkpoint(made[-1] if made else None, frontier, upto, service="intake",
                                    signed_at="2026-01-01T00:00:00.000000Z", key_id="1", private_key=KEY))
    return made


def _run(events, checkpoints=(), positions=None) -> list:
    check = StoreCheck("intake", KEY.public_key())
    for i, checkpoint in enumerate(checkpoints):
        check.checkpoint(checkpoint, (positions or {}).get(i, 10_000 + i))
    for global_position, stream_id, stream_position, _, stored_hash, recomputed in events:
        check.event(global_position, stream_id, stream_position, stored_hash, recomputed)
    for global_position, stream_id, stream_position, prev_hash, stored_hash, _ in sorted(
            events, key=lambda e: (e[1], e[2]), reverse=True):  # as LINKS_SQL reads them
        check.link(stream_id, stream_position, global_position, prev_hash, stored_hash)
    return check.finish().findings


def test_an_intact_store_with_its_checkpoints_has_no_findings():
    events = _events(10)
    assert _run(events, _checkpoints(events, [3, 7, 10])) == []


def test_each_broken_chain_is_named():
    events = _events(6)
    events[1] = events[1][:5] + ("f" * 64,)  # content does not give its hash
    events[2] = events[2][:3] + ("0" * 64,) + events[2][4:]  # prev_hash wrong
    del events[4]  # stream position 5 missing
    findings = _run(events)
    assert [(f.kind, f.stream_position, f.global_position) for f in findings] == [
        (ALTERED, 2, 2), (BROKEN_LINK, 3, 3), (MISSING, 5, None)]
    assert "stream position 5 missing (the stream goes on at global position 6)" in findings[2].what


def test_swapped_events_are_out_of_order_not_missing():
    events = _events(4)
    swapped = [events[0], (2,) + events[2][1:], (3,) + events[1][1:], events[3]]
    findings = _run(swapped)
    assert [(f.kind, f.stream_position, f.global_position) for f in findings] == [(OUT_OF_ORDER, 2, 3)]


def test_events_moved_are_each_named_after_the_first_stored_of_the_positions_above_them():
    events = _events(4)
    moved = [events[0]] + [(g,) + events[p - 1][1:] for g, p in ((2, 4), (3, 3), (4, 2))]  # stored as 1, 4, 3, 2
    findings = _run(moved)
    assert [(f.kind, f.stream_position, f.global_position) for f in findings] == [(OUT_OF_ORDER, 2, 4),
                                                                                 (OUT_OF_ORDER, 3, 3)]
    assert all(f.what.startswith("stored after stream position 4 (global position 2): ") for f in findings)


def test_a_rewrite_is_localised_to_its_checkpoints_range_and_the_next_range_is_judged_on_its_own():
    events = _events(12)
    checkpoints = _checkpoints(events, [4, 8, 12])
    rewritten = [e if e[0] != 6 else e[:4] + ("a" * 64, "a" * 64) for e in events]  # hash recomputed
    rewritten[6] = rewritten[6][:3] + ("a" * 64,) + rewritten[6][4:]  # and the chain fixed after it
    findings = _run(rewritten, checkpoints)
    assert [(f.kind, f.checkpoint) for f in findings] == [(ROOT_DIFFERS, 2)]
    assert "between global positions 5 and 8" in findings[0].what


def test_a_previous_root_that_is_not_the_root_before_a_gap_and_a_first_checkpoint_not_numbered_1():
    events = _events(9)
    first, second, third = _checkpoints(events, [3, 6, 9])
    forged = sign_checkpoint({k: v for k, v in second.items() if k != "signature"} | {"previous_root": "0" * 64}, KEY)
    findings = _run(events, [first, forged, third])
    assert [(f.kind, f.checkpoint) for f in findings] == [(CHECKPOINT, 2)]
    assert "previous_root is not the root of checkpoint 1" in findings[0].what
    assert [f.what for f in _run(events, [second, third]) if f.kind == CHECKPOINT] == [
        "the first checkpoint in the store is number 2: checkpoint 1 is missing (deleted?)"]


def test_a_checkpoint_with_a_bad_signature_is_named_and_not_relied_on():
    events = _events(6)
    first, second = _checkpoints(events, [3, 6])
    findings = _run(events, [first, {**second, "root": "1" * 64}])
    assert {(f.kind, f.checkpoint) for f in findings} == {(CHECKPOINT, 2)}  # no root compared with its root
    assert "signature does not verify" in findings[0].what


def test_a_payload_of_another_shape_in_the_checkpoints_stream_is_named_not_a_crash():
    events = _events(3)
    [checkpoint] = _checkpoints(events, [3])
    findings = _run(events, [[1, 2], {**checkpoint, "sequence": [1]}, {**checkpoint, "tree_size": "3"}])
    assert [f.what for f in findings] == ["its payload is not a checkpoint", "its sequence is not a whole number",
                                          "its tree_size is not a whole number"]
