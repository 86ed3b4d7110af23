"""Streamed NDJSON uploads (every service's batch endpoints), validated line by line and committed chunk by chunk."""
from __future__ import annotations

from collections import Counter

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError

from contracts.reference import MissingRegionYearValue
from runtime.auth import Principal, command_metadata
from runtime.problems import NUL_IN_TEXT, Problem, configuration_problem, nul_field, plain_message
from runtime.service import ServiceContext, run_command


def ndjson_body(row_model: type[BaseModel], *example_rows: dict) -> dict:
    """`openapi_extra` of an NDJSON upload. Its body is read as a stream, not declared as a parameter,
    so FastAPI would describe none: each line is one `row_model`, by reference to the schema that the
    resource's single-row POST puts in the components; the example is as sent, one object a line."""
    return {"requestBody": {"required": True, "content": {"application/x-ndjson": {
        "schema": {"$ref": f"#/components/schemas/{row_model.__name__}"},
        "example": "".join(orjson.dumps(row).decode() + "\n" for row in example_rows)}}}}


async def run_ndjson_batch(request: Request, ctx: ServiceContext, principal: Principal, model, ingest, chunk_rows: int,
                           invalid, identifiers: tuple[str, ...] = ()):
    """Validate streamed NDJSON lines with `model` and hand chunks of `chunk_rows` to `ingest`,
    each chunk in its own unit of work; yields what `ingest` returns, chunk by chunk. A line that
    does not validate, or holds text the database cannot store, goes in as `invalid(line, field=…,
    code=…, reason=…)` and with those of its `identifiers` it carries (e.g. household_id), so that the
    sender can find the record.

    A line longer than `max_ndjson_line_bytes` ends the batch with 413: the lines before it are
    committed first (their chunks stand, as with a cut-off upload), so the problem names the line
    to resume from. A chunk that needs deployment data the configuration lacks (an indicator's
    threshold for a region and year) ends it with a configuration problem (500) naming the row to
    add; the chunks before it stand. The callers answer only once the body is read, so neither
    problem is ever too late."""
    meta = command_metadata(principal, request)
    chunk: list = []

    async def commit(rows: list):
        try:
            return await run_command(ctx, meta, lambda uow: ingest(uow, rows))
        except MissingRegionYearValue as missing:
            done = rows[0][0] - 1
            raise configuration_problem(missing, f"; {lines_committed(done)}: once the row is added, send the "
                                                 f"file again from line {done + 1} (lines sent twice change nothing)",
                                        lines_done=done) from None

    validate = model.model_validate_json
    limit = ctx.settings.max_ndjson_line_bytes
    try:
        async for lines in ndjson_lines(request, limit):
            for line_number, raw in lines:
                try:
                    row = validate(raw)
                except ValidationError as exc:
                    chunk.append((line_number, invalid(line_number, **first_error(exc),
                                                       **identifiers_of(raw, identifiers))))
                    continue
                if b"\\u0000" in raw and (where := nul_field(row.model_dump(mode="json"))):
                    chunk.append((line_number, invalid(line_number, field=where, code="text_holds_nul",
                                                       reason=NUL_IN_TEXT, **identifiers_of(raw, identifiers))))
                    continue
                chunk.append((line_number, row))
                if len(chunk) >= chunk_rows:
                    yield await commit(chunk)
                    chunk = []
    except LineTooLong as too_long:
        if chunk:
            yield await commit(chunk)
        raise line_too_long_problem(too_long) from None
    if chunk:
        yield await commit(chunk)


def identifiers_of(raw: bytes, names: tuple[str, ...]) -> dict[str, str]:
    """The identifiers among `names` that a line which did not validate still carries (best effort:
    none from a line that is not a JSON object)."""
    if not names:
        return {}
    try:
        row = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(row, dict):
        return {}
    return {name: str(value) for name in names
            if isinstance(value := row.get(name), (str, int)) and not isinstance(value, bool)}


def lines_committed(done: int) -> str:
    return ("no line was handled" if done == 0 else "line 1 was handled and stays committed" if done == 1
            else f"lines 1-{done} were handled and stay committed")


