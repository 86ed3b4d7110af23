"""One fault scenario: the embedded system (five service processes) on a database namespace of its
own, the load, one fault while the load runs, then the checker until the system has healed.

Timeline: start the system; register households and cadres; wait until every check passes (the
consumers have joined their groups and caught up); single warnings from WARMUP_SECONDS
before the fault; the batch upload starts as the fault does; new warnings stop when the fault is
over (clients still retrying go on); the checker polls until every check passes (and still does
a few seconds later) or HEAL_SECONDS have passed since the fault's end. The time to heal is from
the fault's end to the first clean poll.
"""
from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

import asyncpg
import pytest

from contracts.topics import SERVICES
from runtime.embedded import EmbeddedPostgres, EmbeddedSystem, TansuBroker, free_port
from tests.faults.checker import Healing, SystemView, report, stats, wait_until_healed
from tests.faults.load import BATCH_ROWS, Load

HEAL_SECONDS = float(os.environ.get("FANGPIN_FAULTS_HEAL_SECONDS", "120"))
WARMUP_SECONDS = 2.0
FAULT_TIMEOUT_SECONDS = 150.0  # a fault that does not end by then (a hung restart) fails the test
SETUP_TIMEOUT_SECONDS = 120.0
STEADY_SECONDS = 60.0  # for the consumers to catch up with the setup, before the load and the fault


@dataclass
class Run:
    """What a fault function gets: the system, its load and a place to note what it did."""

    system: EmbeddedSystem
    load: Load
    view: SystemView
    postgres: EmbeddedPostgres
    broker: TansuBroker
    started: float = field(default_factory=time.monotonic)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(f"{time.monotonic() - self.started:6.1f}s  {text}")

    async def connect(self, service: str) -> asyncpg.Connection:
        return await asyncio.wait_for(asyncpg.connect(self.view.dsn[service]), 10)

    async def kill(self, service: str) -> None:
        pid = self.system.processes[service].pid
        await asyncio.to_thread(self.system.kill_service, service)
        self.note(f"{service} (pid {pid}) killed -9")

    async def restart(self, service: str) -> None:
        await asyncio.to_thread(self.system.restart_service, service, lambda _: None)
        self.note(f"{service} started again (pid {self.system.processes[service].pid}) and ready")


Fault = Callable[[Run], Awaitable[None]]


def log_counts(logs: Path) -> str:
    """WARNING and ERROR lines per log, in one line."""
    counts = []
    for path in sorted(logs.glob("*.log")):
        text = re.sub(r"\x1b\[[0-9;]*m", "", path.read_text(errors="replace"))  # Tansu's log is coloured
        counts.append(f"{path.stem} {len(re.findall(r' WARN(?:ING)? ', text))}/{len(re.findall(r' ERROR ', text))}")
    return "log lines WARNING/ERROR: " + ", ".join(counts)


def republishes(logs: Path) -> dict[str, int]:
    """How often each service's relay published its whole store again (runtime.relay logs it once each time)."""
    return {path.stem: path.read_text(errors="replace").count("publishing the store again")
            for path in sorted(logs.glob("*.log")) if path.stem in SERVICES}


def log_digest(logs: Path, most: int = 8) -> str:
    """Per service log: how many WARNING / ERROR lines, and the last few distinct ones."""
    out = []
    for path in sorted(logs.glob("*.log")):
        lines = re.sub(r"\x1b\[[0-9;]*m", "", path.read_text(errors="replace")).splitlines()
        bad = [line for line in lines if re.search(r" (WARN|WARNING|ERROR) |Traceback", line)]
        if not bad:
            continue
        warnings = sum(bool(re.search(r" WARN(ING)? ", line)) for line in bad)
        errors = sum(" ERROR " in line for line in bad)
        seen, last = set(), []
        for line in reversed(bad):
            shape = re.sub(r"\d+", "#", line.split(": ", 1)[-1])[:120]
            if shape not in seen:
                seen.add(shape)
                last.append(line[:400])
            if len(last) == most:
                break
        out.append(f"--- {path.name}: {warnings} warnings, {errors} errors; the last distinct ones:")
        out.extend(reversed(last))
    return "\n".join(out)


