"""`fangpin audit export` and `fangpin audit check-bundle`: one household's events in a file that
proves itself with no database (an auditor's, a court's, another office's copy).

The bundle (JSON, format `fangpin-audit-bundle`, version 1):

    format, version, household_id, as_of (null, or the --as-of time as given), public_key (hex),
    services: [{service, checkpoint, events: [{global_position, leaf_index, envelope, proof}]}],
    digest

- `envelope`: each event exactly as its store sealed it (the JSON form its hash covers); the events
  are those of the household's timeline (audit/timeline.py), so a `RiskCluesRaised` batch comes
  whole, with the other households' clues its hash covers (pseudonymous ids, no personal data).
- `checkpoint`: the service's signed checkpoint (CheckpointSigned's payload) that covers them;
  `proof`: the RFC 6962 inclusion proof (hex, leaf to root) of the event's leaf — its global
  position and hash — at `leaf_index` in that checkpoint's tree.
- `digest`: SHA-256 of the canonical JSON of everything else. It is not a signature (whoever edits
  the file can recompute it); it makes any change to the file fail the check, also where nothing
  signed reaches (`as_of`, an event taken out whole, the layout). What no one without the services'
  private key can redo is the checkpoints' signatures, and the events' proofs against them.

The check (pure) recomputes each event's hash from its fields, its leaf and its proof against the
checkpoint's root and tree size, each checkpoint's signature and frontier, the chain of each stream
within the bundle, and the digest and layout; each finding names the event (service, stream,
position, event id) or the checkpoint.

Export reads, for each service, the leaf hashes of every event up to the checkpoint's position in
pages and builds the proofs as they stream by (runtime.integrity.InclusionProofs): memory holds the
household's events and O(log n) nodes per proof, not the store's leaves.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Mapping, Sequence

import asyncpg
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.timeline import StoredEvent, household_events
from audit.verify import ALTERED, BROKEN_LINK, CHECKPOINT, MISSING, AuditError, Finding, connect
from contracts.audit import CheckpointSigned
from contracts.envelope import GENESIS_HASH, canonical_json, compute_hash, utc_spelling
from contracts.topics import SERVICES
from runtime.checkpoints import last_checkpoint
from runtime.clock import parse_moment
from runtime.integrity import (
    CHECKPOINTS_STREAM, InclusionProofs, checkpoint_problems, event_leaf, public_key, public_key_hex,
    verify_inclusion,
)

FORMAT, VERSION = "fangpin-audit-bundle", 1
PAGE_LEAVES = 10_000

# What each finding of the check is about (besides verify's ALTERED, BROKEN_LINK, CHECKPOINT, MISSING).
NOT_PROVEN = "not proven"
MALFORMED = "malformed"
OTHER_HOUSEHOLD = "other household"
AFTER_AS_OF = "after as_of"
DUPLICATE = "duplicate"
KEY = "public key"
DIGEST = "digest"
LAYOUT = "layout"

_TOP = {"format": str, "version": int, "household_id": str, "as_of": (str, type(None)), "public_key": str,
        "services": list, "digest": str}
_SERVICE_KEYS = ("service", "checkpoint", "events")
_EVENT_KEYS = ("global_position", "leaf_index", "envelope", "proof")
_HEX = frozenset("0123456789abcdef")


class NotABundle(Exception):
    """The file is not an audit bundle this fangpin reads: what it is instead, in one line."""


class NotCovered(AuditError):
    """Some of the household's events are not under a signed checkpoint yet: wait, and export again."""


class StoreDisagrees(AuditError):
    """The store does not agree with its own hashes or checkpoints: `fangpin audit verify` names it."""


@dataclass(frozen=True)
class BundleFinding(Finding):
    """verify's Finding; one about the bundle as a whole (its key, digest, layout) names no place in a store."""

    def __str__(self) -> str:
        if (self.checkpoint, self.stream_id, self.global_position, self.event_id) == (None, None, None, None):
            return f"{self.service}: {self.kind}: {self.what}"
        return super().__str__()


@dataclass(frozen=True)
class ProvenEvent:
    event: StoredEvent
    leaf_index: int
    proof: list[bytes]


# -- the document (pure) --------------------------------------------------------------------------

