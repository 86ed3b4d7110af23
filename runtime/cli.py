"""The `fangpin` command: run the embedded system, mint development tokens, write schemas."""
from __future__ import annotations

import os
import signal
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from audit.cli import app as audit_app
from runtime.clock import SimulationClock, clock_from_settings, parse_moment, simulation_environment
from runtime.keys import KEYS_FILE_NAME, local_keys, new_keys
from runtime.settings import Settings

app = typer.Typer(help="Fangpin (防贫): dynamic monitoring and assistance to prevent a return to poverty.",
                  no_args_is_help=True, add_completion=False)
console = Console(soft_wrap=True)
DATA_DIR = Path(os.environ.get("FANGPIN_DATA_DIR", ".fangpin"))


@app.command()
def up(
    demo: bool = typer.Option(False, "--demo", help="load the demo county's households, staff and warnings"),
    data_dir: Path = typer.Option(DATA_DIR, help="where PostgreSQL data and logs are kept between runs"),
    kafka_port: int = typer.Option(9092, help="port of the embedded Tansu broker"),
    clock: Optional[str] = typer.Option(None, "--clock", help="run on a simulated clock from this moment, e.g. "
                                        "2025-04-10T10:00+08:00 (training, rehearsal; FANGPIN_ENVIRONMENT=development only)"),
    speed: float = typer.Option(1.0, "--speed", help="with --clock: simulated seconds per real second (86400: a day a second)"),
    ports_from: Optional[int] = typer.Option(None, "--ports-from", help="intake's port (default 8101); screening, "
                                             "assistance, exit_review and notifier take the next four"),
) -> None:
    """Start the whole system on the embedded default; Ctrl-C, closing the terminal or `fangpin down`
    stops it cleanly (the services first, then the broker, then PostgreSQL)."""
    from runtime.embedded import DEFAULT_PORTS, EmbeddedSystem, StartInterrupted, service_ports

    if demo:
        # The demo county's tables describe no real county: a system that loads it is a development one.
        os.environ.setdefault("FANGPIN_ENVIRONMENT", "development")
    simulation = _simulation(clock, speed)
    data_dir = data_dir.resolve()
    pidfile = data_dir / "fangpin.pid"
    pid = _pid_in(pidfile)
    if pid is not None and _alive(pid):
        console.print(f"[red]Fangpin is already running (pid {pid}); `fangpin down` stops it.[/red]")
        raise typer.Exit(1)
    _clear_after_a_hard_kill(data_dir, pid)  # never goes on with a PostgreSQL nobody will stop
    system = EmbeddedSystem(data_dir, kafka_port=kafka_port, ports=service_ports(ports_from or DEFAULT_PORTS["intake"]))
    if busy := system.busy_ports():
        holders: dict[str, list[str]] = {}  # one line for the ports another system holds, not one a port
        for name, port in busy.items():
            holders.setdefault(_holder(port), []).append(f"{port} ({name})")
        for holder, ports in holders.items():
            console.print(f"[red]Port{'s' if len(ports) > 1 else ''} {', '.join(ports)} in use: {holder}[/red]")
        console.print("[red]Nothing was started. Stop the other system, or give this one other ports "
                      "(--kafka-port, --ports-from).[/red]")
        raise typer.Exit(1)
    data_dir.mkdir(parents=True, exist_ok=True)
    if not (data_dir / KEYS_FILE_NAME).exists():
        console.print(f"Keys       made for this system in {data_dir / KEYS_FILE_NAME}: keep that file (without it the "
                      "ID numbers and names stored cannot be read)")
    os.environ.update(local_keys(data_dir, create=True))  # the services and the demo loader inherit them
    if simulation is not None:
        os.environ.update(simulation_environment(simulation.start, simulation.speed, simulation.anchor))
        console.print(f"[yellow]Clock      SIMULATED from {simulation.start.isoformat()}, {simulation.speed:g}x the wall "
                      "clock (training or rehearsal; each service's /healthz and log lines show it)[/yellow]")
    elif demo:
        from runtime.demo import HISTORY, demo_environment

        os.environ.update(demo_environment())
        simulation = clock_from_settings(Settings())
        console.print(f"Clock      the demo tells its county's last {HISTORY.days} days on a simulation clock that "
                      f"catches up with the wall clock at {simulation.caught_up_at().astimezone():%H:%M:%S}; "
                      "from then on the system runs on the wall clock")
    _refuse_unfit_settings(system.services)
    pidfile.write_text(str(os.getpid()))
    stopping = {"now": False}

    def request_stop(signum, frame):
        # Only a flag: the start acts on it between its steps, supervise() at once; the stop below follows.
        stopping["now"] = True

    for signum in STOP_SIGNALS:
        signal.signal(signum, request_stop)
    try:
        system.start(say=console.print, stop_requested=lambda: stopping["now"])
        if demo and not stopping["now"]:
            from runtime.demo import load_demo

            load_demo(system.ports, Settings(), say=console.print)
        if stopping["now"]:
            raise StartInterrupted("stopped while the demo was loaded")
        if simulation is not None and simulation.catches_up:
            _wait_for_the_wall_clock(simulation, stopping)
        elif simulation is not None:
            console.print(f"[yellow]Simulated now: {simulation.local_now().isoformat(timespec='seconds')}[/yellow]")
        console.print("Fangpin is up. A token: [bold]./fangpin token --role county_officer --region 410721[/bold]")
        console.print("Stop with Ctrl-C or [bold]./fangpin down[/bold].")
        supervise(system, stopping)
    except Exception as exc:
        # After a stop signal it is no failure: StartInterrupted, or what the start ran (initdb, in the
        # terminal's process group too) ending at Ctrl-C.
        if not stopping["now"]:
            console.print(f"[red]Could not start: {exc}[/red]")
            raise typer.Exit(1)
    finally:
        _say("Stopping...")
        system.stop(say=_say)
        pidfile.unlink(missing_ok=True)


