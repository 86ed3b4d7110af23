"""Splitting a streamed NDJSON body into lines (issue 13): linear time, and a line longer than the
limit refused as soon as it passes the limit (pure: a stand-in request, no database)."""
import random
import time
from itertools import cycle, repeat

import pytest

from runtime.ndjson import LineTooLong, ndjson_lines

MiB = 1 << 20


class StreamedBody:
    """What ndjson_lines reads of a request: its body in pieces; counts the bytes handed out."""

    def __init__(self, pieces):
        self.pieces, self.sent = pieces, 0

    async def stream(self):
        for piece in self.pieces:
            self.sent += len(piece)
            yield piece


def cut(body: bytes, sizes) -> list[bytes]:
    pieces, at = [], 0
    while at < len(body):
        size = next(sizes)
        pieces.append(body[at:at + size])
        at += size
    return pieces


async def lines_of(pieces, limit: int) -> list[tuple[int, bytes]]:
    return [line async for lines in ndjson_lines(StreamedBody(pieces), limit) for line in lines]


async def test_lines_are_numbered_and_found_whatever_the_pieces():
    rng = random.Random(13)
    rows = [b"", b"  ", *(b'{"n": %d, "pad": "%s"}' % (i, b"x" * rng.randrange(0, 300)) for i in range(400))]
    rng.shuffle(rows)
    body = b"\n".join(rows)  # no newline after the last line
    expected = [(number, line) for number, line in enumerate(body.split(b"\n"), 1) if line.strip()]
    for sizes in ([1], [7], [64], [65536], [3, 1000, 1, 50_000]):
        assert await lines_of(cut(body, cycle(sizes)), 1000) == expected, sizes
    assert await lines_of([b"a\n\n", b"\nb\n"], 10) == [(1, b"a"), (4, b"b")]


async def test_a_line_of_exactly_the_limit_passes_and_one_byte_more_is_refused_with_its_number():
    limit = 100
    pieces = [b"a\n", b"x" * 60, b"x" * 40 + b"\n", b"b"]
    assert await lines_of(pieces, limit) == [(1, b"a"), (2, b"x" * 100), (3, b"b")]
    refused = []
    with pytest.raises(LineTooLong) as caught:
        async for lines in ndjson_lines(StreamedBody([b"a\n\nb\n" + b"y" * 101 + b"\nc\n"]), limit):
            refused.extend(lines)
    assert (caught.value.line, caught.value.limit) == (4, limit)
    assert refused == [(1, b"a"), (3, b"b")], "the lines before the long one are handed out first"
    with pytest.raises(LineTooLong) as caught:
        await lines_of([b"a\n", b"x" * 50, b"x" * 51], limit)  # the last line, never ended
    assert caught.value.line == 2


async def test_a_long_line_is_refused_once_it_passes_the_limit_not_at_its_end():
    body = StreamedBody(b"z" * 1000 for _ in range(10_000))  # a 10 MB line
    with pytest.raises(LineTooLong) as caught:
        async for _ in ndjson_lines(body, 65_536):
            pass
    assert caught.value.line == 1
    assert body.sent <= 65_536 + 1000, f"read {body.sent} bytes of the line before refusing it"


async def test_splitting_takes_time_linear_in_the_body():
    """One long line in 64 KiB pieces: rebuilding the pending buffer for every piece made four times
    the bytes cost sixteen times the time (20 MB: seconds; 200 MB: minutes)."""

    async def seconds(size: int) -> float:
        pieces = cut(b"x" * size, repeat(65_536))
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            [(number, line)] = await lines_of(pieces, 1 << 30)
            best = min(best, time.perf_counter() - started)
            assert (number, len(line)) == (1, size)
        return best

    small, large = await seconds(5 * MiB), await seconds(20 * MiB)
    assert large < 8 * small + 0.05, f"5 MiB: {small:.3f} s, 20 MiB: {large:.3f} s"
