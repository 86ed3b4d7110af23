"""`fangpin audit verify`: every event of a service's store checked against its own hash, its
stream's chain and the service's signed checkpoints (runtime.integrity), each finding named.

- An event whose content does not give its hash: altered.
- A stream position skipped: missing; one that turns up after a later one: out of order (swapped);
  a prev_hash that is not the hash of the event before it in the stream: a broken link.
- A whole stream deleted, or an edit whose hashes were recomputed along its stream, leaves every
  chain whole; the Merkle root of the events up to a checkpoint's `upto_position` then differs from
  the one it signs, and the finding names the range of global positions, after the checkpoint
  before, that the change lies in. Checked from that checkpoint's own (signed) tree onwards, a
  later range is judged on its own events.
- Checkpoints: a bad signature, a gap in their sequence, a previous_root that is not the root before,
  and (given a witness's copy) one missing or different in the store.

The store is read in pages of one snapshot, in `global_position` order, straight from the driver
(no model per event): memory stays flat in the number of events (it holds one entry per stream).
StoreCheck decides (pure); verify_service reads.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Mapping

import asyncpg
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from contracts.audit import CheckpointSigned
from contracts.envelope import GENESIS_HASH, compute_hash, utc_spelling
from runtime.db import _asyncpg_dsn
from runtime.integrity import (
    CHECKPOINTS_STREAM, MerkleFrontier, checkpoint_frontier, checkpoint_message, checkpoint_problems, event_leaf,
    leaf_hash,
)
from runtime.tables import ENVELOPE_COLUMNS

PAGE_EVENTS = 2_000
YIELD_EVERY = 250  # rows checked between two turns of the event loop, which reads the next page meanwhile
PAGE_CHECKPOINTS = 200

# What each finding is about.
ALTERED = "altered"
MISSING = "missing"
OUT_OF_ORDER = "out of order"
BROKEN_LINK = "broken link"
ROOT_DIFFERS = "root differs"
CHECKPOINT = "checkpoint"
WITNESS = "witness"

# The columns every event hash covers, as EventStore._sealer spells them: ids and JSON as text (orjson
# reads them faster than the driver decodes them), times as the driver gives them (canonical_json
# spells them in UTC with microseconds).
_HASHED = [str(c.name) for c in ENVELOPE_COLUMNS if c.name != "hash"]  # plain str: orjson refuses quoted_name keys
_AS_TEXT = {"event_id", "correlation_id", "causation_id", "actor", "payload"}
SELECT_EVENTS = ("select global_position, hash, " + ", ".join(f"{n}::text" if n in _AS_TEXT else n for n in _HASHED)
                 + " from events")  # a row: global_position, hash, then the hashed columns (stored_envelope)
EVENTS_SQL = SELECT_EVENTS + " order by global_position"
_ACTOR, _PAYLOAD = 2 + _HASHED.index("actor"), 2 + _HASHED.index("payload")
_STREAM, _STREAM_POSITION, _PREV_HASH = (2 + _HASHED.index(n) for n in ("stream_id", "stream_position", "prev_hash"))
_MOMENTS = [(n, 2 + _HASHED.index(n)) for n in ("occurred_at", "recorded_at")]
CHECKPOINTS_SQL = ("select global_position, stream_position, payload::text from events"
                   f" where stream_id = '{CHECKPOINTS_STREAM}' and event_type = '{CheckpointSigned.event_type}'"
                   " order by stream_position")


class AuditError(Exception):
    """The check could not be made (no such database, no event store): what to do, in one line."""


@dataclass(frozen=True)
class Finding:
    service: str
    kind: str
    what: str
    stream_id: str | None = None
    stream_position: int | None = None
    global_position: int | None = None
    checkpoint: int | None = None  # its sequence number
    event_id: str | None = None  # an audit bundle's reader has no store to look the event up in

    def __str__(self) -> str:
        where = []
        if self.checkpoint is not None:
            where.append(f"checkpoint {self.checkpoint}")
        if self.stream_id is not None:
            where.append(f"stream {self.stream_id}" + (f" position {self.stream_position}"
                                                       if self.stream_position is not None else ""))
        if self.global_position is not None:
            where.append(f"global position {self.global_position}")
        if self.event_id is not None:
            where.append(f"event {self.event_id}")
        return f"{self.service}: {', '.join(where) or 'store'}: {self.kind}: {self.what}"


@dataclass
class VerifyReport:
    service: str
    events: int = 0
    streams: int = 0
    checkpoints: int = 0
    findings: list[Finding] = field(default_factory=list)
    checked_upto: int = 0  # the upto_position of the last checkpoint compared with the store (0: none)
    events_after_checkpoints: int = 0  # proven only per stream: no checkpoint covers them yet

    @property
    def intact(self) -> bool:
        return not self.findings

    @property
    def proven_per_stream_only(self) -> bool:
        return self.checkpoints == 0

    def summary(self) -> str:
        said = (f"{self.service}: {self.events:,} events checked in {self.streams:,} streams, "
                f"{self.checkpoints:,} checkpoints, {len(self.findings):,} findings")
        if self.proven_per_stream_only:
            said += (" — no checkpoints yet: integrity is proven only per stream (a whole stream deleted, or an edit "
                     "whose hashes were recomputed, cannot be seen until the service signs its first checkpoint)")
        elif self.events_after_checkpoints:
            said += (f" — {_events(self.events_after_checkpoints)} after position {self.checked_upto:,} "
                     f"{'is' if self.events_after_checkpoints == 1 else 'are'} proven only per stream until the next "
                     "checkpoint")
        return said


def _events(count: int) -> str:
    return f"{count:,} event{'s' if count != 1 else ''}"


def recomputed_hash(row: Any, spelled: dict[datetime, str] | None = None) -> str:
    """The hash the store's sealer gives a row of EVENTS_SQL (its columns after global_position and
    hash). `spelled` keeps the UTC spelling of each moment met: the events of one append share their
    times, and spelling a time costs more than the rest of the row (the sealer does the same)."""
    body = dict(zip(_HASHED, row[2:]))
    body["actor"] = orjson.loads(row[_ACTOR])
    body["payload"] = orjson.loads(row[_PAYLOAD])
    if spelled is not None:
        for name, at in _MOMENTS:
            moment = row[at]
            body[name] = spelled.get(moment) or spelled.setdefault(moment, utc_spelling(moment))
    return compute_hash(body)


def stored_envelope(row: Any) -> dict[str, Any]:
    """A row of SELECT_EVENTS as the envelope the store sealed, in its JSON form: ids and times as
    the hash spells them, actor and payload as JSON; `compute_hash` of it gives its `hash`."""
    envelope = dict(zip(_HASHED, row[2:]))
    envelope["actor"] = orjson.loads(row[_ACTOR])
    envelope["payload"] = orjson.loads(row[_PAYLOAD])
    for name, at in _MOMENTS:
        envelope[name] = utc_spelling(row[at])
    envelope["hash"] = row[1]
    return envelope


class StoreCheck:
    """What one service's store shows, fed its checkpoints (in their stream's order, ahead of the
    events they cover) and its events (in global order); `finish` gives the report."""

    def __init__(self, service: str, public_key: Ed25519PublicKey,
                 witnessed: Mapping[int, Mapping[str, Any]] | None = None) -> None:
        self.service, self.public_key = service, public_key
        self.report = VerifyReport(service)
        # stream -> (last stream position, its hash, its global position). O(streams) memory, by
        # design: a chain is checked link by link in one pass over the store.
        self.streams: dict[str, tuple[int, str, int]] = {}
        # stream -> [first, last, global position of the event after them] of stream positions
        # skipped: missing, unless they turn up later (out of order).
        self.skipped: dict[str, list[list[int]]] = {}
        self.frontier = MerkleFrontier()
        self.signed_size = 0  # the tree size of the last checkpoint compared
        self.upcoming: deque[dict[str, Any]] = deque()  # checkpoints taken in, not yet compared
        self.previous: Mapping[str, Any] | None = None  # the last checkpoint taken in
        self.witnessed = dict(witnessed or {})
        for sequence, copy in sorted(self.witnessed.items()):
            for problem in checkpoint_problems(copy, public_key):
                self._find(WITNESS, f"the witness's copy: {problem}", checkpoint=sequence)

    def _find(self, kind: str, what: str, **where) -> None:
        self.report.findings.append(Finding(self.service, kind, what, **where))

    # -- checkpoints ------------------------------------------------------------------------------

    def checkpoint(self, checkpoint: Mapping[str, Any], global_position: int) -> None:
        self.report.checkpoints += 1
        if not isinstance(checkpoint, Mapping):
            self._find(CHECKPOINT, "its payload is not a checkpoint", global_position=global_position)
            return
        sequence = checkpoint.get("sequence")
        sequence = sequence if isinstance(sequence, int) else None
        witnessed = self.witnessed.pop(sequence, None)
        if witnessed is not None and _signed(witnessed) != _signed(checkpoint):
            self._find(WITNESS, f"differs from the witness's copy (root {str(checkpoint.get('root'))[:16]}… in the "
                       f"store, {str(witnessed.get('root'))[:16]}… witnessed)", checkpoint=sequence,
                       global_position=global_position)
        problems = checkpoint_problems(checkpoint, self.public_key)
        if checkpoint.get("service", self.service) != self.service:
            problems.append(f"it is {checkpoint['service']}'s, not {self.service}'s")
        for problem in problems:
            self._find(CHECKPOINT, problem, checkpoint=sequence, global_position=global_position)
        if problems:
            return  # nothing it says can be relied on
        previous = self.previous
        if previous is not None:
            if sequence != previous["sequence"] + 1:
                what = (_missing_checkpoints(previous["sequence"] + 1, sequence - 1)
                        if sequence > previous["sequence"] + 1 else f"it comes after checkpoint {previous['sequence']}")
                self._find(CHECKPOINT, f"sequence goes from {previous['sequence']} to {sequence}: {what}",
                           checkpoint=sequence, global_position=global_position)
            elif checkpoint["previous_root"] != previous["root"]:  # (across a gap, the root before is not at hand)
                self._find(CHECKPOINT, f"its previous_root is not the root of checkpoint {previous['sequence']}",
                           checkpoint=sequence, global_position=global_position)
            if checkpoint["upto_position"] <= previous["upto_position"]:
                self._find(CHECKPOINT, f"covers up to position {checkpoint['upto_position']}, not beyond checkpoint "
                           f"{previous['sequence']}'s {previous['upto_position']}", checkpoint=sequence,
                           global_position=global_position)
                return
        elif sequence != 1:
            self._find(CHECKPOINT, f"the first checkpoint in the store is number {sequence}: "
                       f"{_missing_checkpoints(1, sequence - 1)}", checkpoint=sequence, global_position=global_position)
        if global_position <= checkpoint["upto_position"]:
            self._find(CHECKPOINT, f"stored at position {global_position}, inside the range it covers",
                       checkpoint=sequence, global_position=global_position)
        self.previous = checkpoint
        self.upcoming.append(checkpoint)

    def _compare(self, checkpoint: Mapping[str, Any]) -> None:
        """The tree of the events up to the checkpoint's position against the tree it signs."""
        since = self.report.checked_upto
        upto, sequence = checkpoint["upto_position"], checkpoint["sequence"]
        if self.frontier.root().hex() != checkpoint["root"]:
            signed_before = self.signed_size
            signed, found = checkpoint["tree_size"] - signed_before, self.frontier.size - signed_before
            count = f" ({signed:,} events signed there, {found:,} in the store)" if signed != found else ""
            self._find(ROOT_DIFFERS, f"the events up to global position {upto:,} do not give the root this checkpoint "
                       f"signs: an event between global positions {since + 1:,} and {upto:,} was deleted, added, "
                       f"moved or rewritten{count}", checkpoint=sequence)
            # Judge the next range on its own: go on from the tree the checkpoint signed.
            self.frontier = checkpoint_frontier(checkpoint)
        self.signed_size = checkpoint["tree_size"]
        self.report.checked_upto = upto
        self.report.events_after_checkpoints = 0

    # -- events -----------------------------------------------------------------------------------

    def event(self, global_position: int, stream_id: str, stream_position: int, prev_hash: str, stored_hash: str,
              recomputed: str) -> None:
        while self.upcoming and self.upcoming[0]["upto_position"] < global_position:
            self._compare(self.upcoming.popleft())
        report = self.report
        report.events += 1
        report.events_after_checkpoints += 1
        if recomputed != stored_hash:
            self._find(ALTERED, "its content does not give its hash (altered after it was stored)",
                       stream_id=stream_id, stream_position=stream_position, global_position=global_position)
        state = self.streams.get(stream_id)
        expected = state[0] + 1 if state else 1
        if stream_position == expected:
            if prev_hash != (state[1] if state else GENESIS_HASH):
                self._find(BROKEN_LINK, f"its prev_hash is not the hash of stream position {expected - 1}"
                           + (f" (global position {state[2]})" if state else ""),
                           stream_id=stream_id, stream_position=stream_position, global_position=global_position)
        elif stream_position > expected:
            self.skipped.setdefault(stream_id, []).append([expected, stream_position - 1, global_position])
        else:
            self._turned_up(stream_id, stream_position, global_position, state)
        if stream_position >= expected:
            self.streams[stream_id] = (stream_position, stored_hash, global_position)
        try:
            leaf = event_leaf(global_position, stored_hash)
        except ValueError:  # not even hex: altered (found above); any leaf but the signed one will do
            leaf = leaf_hash(global_position.to_bytes(8, "big") + stored_hash.encode())
        self.frontier.append(leaf)

    def _turned_up(self, stream_id: str, stream_position: int, global_position: int, state: tuple) -> None:
        """A stream position below the stream's last: one skipped before, or one stored twice."""
        for gap in self.skipped.get(stream_id, []):
            first, last, after = gap
            if first <= stream_position <= last:
                self._find(OUT_OF_ORDER, f"stored after stream position {last + 1} (global position {after}): "
                           "events out of their stream's order (swapped?)",
                           stream_id=stream_id, stream_position=stream_position, global_position=global_position)
                gaps = self.skipped[stream_id]
                gaps.remove(gap)
                gaps += [g for g in ([first, stream_position - 1, after], [stream_position + 1, last, after])
                         if g[0] <= g[1]]
                return
        self._find(OUT_OF_ORDER, f"stream position {stream_position} again, after {state[0]} (global position "
                   f"{state[2]})", stream_id=stream_id, stream_position=stream_position, global_position=global_position)

    def finish(self) -> VerifyReport:
        while self.upcoming:
            self._compare(self.upcoming.popleft())
        for stream_id, gaps in self.skipped.items():
            for first, last, after in gaps:
                self._find(MISSING, f"stream position{'s' if last > first else ''} "
                           f"{first if first == last else f'{first}–{last}'} missing (the stream goes on at global "
                           f"position {after})", stream_id=stream_id, stream_position=first)
        for sequence in sorted(self.witnessed):
            self._find(WITNESS, "witnessed, but not in the store (deleted?)", checkpoint=sequence)
        self.report.streams = len(self.streams)
        return self.report


