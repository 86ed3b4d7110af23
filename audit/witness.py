"""An outside witness's copy of a service's checkpoints: exported as JSON lines, one checkpoint a
line (`fangpin audit checkpoints`), and read back for `fangpin audit verify --witness FILE`. A store
rewritten together with its checkpoints still disagrees with the copies the witness kept."""
from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import orjson

from audit.verify import CHECKPOINTS_SQL, AuditError, connect, ensure_event_store

PAGE_CHECKPOINTS = 1000


async def export_checkpoints(url: str, service: str, out: IO[bytes]) -> tuple[int, dict[str, Any] | None]:
    """Write `service`'s checkpoints to `out`, in their stream's order; (how many, the last)."""
    connection = await connect(url, service)
    count, last = 0, None
    try:
        await ensure_event_store(connection, service)
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            cursor = await connection.cursor(CHECKPOINTS_SQL)
            while rows := await cursor.fetch(PAGE_CHECKPOINTS):
                for _, _, payload in rows:
                    last = orjson.loads(payload)
                    out.write(orjson.dumps(last) + b"\n")
                count += len(rows)
    finally:
        await connection.close()
    return count, last


def read_witness(path: Path) -> dict[str, dict[int, dict[str, Any]]]:
    """The checkpoints of a witness's file: service -> sequence -> checkpoint."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise AuditError(f"The witness file {path} cannot be read: {exc.strerror}.") from None
    witnessed: dict[str, dict[int, dict[str, Any]]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            checkpoint = orjson.loads(line)
            witnessed.setdefault(checkpoint["service"], {})[int(checkpoint["sequence"])] = checkpoint
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise AuditError(f"{path} line {number} is not a checkpoint (the JSON lines `fangpin audit checkpoints` "
                             "writes)") from None
    return witnessed