def _wait_for_the_wall_clock(simulation: SimulationClock, stopping: dict) -> None:
    """Until the demo's told history has caught up with today, so that what people do next is
    recorded at its real time."""
    from runtime.embedded import StartInterrupted

    with console.status("") as status:
        while not stopping["now"] and (left := (simulation.caught_up_at() - datetime.now(timezone.utc)).total_seconds()) > 0:
            status.update(f"The demo's clock is at {simulation.local_now():%Y-%m-%d}; it meets the wall clock in {left:.0f} s")
            time.sleep(min(left, 0.5))
    if stopping["now"]:
        raise StartInterrupted("stopped while the demo's clock caught up")
    console.print("Clock      the demo's history is told: the system now runs on the wall clock")


def _refuse_unfit_settings(services) -> None:
    """What any service would refuse at its start (runtime.startup: keys, deployment data, the public
    address), said once before anything starts rather than by five services exiting again and again."""
    from runtime.app import load_definition
    from runtime.startup import StartRefused, refuse_unsafe_settings

    refusals = []
    for service in services:
        try:
            refuse_unsafe_settings(Settings(service=service), load_definition(service))
        except StartRefused as refused:
            refusals.append(str(refused))
    if refusals:
        console.print("\n".join(refusals), style="red", markup=False, highlight=False)
        console.print("Nothing was started. To try Fangpin on the demo county: ./fangpin up --demo. A county's own "
                      "system sets what is named above (in .env or the environment); deploy/README.md says what each holds.")
        raise typer.Exit(1)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, `fangpin down`, the terminal closed


def _say(message: str) -> None:
    """console.print that carries on when the terminal is gone (SIGHUP): the stop must finish all the same."""
    try:
        console.print(message)
    except OSError:
        pass


def _pid_in(pidfile: Path) -> Optional[int]:
    try:
        return int(pidfile.read_text())
    except (OSError, ValueError):
        return None


def _clear_after_a_hard_kill(data_dir: Path, pid: Optional[int]) -> bool:
    """After a `fangpin up` that could not stop (kill -9, a crash; `pid` was its pid): its pid file is
    removed and what it left running is stopped, each with a message. Whether anything was left."""
    from runtime.embedded import stop_leftovers

    pidfile = data_dir / "fangpin.pid"
    if pidfile.exists():
        console.print(f"[yellow]{pidfile} names {f'pid {pid}, which is not running' if pid else 'no pid'} (Fangpin "
                      "was killed without stopping): removed.[/yellow]")
        pidfile.unlink()
    return stop_leftovers(data_dir, say=lambda message: console.print(f"[yellow]{message}[/yellow]"))