def line_too_long_problem(too_long: "LineTooLong") -> Problem:
    line, limit = too_long.line, too_long.limit
    message = f"longer than {limit} bytes (max_ndjson_line_bytes)"
    done = lines_committed(line - 1)
    return Problem(413, "Line too long",
                   f"line {line} is {message}; {done}: shorten or drop line {line} and send the file again "
                   f"from it (lines sent twice change nothing)",
                   code="ndjson_line_too_long", errors=[{"field": f"(line {line})", "message": message}],
                   line=line, lines_done=line - 1, max_ndjson_line_bytes=limit)


class LineTooLong(Exception):
    """Line `line` is longer than `limit` bytes; `before` holds the complete lines of the same
    piece that came before it, not yet handed out."""

    def __init__(self, line: int, limit: int, before: list[tuple[int, bytes]]) -> None:
        super().__init__(f"line {line} is longer than {limit} bytes")
        self.line, self.limit, self.before = line, limit, before


class LineSplitter:
    """Cuts the pieces of a body into numbered non-blank lines, in time linear in the body: each
    piece is split on its own and only the unterminated tail is kept, so no byte is scanned or
    copied again per piece (appending pieces to the tail and splitting it all, as before, took
    minutes for one 200 MB line). A line is refused as soon as its known part exceeds the limit."""

    def __init__(self, max_line_bytes: int) -> None:
        self.max_line_bytes = max_line_bytes
        self.number = 0  # lines ended so far
        self.tail = bytearray()  # the start of line number + 1

    def feed(self, piece: bytes) -> list[tuple[int, bytes]]:
        parts = piece.split(b"\n")
        if len(parts) == 1:
            self.tail += piece
            self._check_tail([])
            return []
        if self.tail:
            self.tail += parts[0]
            parts[0] = bytes(self.tail)
        self.tail = bytearray(parts.pop())
        limit = self.max_line_bytes
        # Only the first line holds bytes of earlier pieces; the others are no longer than this piece.
        if len(parts[0]) > limit or (len(piece) > limit and max(map(len, parts)) > limit):
            long = next(i for i, line in enumerate(parts) if len(line) > limit)
            before = [(number, line) for number, line in enumerate(parts[:long], self.number + 1) if line.strip()]
            raise LineTooLong(self.number + long + 1, limit, before)
        lines = [(number, line) for number, line in enumerate(parts, self.number + 1) if line.strip()]
        self.number += len(parts)
        self._check_tail(lines)
        return lines

    def end(self) -> list[tuple[int, bytes]]:
        """The last line, when the body does not end with a newline."""
        return [(self.number + 1, bytes(self.tail))] if self.tail.strip() else []

    def _check_tail(self, before: list[tuple[int, bytes]]) -> None:
        if len(self.tail) > self.max_line_bytes:
            raise LineTooLong(self.number + 1, self.max_line_bytes, before)


async def ndjson_lines(request: Request, max_line_bytes: int):
    """Lists of (line number, bytes) of the non-blank lines of a streamed NDJSON body, one list per
    piece received (constant memory; a list, not a line at a time, since a million lines
    through an async generator cost more than their parsing). Raises LineTooLong after handing
    out the lines before the long one."""
    splitter = LineSplitter(max_line_bytes)
    async for piece in request.stream():
        try:
            lines = splitter.feed(piece)
        except LineTooLong as too_long:
            if too_long.before:
                yield too_long.before
            raise
        if lines:
            yield lines
    if last := splitter.end():
        yield last


def tally(summary, results, listed: tuple[tuple[str, str], ...] = (("invalid", "rejected"),)) -> None:
    """Add one chunk's row outcomes to a batch summary: a count per outcome (a field of the summary
    each), and the rows of each `listed` outcome in the summary's list of that name (the invalid
    rows in `summary.rejected`)."""
    counts = Counter(result.outcome for result in results)
    for outcome, count in counts.items():
        setattr(summary, outcome, getattr(summary, outcome) + count)
    for outcome, name in listed:
        if counts[outcome]:
            getattr(summary, name).extend(result for result in results if result.outcome == outcome)
    summary.rows += len(results)


def first_error(exc: ValidationError) -> dict:
    """The field, code (pydantic's error type, or our rule's) and reason of a row's first error."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or None
    reason = "malformed JSON" if first["type"] == "json_invalid" else plain_message(first)
    return {"field": field, "code": first["type"], "reason": reason}


