"""The embedded system as `fangpin up` runs it: five separate service processes, the demo loaded
through HTTP, a task in the village cadre's inbox, and a clean stop."""
import asyncio
import re
import shlex
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from contracts.topics import SERVICES
from runtime.cli import app
from runtime.demo import HISTORY, demo_environment, load_demo
from runtime.embedded import DEFAULT_PORTS, EmbeddedSystem, free_port
from runtime.settings import Settings
from tests.factories import household

pytestmark = pytest.mark.integration


def check_cli_import(port: int, folder) -> None:
    """`fangpin import households FILE`: a progress line per chunk, the rejected rows in an outcome file
    with their line in the file, and a second run that changes nothing."""
    rows = [orjson.dumps(household(f"CLI{n}", 100 + n)) for n in range(25)]
    rows.insert(12, b"{broken")
    rows.insert(20, orjson.dumps(household("CLIX", 200, region_code="999999999999")))
    source = folder / "households.ndjson"
    source.write_bytes(b"\n".join(rows) + b"\n")
    url = f"http://127.0.0.1:{port}"
    first = CliRunner().invoke(app, ["import", "households", str(source), "--url", url, "--chunk-lines", "10"])
    assert first.exit_code == 0, first.output
    progress = [line for line in first.output.splitlines() if " lines: " in line]
    assert [line.split(" lines:")[0].strip() for line in progress] == ["10", "20", "27"]
    assert "25 registered" in progress[-1] and "2 invalid" in progress[-1]
    rejected = [orjson.loads(line) for line in (folder / "households.ndjson.rejected.ndjson").read_bytes().splitlines()]
    assert [(r["line"], r["field"]) for r in rejected] == [(13, None), (21, "region_code")]
    again = CliRunner().invoke(app, ["import", "households", str(source), "--url", url])
    assert again.exit_code == 0 and "25 unchanged" in again.output, again.output


README = Path(__file__).parents[2] / "README.md"


def readme_inbox_example() -> tuple[list[str], str]:
    """The README's example of a village cadre's inbox: the `fangpin token` arguments and the URL."""
    found = re.search(r'\$\(\./fangpin (token [^)]*)\)"? (\S+/v1/inbox)', README.read_text(encoding="utf-8"))
    assert found, "README.md shows no `curl ... $(./fangpin token ...) .../v1/inbox` example"
    return shlex.split(found.group(1)), found.group(2)


