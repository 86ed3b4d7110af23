"""`fangpin audit verify`: every event of a service's store checked against its own hash, its
stream's chain and the service's signed checkpoints (runtime.integrity), each finding named.

- An event whose content does not give its hash: altered.
- A stream position skipped: missing; one stored after a later one: out of order (swapped); a
  prev_hash that is not the hash of the event before it in the stream: a broken link.
- A whole stream deleted, or an edit whose hashes were recomputed along its stream, leaves every
  chain whole; the Merkle root of the events up to a checkpoint's `upto_position` then differs from
  the one it signs, and the finding names the range of global positions, after the checkpoint
  before, that the change lies in. Checked from that checkpoint's own (signed) tree onwards, a
  later range is judged on its own events.
- Checkpoints: a bad signature, a gap in their sequence, a previous_root that is not the root before,
  and (given a witness's copy) one missing or different in the store.

The store is read twice, in pages of one snapshot straight from the driver (no model per event):
in `global_position` order for the hashes, the tree and the checkpoints, then in stream order for
the chains, which then need only the event before in the same stream. Memory stays flat in the
number of events and of streams: a page, the tree's frontier, the findings.
StoreCheck decides (pure); verify_service reads.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Awaitable, Callable, Mapping

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
_STREAM, _STREAM_POSITION = (2 + _HASHED.index(n) for n in ("stream_id", "stream_position"))
_MOMENTS = [(n, 2 + _HASHED.index(n)) for n in ("occurred_at", "recorded_at")]
CHECKPOINTS_SQL = ("select global_position, stream_position, payload::text from events"
                   f" where stream_id = '{CHECKPOINTS_STREAM}' and event_type = '{CheckpointSigned.event_type}'"
                   " order by stream_position")
# What the chains are checked on, each stream from its last position down: the first stored of the
# events above a position is then known when it comes. The server reads events_stream_position_key
# backward or sorts in work_mem and temp files: either, on a million events, as fast as the rows come.
LINKS_SQL = ("select stream_id, stream_position, global_position, prev_hash, hash from events"
             " order by stream_id desc, stream_position desc")


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
    """What one service's store shows, fed twice; `finish` gives the report.
    - In global order: its checkpoints (`checkpoint`, in their stream's order, ahead of the events
      they cover) and its events (`event`): each event's hash, and the tree against the checkpoints.
    - Then each stream from its last position down (`link`, as LINKS_SQL reads them): the chains.
    Neither keeps anything per stream: the second holds only the event read before, in its stream."""

    def __init__(self, service: str, public_key: Ed25519PublicKey,
                 witnessed: Mapping[int, Mapping[str, Any]] | None = None) -> None:
        self.service, self.public_key = service, public_key
        self.report = VerifyReport(service)
        # The chains: the event read before (the stream's lowest so far: stream, position, global
        # position, prev_hash), and (global position, stream position) of the first stored of the
        # events above it in its stream.
        self.above: tuple[str, int, int, str] | None = None
        self.earliest_above: tuple[int, int] | None = None
        self.chain_findings: list[Finding] = []  # found from the top of each stream down; named in stream order
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

    # -- events, in global order -------------------------------------------------------------------

    def event(self, global_position: int, stream_id: str, stream_position: int, stored_hash: str,
              recomputed: str) -> None:
        while self.upcoming and self.upcoming[0]["upto_position"] < global_position:
            self._compare(self.upcoming.popleft())
        report = self.report
        report.events += 1
        report.events_after_checkpoints += 1
        if recomputed != stored_hash:
            self._find(ALTERED, "its content does not give its hash (altered after it was stored)",
                       stream_id=stream_id, stream_position=stream_position, global_position=global_position)
        try:
            leaf = event_leaf(global_position, stored_hash)
        except ValueError:  # not even hex: altered (found above); any leaf but the signed one will do
            leaf = leaf_hash(global_position.to_bytes(8, "big") + stored_hash.encode())
        self.frontier.append(leaf)

    # -- the chains, each stream from its last position down ---------------------------------------

    def link(self, stream_id: str, stream_position: int, global_position: int, prev_hash: str,
             stored_hash: str) -> None:
        """The next event of LINKS_SQL: the one below the event before, or the last of the next stream."""
        above = self.above
        if above is None or above[0] != stream_id:
            self._stream_begins()
            self.report.streams += 1
            self.above, self.earliest_above = (stream_id, stream_position, global_position, prev_hash), None
            return
        _, position, at, linked_to = above
        earliest = self.earliest_above
        if earliest is None or at < earliest[0]:
            earliest = self.earliest_above = (at, position)  # now: of every event above this one
        if stream_position == position:  # twice: only with events_stream_position_key dropped
            self._chain(OUT_OF_ORDER, f"stream position {stream_position} again (also at global position {at})",
                        stream_id, stream_position, global_position)
            self.earliest_above = min(earliest, (global_position, stream_position))
            return
        if global_position > earliest[0]:
            self._chain(OUT_OF_ORDER, f"stored after stream position {earliest[1]} (global position {earliest[0]}): "
                        "events out of their stream's order (swapped?)", stream_id, stream_position, global_position)
        if stream_position == position - 1:
            if linked_to != stored_hash:
                self._chain(BROKEN_LINK, f"its prev_hash is not the hash of stream position {stream_position} "
                            f"(global position {global_position})", stream_id, position, at)
        else:
            self._chain(MISSING, _missing(stream_position + 1, position - 1, earliest[0]), stream_id,
                        stream_position + 1)
        self.above = (stream_id, stream_position, global_position, prev_hash)

    def _stream_begins(self) -> None:
        """The stream read down to its first event: the positions below it are missing, or it links to nothing."""
        if self.above is None:
            return
        stream_id, position, at, linked_to = self.above
        if position > 1:
            earliest = min(self.earliest_above or (at, position), (at, position))
            self._chain(MISSING, _missing(1, position - 1, earliest[0]), stream_id, 1)
        elif position == 1 and linked_to != GENESIS_HASH:
            self._chain(BROKEN_LINK, "its prev_hash is not the hash of stream position 0", stream_id, position, at)
        self.above = self.earliest_above = None

    def _chain(self, kind: str, what: str, stream_id: str, stream_position: int,
               global_position: int | None = None) -> None:
        self.chain_findings.append(Finding(self.service, kind, what, stream_id, stream_position, global_position))

    def finish(self) -> VerifyReport:
        while self.upcoming:
            self._compare(self.upcoming.popleft())
        self._stream_begins()
        self.report.findings += sorted(self.chain_findings, key=lambda f: (f.stream_id, f.stream_position))
        for sequence in sorted(self.witnessed):
            self._find(WITNESS, "witnessed, but not in the store (deleted?)", checkpoint=sequence)
        return self.report


def _missing(first: int, last: int, after: int) -> str:
    return (f"stream position{'s' if last > first else ''} {first if first == last else f'{first}–{last}'} missing "
            f"(the stream goes on at global position {after})")


async def connect(url: str, service: str) -> asyncpg.Connection:
    """A connection to a service's database (a SQLAlchemy or libpq URL)."""
    try:
        return await asyncpg.connect(_asyncpg_dsn(url))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise AuditError(f"{service}: its database does not answer ({type(exc).__name__}: {exc})") from exc