def _holder(port: int) -> str:
    """Who holds a port, as far as this user can tell: another Fangpin (its `up` and data folder) or a program."""
    import psutil

    from runtime.embedded import port_holder, system_of

    process = port_holder(port)
    if process is None:
        return "by a program this user cannot see"
    other = system_of(process)
    if other is None:
        try:
            return f"by {process.name()} (pid {process.pid})"
        except psutil.Error:
            return f"by pid {process.pid}"
    up_pid = _pid_in(other / "fangpin.pid")
    if up_pid is not None and _alive(up_pid):
        return f"another Fangpin (pid {up_pid}, data folder {other}); `./fangpin down --data-dir {other}` stops it"
    return (f"a Fangpin process (pid {process.pid}, data folder {other}) left running by an `up` killed without "
            f"stopping; `./fangpin down --data-dir {other}` stops it")


def _simulation(clock: Optional[str], speed: float) -> Optional[SimulationClock]:
    """The simulation clock `up --clock` runs its services on (None without --clock), its anchor now;
    refused, before anything starts, unless this is a development system."""
    if clock is None:
        if speed != 1.0:
            raise typer.BadParameter("is the speed of a simulation clock: give --clock too", param_hint="--speed")
        return None
    try:
        start = parse_moment(clock)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--clock") from None
    if not speed > 0:
        raise typer.BadParameter(f"must be above 0 (1: real time; 86400: a day a second), not {speed:g}", param_hint="--speed")
    if Settings().environment != "development":
        # A simulated date in a county's real records would be a false record: never switched on implicitly.
        console.print("[red]--clock runs the system on a simulated date, for training or a rehearsal, never on real "
                      "records: start it as a development system with data of its own, e.g.\n"
                      f"  FANGPIN_ENVIRONMENT=development ./fangpin up --clock {clock} --data-dir .fangpin-rehearsal[/red]")
        raise typer.Exit(2)
    return SimulationClock(start, speed)


RESTARTS_ALLOWED = 5  # in RESTART_WINDOW_SECONDS; a service that exits more often is broken, not unlucky
RESTART_WINDOW_SECONDS = 300


def supervise(system, stopping: dict) -> None:
    """Start again a service process that exits (a background task of it died: exit code 70, or it
    crashed) until `stopping["now"]`; a service that keeps exiting stops the whole system."""
    exits: dict[str, list[float]] = {}
    while not stopping["now"]:
        for service, process in list(system.processes.items()):
            if process.poll() is None:
                continue
            log = system.logs / f"{service}.log"
            now = time.monotonic()
            recent = exits[service] = [t for t in exits.get(service, []) if now - t < RESTART_WINDOW_SECONDS] + [now]
            if len(recent) > RESTARTS_ALLOWED:
                console.print(f"[red]{service} exited {len(recent)} times in {RESTART_WINDOW_SECONDS // 60} minutes "
                              f"(last code {process.returncode}); see {log}. Stopping.[/red]")
                stopping["now"] = True
                return
            console.print(f"[yellow]{service} exited (code {process.returncode}); starting it again. See {log}.[/yellow]")
            system.start_service(service)
        time.sleep(0.5)


@app.command()
def down(data_dir: Path = typer.Option(DATA_DIR)) -> None:
    """Stop a system started with `fangpin up` (or what one killed without stopping left running)."""
    data_dir = data_dir.resolve()
    pid = _pid_in(data_dir / "fangpin.pid")
    if pid is None or not _alive(pid):
        if not _clear_after_a_hard_kill(data_dir, pid):
            console.print("Fangpin is not running.")
        return
    os.kill(pid, signal.SIGTERM)
    for _ in range(120):
        if not _alive(pid):
            console.print("Fangpin stopped.")
            return
        time.sleep(0.5)
    console.print(f"[red]pid {pid} did not stop within 60s[/red]")
    raise typer.Exit(1)