async def test_services_run_as_processes_and_stop_cleanly(postgres, broker, tmp_path, monkeypatch):
    demo = demo_environment()  # as `fangpin up --demo` sets it: the loader reads it too
    for name, value in demo.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FANGPIN_ENVIRONMENT", "development")
    system = EmbeddedSystem(tmp_path, ports={s: free_port() for s in SERVICES}, postgres=postgres, broker=broker,
                            namespace=f"e{uuid.uuid4().hex[:8]}.", env={s: demo for s in SERVICES})
    said: list[str] = []
    await asyncio.to_thread(system.start, said.append)
    try:
        assert len([line for line in said if "http://127.0.0.1:" in line]) == 5
        await asyncio.to_thread(load_demo, system.ports, Settings(), said.append)
        # The tokens the demo printed, as pasted into a shell; and the README's example token.
        printed = dict(re.findall(r"export (\w+)=(\S+)", "\n".join(said)))
        assert set(printed) == {"CADRE", "TOWNSHIP", "COUNTY", "CIVIL_AFFAIRS", "HELPER"}, said
        monkeypatch.setattr("runtime.cli.DATA_DIR", tmp_path / "cli")  # the CLI signs with the development key, as the services
        token_arguments, inbox_url = readme_inbox_example()
        assert f":{DEFAULT_PORTS['notifier']}/v1/inbox" in inbox_url, "the README asks the notifier"
        minted = CliRunner().invoke(app, token_arguments)
        assert minted.exit_code == 0, minted.output
        intake, notifier = (f"http://127.0.0.1:{system.ports[s]}" for s in ("intake", "notifier"))
        async with httpx.AsyncClient() as http:
            async def get(url: str, token: str) -> dict:
                r = await http.get(url, headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 200, r.text
                return r.json()

            readme_inbox = (await get(f"{notifier}/v1/inbox", minted.output.strip()))["items"]
            inbox = (await get(f"{notifier}/v1/inbox", printed["CADRE"]))["items"]
            township = (await get(f"{intake}/v1/households?limit=500", printed["TOWNSHIP"]))["items"]
            workers = (await get(f"{intake}/v1/grid-workers", printed["COUNTY"]))["items"]
            unmatched = await get(f"{intake}/v1/warnings/unmatched", printed["CIVIL_AFFAIRS"])
            metrics = (await http.get(f"{intake}/metrics")).text
            assistance = f"http://127.0.0.1:{system.ports['assistance']}"
            with_gaps = (await get(f"{assistance}/v1/plans?gaps=true", printed["COUNTY"]))["items"]
            plans = {hid: await get(f"{assistance}/v1/plans/{hid}", printed["COUNTY"])
                     for hid in ("DEMO-0012", "DEMO-0026", "DEMO-0033")}
            history = await get(f"{assistance}/v1/plans/DEMO-0012/history", printed["HELPER"])
        assert len(inbox) == 2, inbox  # the demo warns two households of the first village
        assert all(item["kind"] == "verify_household" for item in inbox)
        assert readme_inbox == inbox, "the README's example token is the demo's village cadre"
        assert [h["household_id"] for h in township] == [f"DEMO-{n:04d}" for n in range(1, 21)]
        assert [(w["grid_worker_id"], w["household_count"]) for w in workers] == [(f"demo-grid-{v}", 10) for v in range(1, 5)]
        assert unmatched["items"] == []
        assert 'fangpin_events_appended_total{event_type="RiskClueRaised",service="intake"} 5.0' in metrics
        # Its last weeks, told on the catching-up clock: three subjects through the ladder, their plans.
        assert [p["household_id"] for p in with_gaps] == ["DEMO-0026"], with_gaps
        assert sorted((g["gap"], g["risk_type"]) for g in plans["DEMO-0026"]["gaps"]) == [
            ("allowance_only", None), ("risk_unanswered", "unstable_employment")]
        assert {p["helper_id"] for p in plans.values()} == {"demo-helper-2", "demo-helper-3", "demo-helper-4"}
        assert [m["status"] for m in plans["DEMO-0012"]["measures"]] == ["completed", "active", "active"]
        assert plans["DEMO-0012"]["measures"][0]["confirmed_by"] == "demo-civil_affairs"
        assert len(plans["DEMO-0012"]["incomes"]) == len(plans["DEMO-0033"]["incomes"]) == 1
        assert plans["DEMO-0033"]["gaps"] == []
        kinds = [e["event_type"] for e in history]
        assert kinds.index("PlanGapFound") < kinds.index("PlanGapClosed"), "the allowance-only gap, then mended"
        opened = datetime.fromisoformat(history[0]["at"])
        assert timedelta(days=10) < datetime.now(timezone.utc) - opened < HISTORY, "identified weeks ago, simulated"
        await asyncio.to_thread(check_cli_import, system.ports["intake"], tmp_path)
        # The county's monthly bulletin, as `fangpin report` writes it from exit_review's statistics.
        bulletin = tmp_path / "bulletin.html"
        month = plans["DEMO-0012"]["identified_on"][:7]
        written = await asyncio.to_thread(CliRunner().invoke, app, [
            "report", "--region", "410721", "--period", month, "--out", str(bulletin), "--token", printed["COUNTY"],
            "--url", f"http://127.0.0.1:{system.ports['exit_review']}"])
        assert written.exit_code == 0, written.output
        page = bulletin.read_text(encoding="utf-8")
        assert '<table id="subjects">' in page and '<svg id="trend-chart"' in page and '<svg id="rate-chart"' in page
        assert re.search(r"监测对象 monitored</td><td class=\"n\">3</td>", page), "the demo's three subjects"
        assert page.count("<rect") == 24 + 2, "two bars a month for twelve months; the two townships' exit rates"
        async with httpx.AsyncClient() as http:
            yearly = (await http.get(f"http://127.0.0.1:{system.ports['exit_review']}/v1/statistics", params={
                "region": "410721", "period": month[:4]}, headers={"Authorization": f"Bearer {printed['COUNTY']}"})).json()
        steps = yearly["average_days"]["identification"]
        assert {"verification_visit", "village_deliberation", "public_notice", "township_review"} <= set(steps), yearly
        assert float(steps["public_notice"]) >= 5, "the notice's five simulated days"
    finally:
        processes = dict(system.processes)
        await asyncio.to_thread(system.stop, said.append)
    for name, process in processes.items():
        assert process.returncode is not None, f"{name} still running"
        # uvicorn re-raises SIGTERM after a graceful shutdown, so the log is the witness.
        assert "Application shutdown complete." in (system.logs / f"{name}.log").read_text(), name
    assert postgres.server.get_postmaster_info().is_running(), "a shared PostgreSQL is left running"
