"""Time-ordered identifiers (UUID version 7, RFC 9562) for events, clues, cases and the rest.

`uuid6.uuid7` draws every id from the operating system's random source, which costs more than the
rest of an event at bulk rates; ids need to be unique and ordered, not secret, so a seeded PRNG
(reseeded per process) fills the random bits.
"""
from __future__ import annotations

import os
import random
import time
from uuid import UUID

_random = random.Random(os.urandom(32))
_last_ms = 0
_counter = 0


def new_id() -> UUID:
    """A UUIDv7: 48-bit Unix milliseconds, then a 12-bit counter within the millisecond (monotonic
    in this process), then 62 random bits."""
    return UUID(int=_next_value())


def new_id_str() -> str:
    """new_id() as its text, spelled without building the UUID (bulk intake makes two per row)."""
    h = "%032x" % _next_value()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _next_value() -> int:
    global _last_ms, _counter
    ms = time.time_ns() // 1_000_000
    if ms > _last_ms:
        _last_ms, _counter = ms, _random.getrandbits(10)  # start low so the counter rarely overflows
    else:
        _counter += 1
        if _counter > 0xFFF:  # more than ~3,000 ids in one millisecond: borrow the next one
            _last_ms, _counter = _last_ms + 1, 0
        ms = _last_ms
    return (ms << 80) | (0x7 << 76) | (_counter << 64) | (0b10 << 62) | _random.getrandbits(62)