def bundle_document(household_id: str, as_of: str | None, key_hex: str,
                    proven: Mapping[str, tuple[Mapping[str, Any], Sequence[ProvenEvent]]]) -> dict[str, Any]:
    """The bundle of `proven`: service -> (its checkpoint, its events of the household with their proofs)."""
    document: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "household_id": household_id, "as_of": as_of,
        "public_key": key_hex,
        "services": [{"service": service, "checkpoint": dict(checkpoint), "events": [
            {"global_position": p.event.global_position, "leaf_index": p.leaf_index, "envelope": p.event.envelope,
             "proof": [node.hex() for node in p.proof]} for p in events]}
            for service, (checkpoint, events) in proven.items()],
    }
    document["digest"] = _digest(document)
    return document


def _digest(document: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json({k: v for k, v in document.items() if k != "digest"})).hexdigest()


def bundle_bytes(document: Mapping[str, Any]) -> bytes:
    """The file, as export writes it (and as the check expects its bytes to be)."""
    return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"


def read_bundle(raw: bytes) -> dict[str, Any]:
    """The bundle in `raw`; NotABundle when it is not one (not JSON, another shape, another version)."""
    try:
        bundle = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise NotABundle(f"is not JSON ({exc.msg} at character {exc.pos}), so not an audit bundle") from None
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise NotABundle(f'is not a Fangpin audit bundle (it has no "format": "{FORMAT}"; '
                         "`fangpin audit export` writes one)")
    if bundle.get("version") != VERSION:
        raise NotABundle(f"is a Fangpin audit bundle of format version {bundle.get('version')!r}; this fangpin reads "
                         f"version {VERSION}")
    if missing := [name for name in _TOP if name not in bundle]:
        raise NotABundle(f"is not a whole Fangpin audit bundle: it lacks {', '.join(missing)}")
    if wrong := [name for name, kind in _TOP.items() if not isinstance(bundle[name], kind)
                 or isinstance(bundle[name], bool)]:
        raise NotABundle(f"is not a Fangpin audit bundle of version {VERSION}: its {', '.join(wrong)} "
                         f"{'is' if len(wrong) == 1 else 'are'} not of the right kind")
    if bundle["as_of"] is not None:
        try:
            parse_moment(bundle["as_of"])
        except ValueError:
            raise NotABundle(f"is not a Fangpin audit bundle of version {VERSION}: its as_of {bundle['as_of']!r} is not "
                             "a time with its zone") from None
    return bundle


# -- the check (pure) -----------------------------------------------------------------------------

@dataclass
class BundleReport:
    household_id: str
    as_of: str | None
    public_key: str  # hex: the key the checkpoints were checked with
    key_given: bool
    services: list[tuple[str, int, int | None]] = field(default_factory=list)  # (service, events, checkpoint)
    findings: list[BundleFinding] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.findings

    def summary(self) -> str:
        events = sum(count for _, count, _ in self.services)
        said = (f"{events:,} event{'s' if events != 1 else ''} of household {self.household_id}"
                + (f" as of {self.as_of}" if self.as_of else "")
                + f" in {len(self.services)} service{'s' if len(self.services) != 1 else ''}")
        if self.intact:
            where = ", ".join(f"{service}: checkpoint {sequence}" for service, _, sequence in self.services)
            return f"{said}, each proven in its service's signed checkpoint ({where}): the bundle is as exported."
        count = len(self.findings)
        return f"{said}: {count:,} finding{'s' if count != 1 else ''}: the bundle is not as exported."

    def key_note(self) -> str:
        if self.key_given:
            return "Checked with the public key given (--public-key)."
        return (f"Checked with the bundle's own public key ({self.public_key[:16]}…): a check that does not take "
                "the bundle's word for it passes --public-key, as `fangpin audit public-key` prints it on the "
                "system's machine.")


def check_bundle(bundle: Mapping[str, Any], trusted_key: str | None = None, raw: bytes | None = None) -> BundleReport:
    """Check a bundle (as read_bundle gives it) with no database. `trusted_key` (hex): the key the
    checkpoints must be signed with (default: the bundle's own); `raw`: the file's bytes, whose
    layout is then held to the one export writes."""
    return _BundleCheck(bundle, trusted_key, raw).run()


