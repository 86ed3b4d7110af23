"""Integrity of a service's whole event store beyond each stream's hash chain (DESIGN, "Views and
audit"): a Merkle tree in the style of RFC 6962 (Certificate Transparency) over every event in
`global_position` order, and signed checkpoints (Ed25519) that commit to its root. Pure: no I/O.

A stream's chain sees an event altered, missing or moved inside that stream; it cannot see a whole
stream deleted, nor an edit whose hashes were recomputed along the stream. The tree's leaf of an
event is its global position and hash, so either change gives another root than the one signed.

- leaf data = 8-byte big-endian global_position || the event's hash (32 bytes);
- leaf hash = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right), empty tree = SHA-256("").
"""
from __future__ import annotations

import hashlib
from typing import Any, Iterable, Mapping, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from contracts.envelope import canonical_json

EMPTY_ROOT = hashlib.sha256(b"").digest()
CHECKPOINTS_STREAM = "checkpoints"  # the stream of each service's store its CheckpointSigned events go to
# What the signature does not cover: itself, and the frontier (it only has to give the signed root).
UNSIGNED_FIELDS = frozenset({"signature", "frontier"})
CHECKPOINT_FIELDS = ("service", "sequence", "upto_position", "tree_size", "root", "frontier", "previous_root",
                     "signed_at", "key_id", "signature")

_TEXT, _NUMBER = (str, "text"), (int, "a whole number")
_FIELD_TYPES = {"service": _TEXT, "sequence": _NUMBER, "upto_position": _NUMBER, "tree_size": _NUMBER, "root": _TEXT,
                "frontier": (list, "a list"), "previous_root": ((str, type(None)), "text or null"), "signed_at": _TEXT,
                "key_id": _TEXT, "signature": _TEXT}

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def event_leaf(global_position: int, event_hash: str) -> bytes:
    """The leaf hash of one stored event."""
    return _sha256(b"\x00" + global_position.to_bytes(8, "big") + bytes.fromhex(event_hash)).digest()


def tree_root(leaves: Sequence[bytes]) -> bytes:
    """MTH of RFC 6962 §2.1 over leaf hashes, by its recursive definition (O(n) memory: for proofs
    and tests; MerkleFrontier gives the same root in O(log n))."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = _split(n)
    return node_hash(tree_root(leaves[:k]), tree_root(leaves[k:]))


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleFrontier:
    """The roots of the perfect subtrees that the binary digits of `size` make, biggest (leftmost)
    first: enough to append leaves and to give the root of all of them, in O(log n) memory. Stored
    in each checkpoint, it lets the next one go on from there instead of from the first event."""

    __slots__ = ("size", "nodes")

    def __init__(self, size: int = 0, nodes: Iterable[bytes] = ()) -> None:
        self.size, self.nodes = size, list(nodes)
        if size < 0 or len(self.nodes) != size.bit_count() or any(len(n) != 32 for n in self.nodes):
            raise ValueError(f"a frontier of {size} leaves has {size.bit_count()} nodes of 32 bytes, "
                             f"not {len(self.nodes)}")

    def append(self, leaf: bytes) -> None:
        nodes, size = self.nodes, self.size
        while size & 1:  # each trailing 1 bit: a perfect subtree of that height is completed
            leaf = _sha256(b"\x01" + nodes.pop() + leaf).digest()
            size >>= 1
        nodes.append(leaf)
        self.size += 1

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        root = self.nodes[-1]
        for node in reversed(self.nodes[:-1]):
            root = node_hash(node, root)
        return root

    def copy(self) -> "MerkleFrontier":
        return MerkleFrontier(self.size, self.nodes)

    def to_json(self) -> list[str]:
        return [node.hex() for node in self.nodes]

    @classmethod
    def from_json(cls, size: int, nodes: Sequence[str]) -> "MerkleFrontier":
        return cls(size, [bytes.fromhex(node) for node in nodes])


def inclusion_proof(leaves: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) of RFC 6962 §2.1.1: the sibling hashes, leaf to root, that prove the
    leaf at `index` is in the tree of the first `size` leaf hashes."""
    if not 0 <= index < size <= len(leaves):
        raise ValueError(f"no leaf {index} in a tree of {size} (of {len(leaves)} leaves given)")
    proof: list[bytes] = []
    start = 0
    while size > 1:
        k = _split(size)
        if index < k:
            proof.append(tree_root(leaves[start + k:start + size]))
            size = k
        else:
            proof.append(tree_root(leaves[start:start + k]))
            start, index, size = start + k, index - k, size - k
    return proof[::-1]


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Whether `proof` shows the leaf hash `leaf` at `index` in the tree of `size` leaves whose root
    is `root` (RFC 9162 §2.1.3.2)."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def _proof_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges [start, end) whose subtree roots make PATH(index, D[size]), leaf to root."""
    ranges: list[tuple[int, int]] = []
    start = 0
    while size > 1:
        k = _split(size)
        if index < k:
            ranges.append((start + k, start + size))
            size = k
        else:
            ranges.append((start, start + k))
            start, index, size = start + k, index - k, size - k
    return ranges[::-1]