@app.command()
def token(
    role: str = typer.Option(..., help="county_officer, township_officer, village_cadre, grid_worker, helper, department_system, ..."),
    region: str = typer.Option("", help="region prefix the principal acts in, e.g. 410721"),
    sub: Optional[str] = typer.Option(None, help="principal id (staff id); defaults to dev-<role>"),
    kind: str = typer.Option("staff", help="staff, system or household"),
    department: Optional[str] = typer.Option(None, help="for department systems: civil_affairs, medical_insurance, ..."),
) -> None:
    """Print a bearer token signed with this machine's key (the one `fangpin up` made, or FANGPIN_JWT_SECRET)."""
    from runtime.auth import NATIONAL_ROLES, issue_token

    if kind == "staff" and not region and role not in NATIONAL_ROLES:
        console.print(f"[red]A {role} acts inside a region: give --region (e.g. 410721); only "
                      f"{', '.join(sorted(NATIONAL_ROLES))} acts nationwide.[/red]")
        raise typer.Exit(2)
    settings, _ = local_settings()
    typer.echo(issue_token(settings, sub=sub or f"dev-{role}", role=role, region=region, kind=kind, department=department))


@app.command()
def report(
    region: str = typer.Option(..., help="the region of the bulletin, e.g. 410721 (a county) or 410721001 (a township)"),
    period: str = typer.Option(..., help="the month, e.g. 2026-10"),
    out: Optional[Path] = typer.Option(None, help="the HTML file (default: bulletin-REGION-PERIOD.html)"),
    url: str = typer.Option("", help="exit_review's address (default: the one `fangpin up` started)"),
    token: Optional[str] = typer.Option(None, envvar="FANGPIN_TOKEN", help="a staff token of the region (default "
                                        "on the system's own machine: one it signs)"),
) -> None:
    """Write the monthly bulletin (监测帮扶月报) of a region as an HTML page to print: the month's figures,
    the trend of subjects and exits over twelve months, the exit rate of each region below."""
    import re

    import httpx

    from runtime.embedded import DEFAULT_PORTS
    from services.exit_review.bulletin import render_bulletin

    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", period):
        raise typer.BadParameter(f"{period!r} is no month: give one such as 2026-10", param_hint="--period")
    if token is None:
        settings, on_own_machine = local_settings()
        if not on_own_machine:
            console.print("[red]Give --token (or FANGPIN_TOKEN): a staff token of the region.[/red]")
            raise typer.Exit(2)
        from runtime.auth import issue_token

        token = issue_token(settings, sub="fangpin-report", role="county_officer", region=region)
    base = url or f"http://127.0.0.1:{DEFAULT_PORTS['exit_review']}"
    year, month = map(int, period.split("-"))
    months = [f"{year + (month - 1 - back) // 12}-{(month - 1 - back) % 12 + 1:02d}" for back in range(11, -1, -1)]
    figures = []
    with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {token}"}) as http:
        for label in months:
            try:
                answer = http.get(f"{base}/v1/statistics", params={"region": region, "period": label})
            except httpx.HTTPError as exc:
                console.print(f"[red]exit_review at {base} did not answer ({exc}); is it running (./fangpin up)?[/red]")
                raise typer.Exit(1)
            if answer.status_code != 200:
                console.print(f"[red]{label}: {answer.status_code} {answer.text[:500]}[/red]")
                raise typer.Exit(1)
            figures.append(answer.json())
    out = out or Path(f"bulletin-{region}-{period}.html")
    out.write_text(render_bulletin(figures[-1], figures), encoding="utf-8")
    console.print(f"Bulletin of {region} for {period} written to {out} (open it in a browser to print)")


@app.command()
def serve(service: str) -> None:
    """Run one service in the foreground (settings from FANGPIN_ variables)."""
    from runtime.serve import serve as run

    run(service, Settings(service=service))


@app.command()
def schema(out_dir: Path = typer.Argument(Path("schemas"))) -> None:
    """Write the JSON Schema of the envelope and of every event payload."""
    from contracts.schema import write_schemas

    for path in write_schemas(out_dir):
        typer.echo(path)