def _lower_hex(value: Any, length: int) -> bool:
    return isinstance(value, str) and len(value) == length and _HEX.issuperset(value)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _BundleCheck:
    def __init__(self, bundle: Mapping[str, Any], given: str | None, raw: bytes | None) -> None:
        self.bundle, self.raw = bundle, raw
        self.household_id = bundle["household_id"]
        self.as_of = parse_moment(bundle["as_of"]) if bundle["as_of"] is not None else None
        self.key: Ed25519PublicKey | None = None
        self.report = BundleReport(self.household_id, bundle["as_of"], given or bundle["public_key"], given is not None)
        self.names_household = False
        self._choose_key(given)

    def _find(self, service: str, kind: str, what: str, **where) -> None:
        self.report.findings.append(BundleFinding(service, kind, what, **where))

    def _choose_key(self, given: str | None) -> None:
        own = self.bundle["public_key"]
        if not _lower_hex(own, 64):
            self._find("bundle", KEY, "its public_key is not an Ed25519 public key (64 lowercase hex digits)")
        if given is not None:
            self.key = public_key(given)
            if own != public_key_hex(self.key):
                self._find("bundle", KEY, "its public key is not the one given: its checkpoints are not the services' "
                           "(or the key given is not theirs)")
            return
        try:
            self.key = public_key(own)
        except ValueError:
            self.key = None

    def run(self) -> BundleReport:
        bundle = self.bundle
        if self.raw is not None and self.raw != bundle_bytes(bundle):
            self._find("bundle", LAYOUT, "its bytes are not laid out as export wrote them (reformatted, or changed)")
        if bundle["digest"] != _digest(bundle):
            self._find("bundle", DIGEST, "its digest does not match its content: changed since it was exported "
                       "(the findings that follow, if any, say where)")
        seen: set[str] = set()
        for number, entry in enumerate(bundle["services"], start=1):
            if not isinstance(entry, dict) or sorted(entry) != sorted(_SERVICE_KEYS):
                self._find(f"services[{number}]", MALFORMED, f"not an entry of {', '.join(_SERVICE_KEYS)}")
                continue
            service = entry["service"]
            if service not in SERVICES or service in seen or not isinstance(entry["events"], list):
                self._find(str(service), MALFORMED, "no such service, listed twice, or its events not a list")
                continue
            seen.add(service)
            self._service(service, entry["checkpoint"], entry["events"])
        if not bundle["services"]:
            self._find("bundle", MISSING, "it holds no event")
        elif not self.names_household:
            self._find("bundle", OTHER_HOUSEHOLD, f"no event in it names household {self.household_id}")
        return self.report

    def _service(self, service: str, checkpoint: Any, events: list) -> None:
        sequence = checkpoint.get("sequence") if isinstance(checkpoint, dict) else None
        sequence = sequence if _whole(sequence) else None
        if not isinstance(checkpoint, dict):
            problems = ["it is not a checkpoint"]
        elif self.key is None:
            problems = ["it cannot be checked: the bundle's public key is not a key"]
        else:
            problems = checkpoint_problems(checkpoint, self.key)
            if not problems:
                if checkpoint["service"] != service:
                    problems.append(f"it is {checkpoint['service']}'s checkpoint, not {service}'s")
                if not _lower_hex(checkpoint["signature"], 128) or not all(
                        _lower_hex(node, 64) for node in checkpoint["frontier"]) or not _lower_hex(checkpoint["root"], 64):
                    problems.append("its root, frontier or signature is not spelled in lowercase hex as signed")
        for problem in problems:
            self._find(service, CHECKPOINT, problem, checkpoint=sequence)
        self.report.services.append((service, len(events), sequence))
        trusted = checkpoint if not problems else None  # events are proven against a valid checkpoint only
        streams: dict[str, list[tuple[int, str | None, str | None, dict]]] = defaultdict(list)
        positions: set[int] = set()
        for number, item in enumerate(events, start=1):
            self._event(service, number, item, trusted, streams, positions)
        for stream_id, chain in streams.items():
            self._chain(service, stream_id, sorted(chain, key=lambda link: link[0]))

    def _event(self, service: str, number: int, item: Any, checkpoint: Mapping[str, Any] | None,
               streams: dict, positions: set[int]) -> None:
        envelope = item.get("envelope") if isinstance(item, dict) else None
        fields = envelope if isinstance(envelope, dict) else {}
        position = item.get("global_position") if isinstance(item, dict) else None
        where = {"stream_id": fields.get("stream_id") if isinstance(fields.get("stream_id"), str) else None,
                 "stream_position": fields.get("stream_position") if _whole(fields.get("stream_position")) else None,
                 "global_position": position if _whole(position) else None,
                 "event_id": fields.get("event_id") if isinstance(fields.get("event_id"), str) else None}

        def find(kind: str, what: str) -> None:
            self._find(service, kind, what, **where)

        if not isinstance(item, dict) or sorted(item) != sorted(_EVENT_KEYS) or not isinstance(envelope, dict):
            find(MALFORMED, f"entry {number} of its events is not one of {', '.join(_EVENT_KEYS)} with an envelope")
            return
        stored = envelope.get("hash")
        if compute_hash(envelope) != stored:
            find(ALTERED, "its content does not give its hash (changed after it was stored, or in the bundle)")
        if where["global_position"] is None or not _whole(item["leaf_index"]) or not isinstance(item["proof"], list) \
                or not all(_lower_hex(node, 64) for node in item["proof"]) or not _lower_hex(stored, 64):
            find(MALFORMED, "its global_position, leaf_index, hash or proof is not of the right kind")
        elif position in positions:
            find(DUPLICATE, "the bundle holds its global position twice")
        elif checkpoint is not None:
            positions.add(position)
            if position > checkpoint["upto_position"]:
                find(NOT_PROVEN, f"it lies after the position checkpoint {checkpoint['sequence']} covers "
                     f"({checkpoint['upto_position']:,})")
            elif not verify_inclusion(event_leaf(position, stored), item["leaf_index"], checkpoint["tree_size"],
                                      [bytes.fromhex(node) for node in item["proof"]], bytes.fromhex(checkpoint["root"])):
                find(NOT_PROVEN, f"its inclusion proof does not lead to the root checkpoint {checkpoint['sequence']} "
                     "signs: its global position, leaf index, hash or proof was changed")
        household = envelope.get("household_id")
        if household == self.household_id:
            self.names_household = True
        elif household is not None:
            find(OTHER_HOUSEHOLD, f"it names household {household}, not the bundle's {self.household_id}")
        if self.as_of is not None:
            try:
                late = datetime.fromisoformat(envelope["recorded_at"]) > self.as_of
            except (KeyError, TypeError, ValueError):
                late = False  # a recorded_at that is not a time: the hash says it was changed
            if late:
                find(AFTER_AS_OF, f"recorded after the bundle's as_of ({self.bundle['as_of']})")
        if where["stream_id"] is not None and where["stream_position"] is not None:
            streams[where["stream_id"]].append((where["stream_position"], envelope.get("prev_hash"), stored, where))

    def _chain(self, service: str, stream_id: str, chain: list[tuple]) -> None:
        """The stream's events in the bundle: its whole history from position 1, each linked to the one before."""
        expected, previous_hash = 1, GENESIS_HASH
        for stream_position, prev_hash, stored, where in chain:
            if stream_position < expected:
                self._find(service, DUPLICATE, "the bundle holds this stream position twice", **where)
                continue
            if stream_position > expected:
                skipped = str(expected) if stream_position == expected + 1 else f"{expected}–{stream_position - 1}"
                self._find(service, MISSING, f"stream position{'s' if stream_position > expected + 1 else ''} "
                           f"{skipped} not in the bundle (taken out?)", stream_id=stream_id, stream_position=expected)
            elif prev_hash != previous_hash:
                self._find(service, BROKEN_LINK, "its prev_hash is not the hash of the event before it in its stream",
                           **where)
            expected, previous_hash = stream_position + 1, stored