class InclusionProofs:
    """Inclusion proofs of chosen leaves in the tree of `size` leaves, built as the leaves stream by
    once, in order: O(log n) memory per proof instead of every leaf (a store's million leaves).

    Every node of an RFC 6962 tree is a perfect subtree aligned on its size, or ends at the last
    leaf. A proven leaf's siblings on its left are the perfect subtrees the frontier holds when it
    arrives; those on its right are caught as the frontier completes them, or, for the ones ending
    at the last leaf, folded from the final frontier."""

    def __init__(self, size: int) -> None:
        self.size, self.count = size, 0
        self.stack: list[tuple[int, int, bytes]] = []  # (start, width, root) of the perfect subtrees so far
        self.paths: dict[int, list[tuple[int, int]]] = {}  # proven leaf -> its sibling ranges, leaf to root
        self.nodes: dict[tuple[int, int], bytes | None] = {}  # sibling range -> its root (None: not yet)

    def append(self, leaf: bytes, prove: bool = False) -> int:
        """Add the next leaf hash (its proof wanted or not); its index."""
        index = self.count
        if index >= self.size:
            raise ValueError(f"a tree of {self.size} leaves has no leaf {index}")
        if prove:
            path = self.paths[index] = _proof_ranges(index, self.size)
            have = {(start, start + width): node for start, width, node in self.stack}
            for span in path:
                self.nodes.setdefault(span, have.get(span))
        node, start, width = leaf, index, 1
        nodes = self.nodes
        if (start, start + 1) in nodes:
            nodes[(start, start + 1)] = node
        while self.stack and self.stack[-1][1] == width:
            left_start, _, left = self.stack.pop()
            node, start, width = _sha256(b"\x01" + left + node).digest(), left_start, width * 2
            if (start, start + width) in nodes:
                nodes[(start, start + width)] = node
        self.stack.append((start, width, node))
        self.count += 1
        return index

    def _fold_from(self, start: int) -> bytes:
        """The root of the leaves from `start` to the last (a node that ends there)."""
        root: bytes | None = None
        for first, _, node in reversed(self.stack):
            root = node if root is None else node_hash(node, root)
            if first == start:
                return root
        raise ValueError(f"no node of the tree begins at leaf {start}")

    def _complete(self) -> None:
        if self.count != self.size:
            raise ValueError(f"{self.count} of the tree's {self.size} leaves given")

    def root(self) -> bytes:
        self._complete()
        return self._fold_from(0) if self.size else EMPTY_ROOT

    def proof(self, index: int) -> list[bytes]:
        """PATH(index, D[size]), as inclusion_proof gives it."""
        self._complete()
        proof = []
        for span in self.paths[index]:
            node = self.nodes[span]
            proof.append(node if node is not None else self._fold_from(span[0]))
        return proof


# -- signing keys and checkpoints -----------------------------------------------------------------

def signing_key(seed_hex: str) -> Ed25519PrivateKey:
    """The Ed25519 private key of a 32-byte seed given as 64 hex digits (FANGPIN_AUDIT_SIGNING_KEY)."""
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))


def public_key_hex(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def public_key(hex_key: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(hex_key))


def checkpoint_message(checkpoint: Mapping[str, Any]) -> bytes:
    """The bytes a checkpoint's signature covers: canonical JSON of its fields but the unsigned ones."""
    return canonical_json({k: v for k, v in checkpoint.items() if k not in UNSIGNED_FIELDS})


def sign_checkpoint(fields: Mapping[str, Any], private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """`fields` (in the JSON form they are stored in) with their signature, as hex."""
    return {**fields, "signature": private_key.sign(checkpoint_message(fields)).hex()}


def next_checkpoint(previous: Mapping[str, Any] | None, frontier: MerkleFrontier, upto_position: int, *,
                    service: str, signed_at: str, key_id: str, private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """The signed checkpoint that follows `previous` (None: the first) and commits to the tree
    `frontier` holds, of every event up to `upto_position`."""
    fields = {"service": service, "sequence": previous["sequence"] + 1 if previous else 1,
              "upto_position": upto_position, "tree_size": frontier.size, "root": frontier.root().hex(),
              "frontier": frontier.to_json(), "previous_root": previous["root"] if previous else None,
              "signed_at": signed_at, "key_id": key_id}
    return sign_checkpoint(fields, private_key)


def checkpoint_frontier(checkpoint: Mapping[str, Any]) -> MerkleFrontier:
    """The frontier a checkpoint stores; ValueError when it is malformed."""
    return MerkleFrontier.from_json(checkpoint["tree_size"], checkpoint["frontier"])


def checkpoint_problems(checkpoint: Mapping[str, Any], public_key: Ed25519PublicKey) -> list[str]:
    """What is wrong with one checkpoint on its own (empty: its signature holds and its frontier
    gives the root it signs). Its place among the others is the caller's to check."""
    missing = [name for name in CHECKPOINT_FIELDS if name not in checkpoint]
    if missing:
        return [f"lacks {', '.join(missing)}"]
    malformed = [f"its {name} is not {said}" for name, (kind, said) in _FIELD_TYPES.items()
                 if not isinstance(checkpoint[name], kind) or isinstance(checkpoint[name], bool)]
    if malformed:
        return malformed
    problems = []
    try:
        signature = bytes.fromhex(checkpoint["signature"])
        public_key.verify(signature, checkpoint_message(checkpoint))
    except (InvalidSignature, ValueError, TypeError):
        problems.append(f"its signature does not verify with the public key (signed with key id "
                        f"{checkpoint['key_id']!r}): not signed by the service, or altered since")
    try:
        if checkpoint_frontier(checkpoint).root().hex() != checkpoint["root"]:
            problems.append("its frontier does not give the root it signs")
    except (ValueError, TypeError, AttributeError):
        problems.append("its frontier is malformed")
    return problems
