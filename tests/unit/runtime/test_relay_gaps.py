"""The relay's rule at a gap in the store's positions (pure: rows and running transactions in, rows out)."""
import logging
from types import SimpleNamespace

import pytest

from runtime import relay as relay_module
from runtime.kafka import partition_of
from runtime.relay import PASS_PAYLOAD_CHARS, OutboxRelay, events_per_pass


def _relay() -> OutboxRelay:
    ctx = SimpleNamespace(name="intake", settings=SimpleNamespace(relay_batch_size=1000), topic="t")
    return OutboxRelay(ctx)


def _rows(*positions: int) -> list:
    return [SimpleNamespace(global_position=p) for p in positions]


def _positions(rows) -> list[int]:
    return [r.global_position for r in rows]


def test_contiguous_rows_are_all_ready():
    assert _positions(_relay()._up_to_open_gap(10, _rows(11, 12, 13), oldest_running=5, me=30)) == [11, 12, 13]


def test_a_gap_waits_for_every_transaction_older_than_the_pass_that_saw_it():
    relay = _relay()
    # Seen by the pass with id 30 while 7 ran: a holder of 12 took its id before 30.
    assert _positions(relay._up_to_open_gap(10, _rows(11, 13, 14), oldest_running=7, me=30)) == [11]
    # 29 may be the holder though no snapshot listed it (newer than every finished one): still waiting.
    assert _positions(relay._up_to_open_gap(11, _rows(13, 14), oldest_running=29, me=31)) == []
    # Every transaction older than 30 has ended; those running now started after the gap was seen.
    assert _positions(relay._up_to_open_gap(11, _rows(13, 14), oldest_running=30, me=32)) == [13, 14]


def test_every_gap_seen_in_one_read_is_stepped_over_after_one_wait():
    relay = _relay()
    assert _positions(relay._up_to_open_gap(10, _rows(11, 13, 15, 17), oldest_running=7, me=30)) == [11]
    # Nothing older than 30 runs: 12, 14 and 16 were all handed out before 17 was read.
    assert _positions(relay._up_to_open_gap(11, _rows(13, 15, 17, 19), oldest_running=35, me=40)) == [13, 15, 17]
    # 18 was seen by the pass with id 40 and 36 still runs: wait for it.
    assert _positions(relay._up_to_open_gap(17, _rows(19), oldest_running=36, me=41)) == []
    assert _positions(relay._up_to_open_gap(17, _rows(19), oldest_running=42, me=43)) == [19]


def test_a_gap_while_nothing_older_runs_is_stepped_over_at_once():
    # Nothing runs: the snapshot's xmin is its xmax, which no id assigned before the pass's own exceeds.
    assert _positions(_relay()._up_to_open_gap(0, _rows(2, 3), oldest_running=30, me=30)) == [2, 3]


def test_a_gap_filled_meanwhile_is_published_in_order():
    relay = _relay()
    assert _positions(relay._up_to_open_gap(10, _rows(11, 13), oldest_running=7, me=30)) == [11]
    assert _positions(relay._up_to_open_gap(11, _rows(12, 13), oldest_running=7, me=31)) == [12, 13]


def test_a_long_wait_at_a_gap_is_logged_once(monkeypatch, caplog):
    monkeypatch.setattr(relay_module, "GAP_PATIENCE_SECONDS", 0.0)
    relay = _relay()
    with caplog.at_level(logging.WARNING, logger="runtime.relay"):
        for n in range(3):
            assert relay._up_to_open_gap(10, _rows(12), oldest_running=7, me=30 + n) == []
    waits = [r for r in caplog.records if "waiting" in r.getMessage()]
    assert len(waits) == 1 and "position 11" in waits[0].getMessage() and "transaction 7" in waits[0].getMessage()


@pytest.mark.parametrize("key", [b"H0000001", b"410721100001-17", b""])
def test_partitions_match_the_kafka_default_partitioner(key):
    from aiokafka.partitioner import DefaultPartitioner

    assert partition_of(key, 6) == DefaultPartitioner()(key, list(range(6)), list(range(6)))


def _payloads(*sizes: int) -> list:
    return [SimpleNamespace(payload="x" * size) for size in sizes]


def test_a_pass_reads_as_many_events_as_carry_its_share_of_payload():
    assert events_per_pass(_payloads(200, 200), most=1000) == 1000  # small events: the configured most
    big = PASS_PAYLOAD_CHARS // 20
    assert events_per_pass(_payloads(big, big, big), most=1000) == 20  # batch events: fewer per pass
    assert events_per_pass(_payloads(PASS_PAYLOAD_CHARS * 3), most=1000) == 1  # never none
