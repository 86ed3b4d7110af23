"""The `fangpin` command: run the embedded system, mint development tokens, write schemas."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

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
) -> None:
    """Start the whole system on the embedded default; Ctrl-C (or `fangpin down`) stops it cleanly."""
    from runtime.embedded import EmbeddedSystem

    data_dir = data_dir.resolve()
    pidfile = data_dir / "fangpin.pid"
    if pidfile.exists() and _alive(int(pidfile.read_text())):
        console.print(f"[red]Fangpin is already running (pid {pidfile.read_text()}); `fangpin down` stops it.[/red]")
        raise typer.Exit(1)
    data_dir.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(str(os.getpid()))
    system = EmbeddedSystem(data_dir, kafka_port=kafka_port)
    stopping = {"now": False}

    def request_stop(signum, frame):
        stopping["now"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        system.start(say=console.print)
        if demo:
            from runtime.demo import load_demo

            load_demo(system.ports, Settings(), say=console.print)
        settings = Settings()
        if settings.uses_development_secret:
            console.print("[yellow]Tokens are signed with the development key: set FANGPIN_JWT_SECRET in production.[/yellow]")
        console.print("Fangpin is up. A token: [bold]./fangpin token --role county_officer --region 410721[/bold]")
        console.print("Stop with Ctrl-C or [bold]./fangpin down[/bold].")
        while not stopping["now"]:
            for service, process in system.processes.items():
                if process.poll() is not None:
                    console.print(f"[red]{service} exited (code {process.returncode}); see {system.logs / (service + '.log')}. Stopping.[/red]")
                    stopping["now"] = True
            time.sleep(0.5)
    except Exception as exc:
        console.print(f"[red]Could not start: {exc}[/red]")
        raise typer.Exit(1)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        console.print("Stopping...")
        system.stop(say=console.print)
        pidfile.unlink(missing_ok=True)


@app.command()
def down(data_dir: Path = typer.Option(DATA_DIR)) -> None:
    """Stop a system started with `fangpin up`."""
    pidfile = data_dir.resolve() / "fangpin.pid"
    if not pidfile.exists() or not _alive(pid := int(pidfile.read_text())):
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
    """Print a development bearer token."""
    from runtime.auth import issue_token

    typer.echo(issue_token(Settings(), sub=sub or f"dev-{role}", role=role, region=region, kind=kind, department=department))


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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def main() -> None:
    app()
