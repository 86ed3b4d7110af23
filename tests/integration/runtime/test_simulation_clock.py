"""The simulation clock (issue 14): a training or rehearsal system runs at a chosen date, every
service on the same simulated time, and the clock-driven steps (a notice's five days) follow it."""
import asyncio
import os
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from runtime.clock import simulation_environment
from runtime.db import ensure_database
from runtime.embedded import free_port
from tests.conftest import eventually
from tests.factories import VILLAGE, household, id_number, warning

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
EAST8 = timezone(timedelta(hours=8))
# Years ahead of the wall clock: a request dated at the simulated now would be "in the future" of a
# check made on the wall clock.
START = datetime(2031, 4, 10, 10, 0, tzinfo=EAST8)
DAY = 86400.0
POOR = {"per_capita_net_income": "6200.00", "rigid_expenditure": "0", "education_ok": True, "medical_ok": True,
        "housing_safe": True, "water_safe": True}


def simulation(speed: float) -> dict:
    return {"simulation_start": START, "simulation_anchor": datetime.now(timezone.utc), "simulation_speed": speed}


async def test_a_five_day_notice_closes_when_the_simulated_clock_passes_it(run_services, tmp_path):
    lines = tmp_path / "lines.csv"
    lines.write_text("prefix,year,yuan\n410721,2031,9000\n")  # the demo table stops at 2026
    async with run_services("intake", "screening", scheduler_seconds=0.2, monitoring_lines=str(lines),
                            **simulation(speed=2 * DAY)) as system:
        intake, screening = system.clients["intake"], system.clients["screening"]
        county = system.token("county_officer", "410721", sub="county-1")
        department = system.token("department_system", kind="system", department="civil_affairs", sub="mca")
        assert (await intake.post("/v1/households", headers=county, json=household("SIM", 1))).status_code == 201
        # Observed at the simulation's start: years after today's wall clock, and accepted.
        r = await intake.post("/v1/warnings", headers=department,
                              json=warning("SIM-1", id_number(1), observed_at=START.isoformat()))
        assert r.status_code == 201, r.text

        async def opened():
            items = (await screening.get("/v1/cases", headers=county)).json()["items"]
            return items[0]["case_id"] if items else None

        case_id = await eventually(opened)
        worker = system.token("grid_worker", VILLAGE, sub="gw-1")
        r = await screening.post(f"/v1/cases/{case_id}/verification", headers=worker, json=POOR)
        assert r.status_code == 200, r.text
        r = await screening.post(f"/v1/cases/{case_id}/village-deliberation", headers=system.token(
            "village_cadre", VILLAGE, sub="cadre-1"), json={"decision": "propose", "attendees": 12})
        assert r.json()["step"] == "public_notice", r.text
        notice_ends = date.fromisoformat(r.json()["notice_ends"])
        assert START.date() + timedelta(days=5) <= notice_ends < START.date() + timedelta(days=60)
        posted = time.monotonic()

        async def closed():
            case = (await screening.get(f"/v1/cases/{case_id}", headers=county)).json()
            return case if case["step"] == "township_review" else None

        case = await eventually(closed)
        assert time.monotonic() - posted < 30  # five simulated days, not five real ones
        [closing] = [h for h in case["history"] if h["event_type"] == "PublicNoticeClosed"]
        assert closing["actor"]["id"] == "screening-scheduler"
        # Closed by the scheduler once the simulated day reached the notice's end, not before.
        assert datetime.fromisoformat(closing["at"]).astimezone(timezone.utc).date() >= notice_ends


async def test_healthz_shows_the_clock_every_service_runs_on(run_services):
    async with run_services("intake", "screening", **simulation(speed=60)) as system:
        views = {name: (await client.get("/healthz")).json()["clock"] for name, client in system.clients.items()}
    for view in views.values():
        assert (view["simulated"], view["speed"], view["started_at"]) == (True, 60.0, START.isoformat())
        now = datetime.fromisoformat(view["now"])
        assert now.utcoffset() == timedelta(hours=8) and START <= now < START + timedelta(hours=1)
    # Both services tell the same simulated time (one anchor), to the minute at 60x.
    intake, screening = (datetime.fromisoformat(views[s]["now"]) for s in ("intake", "screening"))
    assert abs(intake - screening) < timedelta(minutes=1)

    async with run_services("intake") as system:
        view = (await system.clients["intake"].get("/healthz")).json()["clock"]
    assert view["simulated"] is False
    assert abs(datetime.fromisoformat(view["now"]) - datetime.now(timezone.utc)) < timedelta(minutes=1)


def test_a_service_process_on_a_simulation_clock_shows_it_in_healthz_and_its_log(postgres, broker):
    """The path `fangpin up --clock` takes: the FANGPIN_SIMULATION_ variables it gives every service
    process, read by runtime.serve."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FANGPIN_")}
    env = {**clean, "FANGPIN_ENVIRONMENT": "development", "FANGPIN_HTTP_PORT": str(port),
           "FANGPIN_DATABASE_URL": postgres.url(f"sim_{port}_intake"), "FANGPIN_KAFKA_BOOTSTRAP": broker.bootstrap,
           "FANGPIN_TOPIC_PREFIX": f"sim{port}.",
           **simulation_environment(START, 3600.0, datetime.now(timezone.utc))}
    asyncio.run(ensure_database(env["FANGPIN_DATABASE_URL"]))
    process = subprocess.Popen([sys.executable, "-m", "runtime.serve", "intake"], env=env, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read()
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("the service did not answer within 60 s")
        clock = health.json()["clock"]
        assert (clock["simulated"], clock["speed"]) == (True, 3600.0)
        assert START <= datetime.fromisoformat(clock["now"]) < START + timedelta(days=3)  # an hour a second
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    warned = [line for line in output.splitlines() if "SIMULATION CLOCK" in line]
    assert warned and "3600x the wall clock" in warned[0], output
    # Each line of our log format carries the simulated time beside the wall time.
    assert "[simulated 2031-04-" in warned[0] and "+08:00] intake[" in warned[0], output
