"""Streamed NDJSON uploads, validated line by line and committed chunk by chunk."""
from __future__ import annotations

from collections import Counter

from fastapi import Request
from pydantic import ValidationError

from runtime.auth import Principal, command_metadata
from runtime.problems import NUL_IN_TEXT, nul_field
from runtime.service import ServiceContext, run_command


async def run_ndjson_batch(request: Request, ctx: ServiceContext, principal: Principal, model, ingest, chunk_rows: int, invalid):
    """Validate streamed NDJSON lines with `model` and hand chunks of `chunk_rows` to `ingest`,
    each chunk in its own unit of work; yields what `ingest` returns, chunk by chunk. A line that
    does not validate, or holds text the database cannot store, goes in as `invalid(line, field=…,
    reason=…)`."""
    meta = command_metadata(principal, request)
    chunk: list = []
    validate = model.model_validate_json
    async for lines in ndjson_lines(request):
        for line_number, raw in lines:
            try:
                row = validate(raw)
            except ValidationError as exc:
                chunk.append((line_number, invalid(line_number, **first_error(exc))))
                continue
            if b"\\u0000" in raw and (where := nul_field(row.model_dump(mode="json"))):
                chunk.append((line_number, invalid(line_number, field=where, reason=NUL_IN_TEXT)))
                continue
            chunk.append((line_number, row))
            if len(chunk) >= chunk_rows:
                yield await run_command(ctx, meta, lambda uow: ingest(uow, chunk))
                chunk = []
    if chunk:
        yield await run_command(ctx, meta, lambda uow: ingest(uow, chunk))


async def ndjson_lines(request: Request):
    """Lists of (line number, bytes) of the non-blank lines of a streamed NDJSON body, one list per
    piece received (constant memory; a list, not a line at a time, since a million lines
    through an async generator cost more than their parsing)."""
    pending = b""
    number = 0
    async for piece in request.stream():
        pending += piece
        *complete, pending = pending.split(b"\n")
        lines = []
        for line in complete:
            number += 1
            if line.strip():
                lines.append((number, line))
        if lines:
            yield lines
    if pending.strip():
        yield [(number + 1, pending)]


def tally(summary, results) -> None:
    """Add one chunk's row outcomes to a batch summary: a count per outcome (a field of the summary
    each), and the invalid rows themselves in `summary.rejected`."""
    counts = Counter(result.outcome for result in results)
    for outcome, count in counts.items():
        setattr(summary, outcome, getattr(summary, outcome) + count)
    if counts["invalid"]:
        summary.rejected.extend(result for result in results if result.outcome == "invalid")
    summary.rows += len(results)


def first_error(exc: ValidationError) -> dict:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or None
    reason = "malformed JSON" if first.get("type") == "json_invalid" else first.get("msg", "invalid")
    return {"field": field, "reason": reason}