async def run_scenario(name: str, data_dir: Path, postgres: EmbeddedPostgres, broker: TansuBroker, fault: Fault,
                       record_property, env: dict[str, dict[str, str]] | None = None,
                       batch_rows: int = BATCH_ROWS, prepare: Callable[[Load], None] | None = None,
                       after_healed: Fault | None = None, republishes_allowed: int = 0) -> Healing:
    """`prepare(load)` before the load starts; `after_healed(run)` once healed, with the system still up.
    `republishes_allowed`: how often each relay may publish its whole store again (once after a broker
    that came back empty; never otherwise: a relay that takes a slow broker for a lost one floods it)."""
    system = EmbeddedSystem(data_dir, ports={s: free_port() for s in SERVICES}, postgres=postgres, broker=broker,
                            namespace=f"f{uuid.uuid4().hex[:8]}.", env=env or {})
    begun = time.monotonic()
    try:
        await asyncio.to_thread(system.start, lambda _: None)
        view = SystemView.of(system)
        load = Load(system.ports, batch_rows=batch_rows)
        if prepare:
            prepare(load)
        run = Run(system, load, view, postgres, broker)
        run.note(f"system up in {run.started - begun:.1f}s (logs: {system.logs})")
        try:
            await asyncio.wait_for(load.setup(), SETUP_TIMEOUT_SECONDS)
            run.note(f"{load.households} households and the village cadres registered")
            # Consumers take seconds to join their groups on Tansu: the fault should find them at work.
            steady = await wait_until_healed(view, load.ledger, since=time.monotonic(),
                                             deadline=time.monotonic() + STEADY_SECONDS, settle=0)
            if steady.findings:
                pytest.fail(f"== fault scenario {name}: the system did not settle before the fault within "
                            f"{STEADY_SECONDS:.0f}s:\n{report(steady.findings)}\nservice logs ({system.logs}):\n"
                            f"{log_digest(system.logs)}", pytrace=False)
            run.note("every consumer has caught up with the setup")
            load.start_singles()
            await asyncio.sleep(WARMUP_SECONDS)
            load.start_batch()
            fault_began = time.monotonic()
            run.note("fault begins")
            try:
                await asyncio.wait_for(fault(run), FAULT_TIMEOUT_SECONDS)
            except Exception as exc:
                pytest.fail("\n".join([f"== fault scenario {name}: the fault itself failed: {exc!r}", *run.notes,
                                       f"service logs ({system.logs}):", log_digest(system.logs)]), pytrace=False)
            fault_ended = time.monotonic()
            run.note(f"fault over after {fault_ended - fault_began:.1f}s; no new warnings from now on")
            await load.finish(fault_ended + HEAL_SECONDS)
            healing = await wait_until_healed(view, load.ledger, since=fault_ended, deadline=fault_ended + HEAL_SECONDS)
        finally:
            await load.close()
        if healing.healed_after is not None:
            run.note(f"healed {healing.healed_after:.1f}s after the fault's end ({healing.polls} polls)")
        else:
            run.note(f"NOT healed within {HEAL_SECONDS:.0f}s of the fault's end ({healing.polls} polls)")
        summary = "\n".join([f"== fault scenario {name}", *run.notes,
                             "   failing checks, from the fault's end:", *(f"     {step}" for step in healing.course),
                             "   " + stats(healing.snapshot, load.ledger, view.prefix),
                             "   " + log_counts(system.logs),
                             f"   total {time.monotonic() - begun:.1f}s"])
        print(summary)
        record_property("fault", name)
        record_property("heal_seconds", None if healing.healed_after is None else round(healing.healed_after, 1))
        if healing.findings:
            pytest.fail(f"{summary}\nthe checker found, at the deadline:\n{report(healing.findings)}\n"
                        f"service logs ({system.logs}):\n{log_digest(system.logs)}", pytrace=False)
        republished = republishes(system.logs)
        if any(n > republishes_allowed for n in republished.values()):
            pytest.fail(f"{summary}\na relay published its whole store again more than {republishes_allowed} "
                        f"time(s): {republished}", pytrace=False)
        if after_healed:
            await after_healed(run)
        return healing
    finally:
        await asyncio.to_thread(system.stop, lambda _: None)
