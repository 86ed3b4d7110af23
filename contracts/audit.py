"""Events every service writes about its own store: signed checkpoints (runtime.checkpoints)."""
from __future__ import annotations

from datetime import datetime

from contracts.base import EventPayload

EVERY_SERVICE = "every service"  # the producer of an event type each service writes, on its own topic


class CheckpointSigned(EventPayload):
    """A service signed (Ed25519) the Merkle root (RFC 6962 style, runtime.integrity) of every event
    of its store up to `upto_position`, this service's earlier checkpoints included. Appended to the
    stream `checkpoints` of its own store, published on its own topic; an outside witness keeps them
    (`fangpin audit checkpoints`), and `fangpin audit verify` checks the store against them."""

    producer = EVERY_SERVICE
    service: str
    sequence: int  # 1, 2, 3… in the service's store
    upto_position: int  # every event with a global_position up to it is a leaf, in that order
    tree_size: int
    root: str  # hex
    frontier: list[str]  # the perfect subtrees' roots (hex, biggest first): the next checkpoint goes on from it
    previous_root: str | None  # the root of the checkpoint before (None for the first)
    signed_at: datetime
    key_id: str
    signature: str  # hex, over the canonical JSON of every field but the signature and the frontier