# -- export (reads the stores) --------------------------------------------------------------------

LeafProgress = Callable[[str, int, int], None]  # (service, leaves read, leaves in its checkpoint's tree)

_LEAVES = ("select global_position, hash from events where global_position > $1 and global_position <= $2"
           " order by global_position limit $3")
# The first checkpoint signed after a moment that covers a position (signed_at is spelled in UTC
# with microseconds, so its text orders as its time does).
_FIRST_SIGNED_AFTER = (
    f"select payload::text from events where stream_id = '{CHECKPOINTS_STREAM}'"
    f" and event_type = '{CheckpointSigned.event_type}'"
    " and (case when jsonb_typeof(payload->'upto_position') = 'number'"
    " then (payload->>'upto_position')::numeric end) >= $1 and payload->>'signed_at' > $2"
    " order by stream_position limit 1")


async def export_bundle(targets: Sequence[tuple[str, str]], household_id: str, as_of: datetime | None,
                        key: Ed25519PublicKey, scan_progress=None,
                        leaf_progress: LeafProgress | None = None) -> dict[str, Any] | None:
    """The bundle of `household_id`'s history (recorded at or before `as_of`) in the stores of
    `targets`; None when no event names the household. NotCovered, StoreDisagrees, AuditError."""
    events = await household_events(targets, household_id, as_of, scan_progress)
    if not events:
        return None
    by_service: dict[str, list[StoredEvent]] = defaultdict(list)
    for event in sorted(events, key=lambda e: e.global_position):
        by_service[event.service].append(event)
    proven: dict[str, tuple[dict[str, Any], list[ProvenEvent]]] = {}
    for service, url in targets:
        mine = by_service.get(service)
        if not mine:
            continue
        for event in mine:
            if compute_hash(event.envelope) != event.envelope["hash"]:
                raise StoreDisagrees(f"{service}: the event at global position {event.global_position} (stream "
                                     f"{event.stream_id}) does not give its hash: run `fangpin audit verify --service "
                                     f"{service}`")
        connection = await connect(url, service)
        try:
            checkpoint = await _covering_checkpoint(connection, service, household_id, mine, as_of)
            problems = checkpoint_problems(checkpoint, key) if isinstance(checkpoint, dict) else ["not a checkpoint"]
            if problems:
                sequence = checkpoint.get("sequence") if isinstance(checkpoint, dict) else "?"
                raise StoreDisagrees(f"{service}: checkpoint {sequence}: {'; '.join(problems)}. Run "
                                     f"`fangpin audit verify --service {service}` (a machine that does not hold the "
                                     "services' keys gives --public-key)")
            proven[service] = (checkpoint, await _proofs(connection, service, checkpoint, mine, leaf_progress))
        except asyncpg.PostgresError as exc:
            raise AuditError(f"{service}: its store could not be read ({type(exc).__name__}: {exc})") from exc
        finally:
            await connection.close()
    return bundle_document(household_id, as_of.isoformat() if as_of else None, public_key_hex(key), proven)


