"""Load for the fault suite, and the ledger of what every client was told.

Households and village cadres are registered first (not under fault). Then single warnings stream
through `POST /v1/warnings` from a few clients, each with its own `Idempotency-Key`, and one NDJSON
file goes through `POST /v1/warnings:batch`. A client that gets a connection error, a 5xx or a 409
sends the same request again (same key, same body) with backoff, as a careful client would, until it
gets an answer or the scenario's deadline passes; the ledger keeps every attempt and the last answer.
"""
from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from dataclasses import dataclass, field

import httpx
import orjson

from runtime.auth import issue_token
from runtime.settings import Settings
from tests.factories import OTHER_TOWNSHIP_VILLAGE, VILLAGE, household, id_number, warning

VILLAGES = (VILLAGE, OTHER_TOWNSHIP_VILLAGE)  # two villages of two townships
DEPARTMENT = "civil_affairs"
HOUSEHOLDS = 300
SINGLE_CLIENTS = 4  # each sends one warning at a time, SINGLE_PAUSE seconds apart
SINGLE_PAUSE = 0.4
BATCH_ROWS = 400
BATCH_HOUSEHOLDS = 2 / 3  # the batch warns the first two thirds of the households, so that single warnings
# about the others still open cases (and tasks) after it
BATCH_PIECE_ROWS = 50  # the first upload is streamed in pieces over BATCH_SECONDS, to overlap the fault
BATCH_SECONDS = 4.0
RETRY_FIRST, RETRY_MOST = 0.1, 2.0  # backoff between attempts, doubling


def household_id(n: int) -> str:
    return f"F{n:04d}"


def village_of(n: int) -> str:
    return VILLAGES[n % len(VILLAGES)]


def cadre_of(village: str) -> str:
    return f"cadre-{village}"


@dataclass
class Told:
    """One request as its client saw it: every attempt, and the answer it was finally given."""

    key: str  # the Idempotency-Key, the same on every attempt
    attempts: list[str] = field(default_factory=list)  # "201", "409", "ConnectError", ...
    status: int | None = None  # the final answer's status; None: no answer (yet)
    body: dict | None = None
    answered_at: float | None = None  # time.monotonic()

    @property
    def answered(self) -> bool:
        return self.status is not None


@dataclass
class SingleWarning:
    source_record_id: str
    household_id: str
    told: Told


@dataclass
class BatchUpload:
    rows: list[tuple[str, str]]  # (source_record_id, household_id), in the file's order
    told: Told


@dataclass
class Ledger:
    """What every client was told."""

    department: str = DEPARTMENT
    singles: dict[str, SingleWarning] = field(default_factory=dict)  # source_record_id -> warning
    batches: list[BatchUpload] = field(default_factory=list)

    def pending(self) -> int:
        return sum(not w.told.answered for w in self.singles.values()) + sum(not b.told.answered for b in self.batches)