async def connect(url: str, service: str) -> asyncpg.Connection:
    """A connection to a service's database (a SQLAlchemy or libpq URL)."""
    try:
        return await asyncpg.connect(_asyncpg_dsn(url))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise AuditError(f"{service}: its database does not answer ({type(exc).__name__}: {exc})") from exc


async def ensure_event_store(connection: asyncpg.Connection, service: str) -> None:
    if await connection.fetchval("select to_regclass('events')") is None:
        raise AuditError(f"{service}: its database has no event store (no table `events`): is it {service}'s?")


Progress = Callable[[int, int], None]  # (events done, events in the store)


async def verify_service(connection_or_url: asyncpg.Connection | str, service: str, public_key: Ed25519PublicKey,
                         progress: Progress | None = None,
                         witnessed: Mapping[int, Mapping[str, Any]] | None = None) -> VerifyReport:
    """Check every event of `service`'s store (a database URL, or an open asyncpg connection) in
    one snapshot; `witnessed` are an outside witness's copies of its checkpoints, by sequence."""
    if isinstance(connection_or_url, str):
        connection = await connect(connection_or_url, service)
        try:
            return await verify_service(connection, service, public_key, progress, witnessed)
        finally:
            await connection.close()
    connection = connection_or_url
    await ensure_event_store(connection, service)
    check = StoreCheck(service, public_key, witnessed)
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        total = await connection.fetchval("select count(*) from events")
        checkpoints = await connection.cursor(CHECKPOINTS_SQL)
        events = await connection.cursor(EVENTS_SQL)
        read_ahead, more_checkpoints = 0, True
        done, reported = 0, 0.0
        event = check.event
        rows = await events.fetch(PAGE_EVENTS)
        while rows:
            last = rows[-1][0]
            while more_checkpoints and read_ahead < last:  # the checkpoints due within this page, ahead of it
                found = await checkpoints.fetch(PAGE_CHECKPOINTS)
                more_checkpoints = len(found) == PAGE_CHECKPOINTS
                for position, _, payload in found:
                    checkpoint = orjson.loads(payload)
                    check.checkpoint(checkpoint, position)
                    read_ahead = max(read_ahead, _upto(checkpoint))
            # The next page is asked for now: the server reads it (its JSON written out as text costs it
            # as much as the hashing costs us) while this one is checked, yielding now and then.
            following = asyncio.ensure_future(events.fetch(PAGE_EVENTS))
            try:
                spelled: dict[datetime, str] = {}
                for start in range(0, len(rows), YIELD_EVERY):
                    await asyncio.sleep(0)
                    for row in rows[start:start + YIELD_EVERY]:
                        event(row[0], row[_STREAM], row[_STREAM_POSITION], row[_PREV_HASH], row[1],
                              recomputed_hash(row, spelled))
            except BaseException:
                following.cancel()
                raise
            done += len(rows)
            if progress is not None and time.monotonic() - reported > 0.2:
                progress(done, total)
                reported = time.monotonic()
            rows = await following
        while more_checkpoints:
            found = await checkpoints.fetch(PAGE_CHECKPOINTS)
            more_checkpoints = len(found) == PAGE_CHECKPOINTS
            for position, _, payload in found:
                check.checkpoint(orjson.loads(payload), position)
    if progress is not None:
        progress(done, total)
    return check.finish()


def _missing_checkpoints(first: int, last: int) -> str:
    return f"checkpoint {first} is missing (deleted?)" if first == last else f"checkpoints {first}–{last} are missing (deleted?)"


def _signed(checkpoint: Mapping[str, Any]) -> tuple[bytes, Any]:
    """What a witness's copy and the stored checkpoint must agree on: what is signed, and the signature."""
    return checkpoint_message(checkpoint), checkpoint.get("signature")


def _upto(checkpoint: Mapping[str, Any]) -> int:
    upto = checkpoint.get("upto_position")
    return upto if isinstance(upto, int) else 0