async def _covering_checkpoint(connection: asyncpg.Connection, service: str, household_id: str,
                               events: list[StoredEvent], as_of: datetime | None) -> dict[str, Any]:
    """The latest checkpoint; with `as_of`, the first signed after it that covers the events, else the latest."""
    newest = events[-1].global_position
    if as_of is not None:
        row = await connection.fetchrow(_FIRST_SIGNED_AFTER, newest, utc_spelling(as_of))
        if row is not None:
            return orjson.loads(row[0])
    last = await last_checkpoint(connection)
    if last is None:
        raise NotCovered(f"{service} has signed no checkpoint yet, so household {household_id}'s events there cannot be "
                         "proven: wait for its first (every FANGPIN_CHECKPOINT_INTERVAL_SECONDS; 0 signs none) and "
                         "export again")
    upto = last.checkpoint.get("upto_position") if isinstance(last.checkpoint, dict) else None
    if not _whole(upto):
        raise StoreDisagrees(f"{service}: its last checkpoint is malformed: run `fangpin audit verify --service {service}`")
    if upto < newest:
        late = sum(1 for e in events if e.global_position > upto)
        raise NotCovered(f"{late} of household {household_id}'s events in {service} came after its last checkpoint "
                         f"(number {last.checkpoint.get('sequence')}, up to global position {upto:,}): wait for the "
                         "next checkpoint (every FANGPIN_CHECKPOINT_INTERVAL_SECONDS, 5 s by default) and export again")
    return last.checkpoint


async def _proofs(connection: asyncpg.Connection, service: str, checkpoint: Mapping[str, Any],
                  events: list[StoredEvent], progress: LeafProgress | None) -> list[ProvenEvent]:
    size, upto, sequence = checkpoint["tree_size"], checkpoint["upto_position"], checkpoint["sequence"]
    disagrees = StoreDisagrees(f"{service}: the events up to global position {upto:,} do not give the tree checkpoint "
                               f"{sequence} signs: run `fangpin audit verify --service {service}`")
    tree = InclusionProofs(size)
    wanted = {e.global_position for e in events}
    index_of: dict[int, int] = {}
    after = 0
    while rows := await connection.fetch(_LEAVES, after, upto, PAGE_LEAVES):
        for position, event_hash in rows:
            prove = position in wanted
            try:
                index = tree.append(event_leaf(position, event_hash), prove)
            except ValueError:  # a malformed hash, or more events than the checkpoint signs
                raise disagrees from None
            if prove:
                index_of[position] = index
        after = rows[-1][0]
        if progress is not None:
            progress(service, tree.count, size)
    if tree.count != size or tree.root().hex() != checkpoint["root"] or len(index_of) != len(wanted):
        raise disagrees
    return [ProvenEvent(e, index_of[e.global_position], tree.proof(index_of[e.global_position])) for e in events]