class Load:
    def __init__(self, ports: dict[str, int], settings: Settings | None = None, households: int = HOUSEHOLDS,
                 batch_rows: int = BATCH_ROWS) -> None:
        self.ports = ports
        self.settings = settings or Settings()
        self.households = households
        self.batch_rows = batch_rows
        self.ledger = Ledger()
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0))
        self.stop_sending = asyncio.Event()
        self.give_up_at = float("inf")  # time.monotonic() after which a client stops retrying
        self._tasks: list[asyncio.Task] = []
        self._numbers = itertools.count()
        # The batch's first upload can be held after `batch_hold_after` rows until `batch_release` is
        # set (or batch_hold_seconds pass): a cut-off upload at a known point, with no hook in intake.
        self.batch_hold_after: int | None = None
        self.batch_hold_seconds = 20.0
        self.batch_held = asyncio.Event()
        self.batch_release = asyncio.Event()
        self.batch_rows_sent = 0
        self.batch_half_sent = asyncio.Event()

    # -- tokens and urls --------------------------------------------------------------------------
    def _bearer(self, **claims) -> dict:
        return {"Authorization": f"Bearer {issue_token(self.settings, **claims)}"}

    def county(self) -> dict:
        return self._bearer(sub="fault-county", role="county_officer", region="410721")

    def department(self) -> dict:
        return self._bearer(sub="fault-mca", role="department_system", kind="system", department=DEPARTMENT)

    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    # -- setup, before any fault ------------------------------------------------------------------
    async def setup(self) -> None:
        """Register the households (one NDJSON import) and a village cadre per village."""
        lines = b"".join(orjson.dumps(household(household_id(n), n, region_code=village_of(n),
                                               grid_worker_id=f"gw-{n // 10}")) + b"\n"
                         for n in range(self.households))
        r = await self.http.post(self.url("intake", "/v1/households:import"), headers=self.county(), content=lines,
                                 timeout=120)
        assert r.status_code == 200, r.text
        assert r.json()["registered"] == self.households, r.text
        for village in VILLAGES:
            r = await self.http.post(self.url("notifier", "/v1/staff"), headers=self.county(), json={
                "staff_id": cadre_of(village), "name": "村干部", "role": "village_cadre", "region_code": village})
            assert r.status_code in (200, 201), r.text

    # -- the load ---------------------------------------------------------------------------------
    def start_singles(self) -> None:
        for _ in range(SINGLE_CLIENTS):
            self._tasks.append(asyncio.create_task(self._single_client()))

    def start_batch(self) -> asyncio.Task:
        task = asyncio.create_task(self._batch_client())
        self._tasks.append(task)
        return task

    async def finish(self, deadline: float) -> None:
        """Send nothing new; clients still retrying go on until they are answered or `deadline`."""
        self.give_up_at = deadline
        self.stop_sending.set()

    async def close(self) -> None:
        self.give_up_at = 0
        self.stop_sending.set()
        self.batch_release.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.http.aclose()

    def _warning_row(self, source_record_id: str, n: int) -> dict:
        return warning(source_record_id, id_number(n), department=DEPARTMENT)

    async def _single_client(self) -> None:
        while not self.stop_sending.is_set():
            k = next(self._numbers)
            n = (k * 7) % self.households
            srid = f"S-{k:05d}"
            single = SingleWarning(srid, household_id(n), Told(key=f"fault-{uuid.uuid4()}"))
            self.ledger.singles[srid] = single
            body = orjson.dumps(self._warning_row(srid, n))
            await self._until_answered(single.told, lambda: self.http.post(
                self.url("intake", "/v1/warnings"), content=body,
                headers={**self.department(), "Idempotency-Key": single.told.key, "Content-Type": "application/json"}))
            try:
                await asyncio.wait_for(self.stop_sending.wait(), SINGLE_PAUSE)
            except asyncio.TimeoutError:
                pass

    async def _batch_client(self) -> None:
        warned = max(1, int(self.households * BATCH_HOUSEHOLDS))
        rows = [(f"B-{k:05d}", household_id(k % warned)) for k in range(self.batch_rows)]
        upload = BatchUpload(rows, Told(key=f"fault-batch-{uuid.uuid4()}"))
        self.ledger.batches.append(upload)
        lines = [orjson.dumps(self._warning_row(srid, k % warned)) + b"\n" for k, (srid, _) in enumerate(rows)]
        first = True

        async def stream():
            nonlocal first
            paced, first = first, False
            pieces = [lines[i:i + BATCH_PIECE_ROWS] for i in range(0, len(lines), BATCH_PIECE_ROWS)]
            sent = 0
            for piece in pieces:
                yield b"".join(piece)
                sent += len(piece)
                if not paced:
                    continue
                self.batch_rows_sent = sent
                if sent * 2 >= len(lines):
                    self.batch_half_sent.set()
                if self.batch_hold_after is not None and sent >= self.batch_hold_after and sent < len(lines):
                    self.batch_held.set()
                    try:
                        await asyncio.wait_for(self.batch_release.wait(), self.batch_hold_seconds)
                    except asyncio.TimeoutError:
                        pass
                    self.batch_hold_after = None
                await asyncio.sleep(BATCH_SECONDS / len(pieces))

        headers = {**self.department(), "Idempotency-Key": upload.told.key, "Content-Type": "application/x-ndjson"}
        await self._until_answered(upload.told, lambda: self.http.post(
            self.url("intake", "/v1/warnings:batch"), content=stream(), headers=headers, timeout=120))

    async def _until_answered(self, told: Told, send) -> None:
        """The same request again (same key, same body) after a connection error, a 5xx or a 409."""
        delay = RETRY_FIRST
        while True:
            try:
                r = await send()
            except httpx.TransportError as exc:
                told.attempts.append(type(exc).__name__)
            else:
                told.attempts.append(str(r.status_code))
                if r.status_code < 500 and r.status_code != 409:
                    told.status = r.status_code
                    try:
                        told.body = r.json()
                    except ValueError:
                        told.body = {"text": r.text[:500]}
                    told.answered_at = time.monotonic()
                    return
            if time.monotonic() + delay > self.give_up_at:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MOST)