import_app = typer.Typer(help="Bulk uploads to intake from NDJSON files, in chunks, with progress and an outcome file.",
                         no_args_is_help=True)
app.add_typer(import_app, name="import")
IMPORT_CHUNK_LINES = 10_000


def _upload(kind: str, path: Path, url: str, token: Optional[str], rejected: Optional[Path], chunk_lines: int) -> None:
    """Send `path` to intake in requests of `chunk_lines` lines; a progress line after each; the
    rejected rows (line in the file, field, reason) to an NDJSON outcome file; the notices (things to
    look at in rows that were taken, e.g. an overloaded grid worker), each once, printed at the end
    and written beside it to FILE.notices.txt, one a line."""
    import httpx
    import orjson

    endpoint = {"households": "/v1/households:import", "warnings": "/v1/warnings:batch"}[kind]
    if token is None:
        # Only households have a default on the system's own machine; a warning belongs to one
        # department's token.
        settings, on_own_machine = local_settings()
        if kind != "households" or not on_own_machine:
            console.print("[red]Give --token (or FANGPIN_TOKEN), e.g. ./fangpin token --role department_system "
                          "--kind system --department civil_affairs[/red]")
            raise typer.Exit(2)
        from runtime.auth import issue_token

        token = issue_token(settings, sub="fangpin-import", role="county_officer", kind="system")
    rejected = rejected or path.with_name(path.name + ".rejected.ndjson")
    totals: dict[str, int] = {}
    notices: dict[str, None] = {}  # in the order they came; a notice repeated by a later chunk once
    started = time.monotonic()
    sent = 0
    with path.open("rb") as source, rejected.open("wb") as out, httpx.Client(base_url=url, timeout=600) as client:
        while True:
            lines = [line for _, line in zip(range(chunk_lines), source)]
            if not lines:
                break
            try:
                response = client.post(endpoint, content=b"".join(lines), headers={
                    "Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"})
            except httpx.HTTPError as exc:
                console.print(f"[red]intake at {url} did not answer ({exc}); lines 1–{sent} are done, "
                              f"the rest can be sent again with the same command (repeats are harmless).[/red]")
                raise typer.Exit(1)
            if response.status_code != 200:
                console.print(f"[red]refused after line {sent}: {response.status_code} {response.text[:500]}[/red]")
                raise typer.Exit(1)
            summary = response.json()
            for key, value in summary.items():
                if isinstance(value, int):
                    totals[key] = totals.get(key, 0) + value
            for row in summary["rejected"]:
                out.write(orjson.dumps({**row, "line": row["line"] + sent}) + b"\n")
            notices.update(dict.fromkeys(summary.get("notices", [])))
            sent += len(lines)
            counts = ", ".join(f"{v:,} {k}" for k, v in totals.items() if k != "rows")
            console.print(f"{sent:>10,} lines: {counts} ({sent / max(time.monotonic() - started, 1e-6):,.0f} lines/s)")
    notices_file = path.with_name(path.name + ".notices.txt")
    if notices:
        notices_file.write_text("".join(f"{notice}\n" for notice in notices), encoding="utf-8")
        console.print(f"{len(notices):,} notice{'s' if len(notices) > 1 else ''} (rows imported, with something to look "
                      f"at; also in {notices_file}):", highlight=False)
        for notice in notices:
            console.print(f"  {notice}", markup=False, highlight=False)
    else:
        notices_file.unlink(missing_ok=True)  # the outcome files tell of the last run
    if totals.get("invalid"):
        console.print(f"{totals['invalid']:,} rows were rejected; line, field and reason of each are in {rejected}")
    else:
        rejected.unlink(missing_ok=True)
        console.print("No row was rejected.")


@import_app.command("households")
def import_households(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="NDJSON, one household a line (docs/http-api.md)"),
    url: str = typer.Option("http://127.0.0.1:8101", help="intake's address"),
    token: Optional[str] = typer.Option(None, envvar="FANGPIN_TOKEN", help="bearer token of a registrar; dev: minted"),
    rejected: Optional[Path] = typer.Option(None, help="outcome file of rejected rows; default FILE.rejected.ndjson"),
    chunk_lines: int = typer.Option(IMPORT_CHUNK_LINES, help="lines per request (a progress line after each)"),
) -> None:
    """Register or update the households of an NDJSON file (a retry of the same file changes nothing twice)."""
    _upload("households", file, url, token, rejected, chunk_lines)