async def ensure_event_store(connection: asyncpg.Connection, service: str) -> None:
    if await connection.fetchval("select to_regclass('events')") is None:
        raise AuditError(f"{service}: its database has no event store (no table `events`): is it {service}'s?")


Progress = Callable[[int, int], None]  # (rows checked, rows to check: each event is read twice, once a pass)


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
    event, link = check.event, check.link
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        total = 2 * await connection.fetchval("select count(*) from events")
        done, reported = 0, 0.0

        def checked(rows: int) -> None:
            nonlocal done, reported
            done += rows
            if progress is not None and time.monotonic() - reported > 0.2:
                progress(done, total)
                reported = time.monotonic()

        checkpoints = await connection.cursor(CHECKPOINTS_SQL)
        read_ahead, more_checkpoints = 0, True

        async def checkpoints_due(upto: int | None) -> None:
            """The checkpoints due up to global position `upto` (None: all), taken in ahead of the events they cover."""
            nonlocal read_ahead, more_checkpoints
            while more_checkpoints and (upto is None or read_ahead < upto):
                found = await checkpoints.fetch(PAGE_CHECKPOINTS)
                more_checkpoints = len(found) == PAGE_CHECKPOINTS
                for position, _, payload in found:
                    checkpoint = orjson.loads(payload)
                    check.checkpoint(checkpoint, position)
                    read_ahead = max(read_ahead, _upto(checkpoint))

        def hashes_and_tree(rows: list) -> None:
            spelled: dict[datetime, str] = {}
            for row in rows:
                event(row[0], row[_STREAM], row[_STREAM_POSITION], row[1], recomputed_hash(row, spelled))

        def chains(rows: list) -> None:
            for row in rows:
                link(*row)

        await _each_page(await connection.cursor(EVENTS_SQL), hashes_and_tree, checked,
                         lambda rows: checkpoints_due(rows[-1][0]))
        await checkpoints_due(None)
        await _each_page(await connection.cursor(LINKS_SQL), chains, checked)
    if progress is not None:
        progress(done, total)
    return check.finish()


async def _each_page(cursor: asyncpg.cursor.Cursor, check: Callable[[list], None], checked: Callable[[int], None],
                     first: Callable[[list], Awaitable[None]] | None = None) -> None:
    """Every row of `cursor` through `check`, a page at a time, after `first(page)` (the connection's
    other reads for that page). The next page is asked for then: the server reads it (its JSON
    written out as text costs it as much as the hashing costs us) while this one is checked,
    yielding now and then."""
    rows = await cursor.fetch(PAGE_EVENTS)
    while rows:
        if first is not None:
            await first(rows)
        following = asyncio.ensure_future(cursor.fetch(PAGE_EVENTS))
        try:
            for start in range(0, len(rows), YIELD_EVERY):
                await asyncio.sleep(0)
                check(rows[start:start + YIELD_EVERY])
        except BaseException:
            following.cancel()
            raise
        checked(len(rows))
        rows = await following


def _missing_checkpoints(first: int, last: int) -> str:
    return f"checkpoint {first} is missing (deleted?)" if first == last else f"checkpoints {first}–{last} are missing (deleted?)"


def _signed(checkpoint: Mapping[str, Any]) -> tuple[bytes, Any]:
    """What a witness's copy and the stored checkpoint must agree on: what is signed, and the signature."""
    return checkpoint_message(checkpoint), checkpoint.get("signature")


def _upto(checkpoint: Mapping[str, Any]) -> int:
    upto = checkpoint.get("upto_position")
    return upto if isinstance(upto, int) else 0