@import_app.command("warnings")
def import_warnings(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="NDJSON, one department warning a line"),
    url: str = typer.Option("http://127.0.0.1:8101", help="intake's address"),
    token: Optional[str] = typer.Option(None, envvar="FANGPIN_TOKEN", help="a department system's bearer token"),
    rejected: Optional[Path] = typer.Option(None, help="outcome file of rejected rows; default FILE.rejected.ndjson"),
    chunk_lines: int = typer.Option(IMPORT_CHUNK_LINES, help="lines per request (a progress line after each)"),
) -> None:
    """Send a department's warnings from an NDJSON file through POST /v1/warnings:batch."""
    _upload("warnings", file, url, token, rejected, chunk_lines)


dlq_app = typer.Typer(help="Dead letters: messages a service's consumer could not apply, and sending them again.",
                      no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
_SERVICE_HELP = "intake, screening, assistance, exit_review or notifier (default: every one)"


def _operator_calls(service: Optional[str], url: Optional[str], token: Optional[str]):
    """(service, base url, headers) of each service to ask; the ports of `fangpin up` by default."""
    from contracts.topics import SERVICES
    from runtime.embedded import DEFAULT_PORTS

    if token is None:
        settings, on_own_machine = local_settings()
        if not on_own_machine:
            console.print("[red]Give --token (or FANGPIN_TOKEN): an administrator's or operator's bearer token.[/red]")
            raise typer.Exit(2)
        from runtime.auth import issue_token

        token = issue_token(settings, sub="fangpin-operator", role="administrator", region="", kind="system")
    if service is not None and service not in SERVICES:
        console.print(f"[red]No service {service!r}; one of {', '.join(SERVICES)}.[/red]")
        raise typer.Exit(2)
    if url is not None and service is None:
        console.print("[red]--url names one service's address: give --service too.[/red]")
        raise typer.Exit(2)
    headers = {"Authorization": f"Bearer {token}"}
    for name in [service] if service else SERVICES:
        yield name, url or f"http://127.0.0.1:{DEFAULT_PORTS[name]}", headers


def _operator_request(method: str, name: str, base: str, path: str, headers: dict, body: dict | None = None) -> dict:
    import httpx

    try:
        response = httpx.request(method, base + path, headers=headers, json=body, timeout=60)
    except httpx.HTTPError as exc:
        console.print(f"[red]{name} at {base} did not answer ({exc}); is it running (./fangpin up)?[/red]")
        raise typer.Exit(1)
    if response.status_code != 200:
        console.print(f"[red]{name}: {response.status_code} {response.text[:500]}[/red]")
        raise typer.Exit(1)
    return response.json()


@dlq_app.command("list")
def dlq_list(
    service: Optional[str] = typer.Option(None, help=_SERVICE_HELP),
    state: Optional[str] = typer.Option(None, help="dead, replayed, applied_later, not_recorded or unreadable"),
    url: Optional[str] = typer.Option(None, help="the service's address, if not the one `fangpin up` uses"),
    token: Optional[str] = typer.Option(None, envvar="FANGPIN_TOKEN", help="administrator's token; dev: minted"),
) -> None:
    """List dead letters with what became of each: `dead` ones wait for `fangpin dlq replay`."""
    from rich.table import Table

    waiting = 0
    for name, base, headers in _operator_calls(service, url, token):
        body = _operator_request("GET", name, base, "/v1/dead-letters" + (f"?state={state}" if state else ""), headers)
        waiting += body["counts"].get("dead", 0)
        if not body["items"]:
            console.print(f"{name}: no dead letters" + (f" in state {state}" if state else ""))
            continue
        table = Table(title=f"{name}: " + ", ".join(f"{n} {s}" for s, n in sorted(body["counts"].items())))
        for column in ("state", "event", "type", "from", "when", "error"):
            table.add_column(column)
        for item in body["items"]:
            table.add_row(item["state"], item["event_id"] or "-", item["event_type"] or "-", item["source"] or "-",
                          item["dead_lettered_at"][:19], (item["error"] or "")[:120])
        console.print(table)
    if waiting:
        console.print(f"{waiting} dead letter(s) wait. Fix their cause, then: ./fangpin dlq replay"
                      + (f" --service {service}" if service else ""))


@dlq_app.command("replay")
def dlq_replay(
    service: Optional[str] = typer.Option(None, help=_SERVICE_HELP),
    event_id: Optional[list[str]] = typer.Option(None, "--event-id", help="only these events (repeatable); default: every dead one"),
    url: Optional[str] = typer.Option(None, help="the service's address, if not the one `fangpin up` uses"),
    token: Optional[str] = typer.Option(None, envvar="FANGPIN_TOKEN", help="administrator's token; dev: minted"),
) -> None:
    """Send dead letters that still wait to their topic again; each is applied once, or dead-lettered again."""
    for name, base, headers in _operator_calls(service, url, token):
        outcome = _operator_request("POST", name, base, "/v1/dead-letters:replay", headers,
                                    {"event_ids": event_id} if event_id else {})
        console.print(f"{name}: {len(outcome['replayed'])} sent again"
                      + "".join(f"\n  {e}: not sent ({why})" for e, why in outcome["skipped"].items()))
    console.print("`./fangpin dlq list` shows which were applied (replayed) and which failed again (dead).")


keys_app = typer.Typer(help="Keys: a fresh set for a deployment, and sealing stored data again after a rotation.",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")  # audit/cli.py: verify, public-key, checkpoints


@keys_app.command("new")
def keys_new() -> None:
    """Print a fresh set of keys as FANGPIN_ variables (for a deployment's secret store or .env)."""
    for name, value in new_keys().items():
        typer.echo(f"{name}={value}")


@keys_app.command("reencrypt")
def keys_reencrypt(
    url: Optional[str] = typer.Option(None, help="intake's address, if not the one `fangpin up` uses"),
    token: Optional[str] = typer.Option(None, envvar="FANGPIN_TOKEN", help="administrator's token; own machine: minted"),
    batch: int = typer.Option(1000, min=1, max=10_000, help="rows per request"),
) -> None:
    """After a key rotation (new FANGPIN_ID_ENCRYPTION_KEY and _KEY_ID, the old key in
    FANGPIN_ID_ENCRYPTION_OLD_KEYS), seal every stored ID number, name and phone again under the new
    key; then the old key can be dropped. Safe to stop and run again."""
    from rich.progress import Progress

    ((name, base, headers),) = _operator_calls("intake", url, token)
    first = _operator_request("POST", name, base, "/v1/keys:reencrypt", headers, {"limit": batch})
    total = first["resealed"] + first["remaining"]
    with Progress(console=console, disable=not total) as progress:
        task = progress.add_task(f"sealing under key {first['key_id']}", total=total, completed=first["resealed"])
        outcome = first
        while outcome["remaining"] and outcome["resealed"]:
            outcome = _operator_request("POST", name, base, "/v1/keys:reencrypt", headers, {"limit": batch})
            progress.update(task, advance=outcome["resealed"])
    if outcome["remaining"]:
        console.print(f"[yellow]{outcome['remaining']:,} rows are still sealed under another key (held by a request "
                      "that was running); run the command again.[/yellow]")
        raise typer.Exit(1)
    console.print(f"Every stored value is sealed under key {outcome['key_id']}; FANGPIN_ID_ENCRYPTION_OLD_KEYS can be emptied.")


def local_settings(data_dir: Optional[Path] = None) -> tuple[Settings, bool]:
    """Settings with this machine's keys (those `fangpin up` made in `data_dir`, by default
    FANGPIN_DATA_DIR), and whether the command runs on the system's own machine (its keys file, or
    the development keys), where it may mint the operator's token itself."""
    data_dir = data_dir or DATA_DIR
    keys = local_keys(data_dir.resolve(), create=False)
    settings = Settings(**{name.removeprefix("FANGPIN_").lower(): value for name, value in keys.items()})
    return settings, bool(keys) or (data_dir / KEYS_FILE_NAME).exists() or settings.uses_development_secret


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def main() -> None:
    app()
