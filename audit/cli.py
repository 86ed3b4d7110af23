"""`fangpin audit`: the operator's tools. Exit codes: 0 intact, 2 findings, 1 the check could not
be made (the message says what to do). Databases: those of the system `fangpin up` runs from the
data folder (`--data-dir`), or `--database-url` for a deployment whose databases are elsewhere."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

app = typer.Typer(help="Audit: verify the event stores against their hashes and signed checkpoints, and export the "
                       "checkpoints for an outside witness.", no_args_is_help=True)
console = Console(soft_wrap=True, highlight=False)
_SERVICE_HELP = "intake, screening, assistance, exit_review or notifier (default: every one)"
_DATA_DIR_HELP = "the data folder of the system `fangpin up` runs (default: FANGPIN_DATA_DIR or .fangpin)"
_DATABASE_URL_HELP = ("a service's database, e.g. postgresql://auditor@db.county/fangpin_intake (with --service), "
                      "or one with {service} in it for every service")


def _fail(message: str) -> typer.Exit:
    console.print(message, style="red", markup=False)
    return typer.Exit(1)


def _data_dir(data_dir: Optional[Path]) -> Path:
    from runtime import cli

    return (data_dir or cli.DATA_DIR).resolve()


def _databases(service: Optional[str], data_dir: Optional[Path], database_url: Optional[str]) -> list[tuple[str, str]]:
    """(service, database URL) of each service to look at."""
    from contracts.topics import SERVICES
    from runtime.embedded import running_database_url

    if service is not None and service not in SERVICES:
        raise _fail(f"No service {service!r}: one of {', '.join(SERVICES)}.")
    services = [service] if service else list(SERVICES)
    if database_url is not None:
        if "{service}" not in database_url and service is None:
            raise _fail("--database-url names one service's database: give --service too, or put {service} in it.")
        return [(name, database_url.replace("{service}", name)) for name in services]
    folder = _data_dir(data_dir)
    urls = [(name, running_database_url(folder, name)) for name in services]
    if any(url is None for _, url in urls):
        raise _fail(f"No Fangpin system is running from {folder} (its PostgreSQL is not up): start it with "
                    "./fangpin up, give its folder with --data-dir, or give --database-url.")
    return urls


def _signing_key(data_dir: Optional[Path]):
    from runtime.cli import local_settings
    from runtime.integrity import signing_key

    settings, _ = local_settings(_data_dir(data_dir))
    try:
        return signing_key(settings.audit_signing_key)
    except ValueError:
        raise _fail("FANGPIN_AUDIT_SIGNING_KEY is not 64 hex digits (32 bytes); `fangpin keys new` prints one.") from None


def _public_key(public_key: Optional[str], data_dir: Optional[Path]):
    from runtime.integrity import public_key as from_hex

    if public_key is None:
        return _signing_key(data_dir).public_key()
    try:
        return from_hex(public_key)
    except ValueError:
        raise _fail("--public-key is not an Ed25519 public key (64 hex digits): `fangpin audit public-key` prints it.") from None


def _witnessed(path: Path) -> dict[str, dict[int, dict[str, Any]]]:
    from audit.verify import AuditError
    from audit.witness import read_witness

    try:
        return read_witness(path)
    except AuditError as exc:
        raise _fail(str(exc)) from None


def _progress_display(enabled: bool):
    from rich.progress import (
        BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:,.0f} rows/s" if task.speed else "")  # verify reads each event twice (two passes)

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(), TimeRemainingColumn(),
                    console=console, disable=not enabled, transient=True)


@app.command()
def verify(
    service: Optional[str] = typer.Option(None, help=_SERVICE_HELP),
    witness: Optional[Path] = typer.Option(None, help="checkpoints an outside witness keeps (`fangpin audit checkpoints`): "
                                           "each must be in the store, unchanged"),
    data_dir: Optional[Path] = typer.Option(None, help=_DATA_DIR_HELP),
    database_url: Optional[str] = typer.Option(None, help=_DATABASE_URL_HELP),
    public_key: Optional[str] = typer.Option(None, help="the services' checkpoint key (hex) if this machine does not hold "
                                             "their keys: what `fangpin audit public-key` prints on theirs"),
) -> None:
    """Recompute every event's hash and every stream's chain, and check the store against its signed
    checkpoints; each finding is named (service, stream, position, what is wrong). Exit 0 intact,
    2 findings, 1 could not check."""
    from audit.verify import AuditError, verify_service
    from contracts.topics import SERVICES

    targets = _databases(service, data_dir, database_url)
    key = _public_key(public_key, data_dir)
    witnessed = _witnessed(witness) if witness else {}
    if unknown := set(witnessed) - set(SERVICES):
        raise _fail(f"{witness} holds checkpoints of {', '.join(sorted(unknown))}: no such service.")
    findings = 0
    with _progress_display(console.is_terminal) as progress:
        for name, url in targets:
            task = progress.add_task(name, total=None)

            def show(done: int, total: int, task=task) -> None:
                progress.update(task, completed=done, total=total)

            try:
                report = asyncio.run(verify_service(url, name, key, show, witnessed.get(name)))
            except AuditError as exc:
                raise _fail(f"{exc}. Is the system running (./fangpin up)? Or give --database-url.") from None
            progress.remove_task(task)
            for finding in report.findings:
                console.print(str(finding), style="red", markup=False)
            console.print(report.summary(), markup=False, style=None if report.intact else "bold")
            findings += len(report.findings)
    if findings:
        console.print(f"{findings:,} finding{'s' if findings > 1 else ''}: the stores above are not as they were recorded.",
                      style="red", markup=False)
        raise typer.Exit(2)


@app.command()
def rebuild(
    service: str = typer.Option(..., help="intake, screening, assistance, exit_review or notifier"),
    upto_position: Optional[int] = typer.Option(None, help="rebuild from the events up to this global position only "
                                                "(the live tables then differ by what came after it)"),
    keep: bool = typer.Option(False, help="keep the scratch schema the views were rebuilt into, to inspect"),
    data_dir: Optional[Path] = typer.Option(None, help=_DATA_DIR_HELP),
    database_url: Optional[str] = typer.Option(None, help=_DATABASE_URL_HELP),
) -> None:
    """Rebuild a service's views from its own event store into a scratch schema and compare them with
    the live tables: the first differences, each with its key and the last event naming it. Exit 0
    equal, 2 different, 1 could not rebuild. (Tables mirrored from other services' topics: `audit replay`.)"""
    from audit.rebuild import rebuild_and_compare
    from audit.verify import AuditError

    ((name, url),) = _databases(service, data_dir, database_url)
    with _progress_display(console.is_terminal) as progress:
        task = progress.add_task(f"rebuilding {name}", total=None)
        try:
            report = asyncio.run(rebuild_and_compare(
                url, name, upto_position, keep, lambda done, total: progress.update(task, completed=done, total=total)))
        except AuditError as exc:
            raise _fail(f"{exc}.") from None
    _show_differences(report)


@app.command()
def replay(
    service: str = typer.Option(..., help="intake, screening, assistance, exit_review or notifier"),
    from_topics: bool = typer.Option(False, "--from-topics", help="rebuild from the Kafka topics (the only source a replay "
                                     "has; required, so that the command says where it reads)"),
    kafka_bootstrap: str = typer.Option("127.0.0.1:9092", help="the broker (host:port); `fangpin up`'s by default"),
    topic_prefix: str = typer.Option("", help="the topic prefix the services use (FANGPIN_TOPIC_PREFIX)"),
    keep: bool = typer.Option(False, help="keep the database the topics were replayed into, to inspect"),
    data_dir: Optional[Path] = typer.Option(None, help=_DATA_DIR_HELP),
    database_url: Optional[str] = typer.Option(None, help=_DATABASE_URL_HELP),
) -> None:
    """Replay a service from the topics alone into a fresh database (its own topic becomes its event
    store, the topics it consumes feed its mirrored tables) and compare every view with the live one.
    Sends nothing to anyone: no handler, relay or job runs. Exit 0 equal, 2 different, 1 could not replay."""
    from audit.replay import replay_and_compare
    from audit.verify import AuditError

    if not from_topics:
        raise _fail("A replay reads the Kafka topics: give --from-topics (to rebuild from the event store: `audit rebuild`).")
    ((name, url),) = _databases(service, data_dir, database_url)
    with _progress_display(console.is_terminal) as progress:
        tasks: dict[str, Any] = {}

        def show(what: str, done: int) -> None:
            if what not in tasks:
                tasks[what] = progress.add_task(f"reading {what}", total=None)
            progress.update(tasks[what], completed=done)

        try:
            report = asyncio.run(replay_and_compare(url, name, kafka_bootstrap, topic_prefix, keep, show))
        except AuditError as exc:
            raise _fail(f"{exc}.") from None
    _show_differences(report)


def _show_differences(report) -> None:
    """Each table's first differences, the summary line; exit 2 when anything differs."""
    for table in report.tables:
        for difference in table.shown or []:
            console.print(str(difference), style="red", markup=False)
        if table.different > len(table.shown or []):
            console.print(f"{table.table}: {table.different - len(table.shown):,} more rows differ", style="red", markup=False)
    console.print(report.summary(), markup=False, style=None if report.equal else "bold")
    if not report.equal:
        raise typer.Exit(2)


@app.command("public-key")
def public_key_command(data_dir: Optional[Path] = typer.Option(None, help=_DATA_DIR_HELP)) -> None:
    """Print the public key (hex) that checks the services' signed checkpoints, for a witness or an auditor."""
    from runtime.integrity import public_key_hex

    typer.echo(public_key_hex(_signing_key(data_dir)))


@app.command()
def checkpoints(
    service: str = typer.Option(..., help="intake, screening, assistance, exit_review or notifier"),
    out: Path = typer.Option(..., help="the file to write: one checkpoint a line (JSON)"),
    data_dir: Optional[Path] = typer.Option(None, help=_DATA_DIR_HELP),
    database_url: Optional[str] = typer.Option(None, help=_DATABASE_URL_HELP),
) -> None:
    """Export a service's signed checkpoints as JSON lines, for an outside witness to keep: `fangpin
    audit verify --witness FILE` then finds any of them missing or changed in the store."""
    from audit.verify import AuditError
    from audit.witness import export_checkpoints

    ((name, url),) = _databases(service, data_dir, database_url)
    try:
        with out.open("wb") as file:
            count, last = asyncio.run(export_checkpoints(url, name, file))
    except AuditError as exc:
        raise _fail(f"{exc}. Is the system running (./fangpin up)? Or give --database-url.") from None
    except OSError as exc:
        raise _fail(f"{out} cannot be written: {exc.strerror}.") from None
    if last is None:
        console.print(f"{name} has signed no checkpoint yet; {out} is empty.", markup=False)
    else:
        console.print(f"{count:,} checkpoints of {name} written to {out} (the last, number {last['sequence']}, up to "
                      f"global position {last['upto_position']:,}: root {last['root']}).", markup=False)


def _moment(as_of: Optional[str]):
    """--as-of: an ISO 8601 time with its zone, or None."""
    from runtime.clock import parse_moment

    if as_of is None:
        return None
    try:
        return parse_moment(as_of)
    except ValueError as exc:
        raise _fail(f"--as-of {exc}.") from None


def _search_display(progress):
    """(service, positions searched, positions in its store) -> the progress display, a task per service."""
    tasks: dict[str, Any] = {}

    def show(service: str, done: int, total: int) -> None:
        if service not in tasks:
            tasks[service] = progress.add_task(f"{service}: searching", total=total)
        progress.update(tasks[service], completed=done, total=total)

    return show


def _no_history(household: str, as_of: Optional[str]) -> typer.Exit:
    return _fail(f"No event of household {household!r} in any service's store"
                 + (f" recorded at or before {as_of}" if as_of else "") + ": is the household id right?")


@app.command()
def timeline(
    household: str = typer.Option(..., help="the household's id, as the registry gives it"),
    as_of: Optional[str] = typer.Option(None, help="only what was recorded at or before this time, e.g. "
                                        "2026-11-25T18:00:00+08:00"),
    json_output: bool = typer.Option(False, "--json", help="a JSON list for machines (times in UTC) instead of the table"),
    data_dir: Optional[Path] = typer.Option(None, help=_DATA_DIR_HELP),
    database_url: Optional[str] = typer.Option(None, help=_DATABASE_URL_HELP),
) -> None:
    """One household's history across the five services: each event with its time (UTC+08:00 in the
    table), service, actor, type and a one-line summary, in causal order (after the event that caused
    it), then by time. Exit 0, or 1 (no such household, or the stores could not be read)."""
    import orjson

    from audit.timeline import causal_order, household_events, timeline_entries, timeline_table
    from audit.verify import AuditError

    moment = _moment(as_of)
    targets = _databases(None, data_dir, database_url)
    with _progress_display(console.is_terminal) as progress:
        try:
            events = asyncio.run(household_events(targets, household, moment, _search_display(progress)))
        except AuditError as exc:
            raise _fail(f"{exc}. Is the system running (./fangpin up)? Or give --database-url.") from None
    if not events:
        raise _no_history(household, as_of)
    entries = timeline_entries(causal_order(events), household)
    if json_output:
        typer.echo(orjson.dumps(entries, option=orjson.OPT_INDENT_2).decode())
    elif console.is_terminal:
        console.print(timeline_table(entries, household, moment))
    else:  # piped to a file or a program: one line per row, however long
        Console(width=300, highlight=False).print(timeline_table(entries, household, moment))


@app.command()
def export(
    household: str = typer.Option(..., help="the household's id, as the registry gives it"),
    out: Path = typer.Option(..., help="the bundle to write (JSON)"),
    as_of: Optional[str] = typer.Option(None, help="only what was recorded at or before this time, e.g. "
                                        "2026-11-25T18:00:00+08:00"),
    data_dir: Optional[Path] = typer.Option(None, help=_DATA_DIR_HELP),
    database_url: Optional[str] = typer.Option(None, help=_DATABASE_URL_HELP),
    public_key: Optional[str] = typer.Option(None, help="the services' checkpoint key (hex) if this machine does not hold "
                                             "their keys: what `fangpin audit public-key` prints on theirs"),
) -> None:
    """Write one household's events (those of its timeline), each with its proof in its service's
    signed checkpoint, and the public key, to a bundle that `fangpin audit check-bundle` checks with no
    database. Exit 0 written; 2 the store disagrees with its checkpoints (run verify); 1 not written
    (no such household, events not yet under a checkpoint: wait a few seconds, or no store)."""
    from audit.bundle import NotCovered, StoreDisagrees, bundle_bytes, export_bundle
    from audit.verify import AuditError

    moment = _moment(as_of)
    targets = _databases(None, data_dir, database_url)
    key = _public_key(public_key, data_dir)
    with _progress_display(console.is_terminal) as progress:
        tasks: dict[str, Any] = {}

        def leaves(service: str, done: int, total: int) -> None:
            if service not in tasks:
                tasks[service] = progress.add_task(f"{service}: proving", total=total)
            progress.update(tasks[service], completed=done)

        try:
            bundle = asyncio.run(export_bundle(targets, household, moment, key, _search_display(progress), leaves))
        except NotCovered as exc:
            raise _fail(f"{exc}.") from None
        except StoreDisagrees as exc:
            console.print(f"{exc}.", style="red", markup=False)
            raise typer.Exit(2) from None
        except AuditError as exc:
            raise _fail(f"{exc}. Is the system running (./fangpin up)? Or give --database-url.") from None
    if bundle is None:
        raise _no_history(household, as_of)
    try:
        out.write_bytes(bundle_bytes(bundle))
    except OSError as exc:
        raise _fail(f"{out} cannot be written: {exc.strerror}.") from None
    events = sum(len(entry["events"]) for entry in bundle["services"])
    proven = ", ".join(f"{entry['service']} checkpoint {entry['checkpoint']['sequence']}" for entry in bundle["services"])
    console.print(f"{events:,} events of household {household} written to {out}, each with its proof ({proven}). "
                  f"Check it anywhere: fangpin audit check-bundle {out} --public-key {bundle['public_key']}",
                  markup=False)


@app.command("check-bundle")
def check_bundle_command(
    file: Path = typer.Argument(..., help="a bundle `fangpin audit export` wrote"),
    public_key: Optional[str] = typer.Option(None, help="the services' checkpoint key (hex), as `fangpin audit public-key` "
                                             "prints it on their machine: without it, the bundle's own key is used"),
) -> None:
    """Check a household's bundle with no database: each event's hash from its fields, its inclusion
    proof against its service's checkpoint, each checkpoint's signature, each stream's chain and the
    file's digest. Each finding names the event (service, stream, position, event id) or the
    checkpoint. Exit 0 as exported, 2 findings, 1 not a bundle or not readable."""
    from audit.bundle import NotABundle, check_bundle, read_bundle
    from runtime.integrity import public_key as from_hex, public_key_hex

    given = None
    if public_key is not None:
        try:
            given = public_key_hex(from_hex(public_key))
        except ValueError:
            raise _fail("--public-key is not an Ed25519 public key (64 hex digits): `fangpin audit public-key` "
                        "prints it.") from None
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise _fail(f"{file} cannot be read: {exc.strerror}.") from None
    try:
        bundle = read_bundle(raw)
    except NotABundle as exc:
        raise _fail(f"{file} {exc}.") from None
    report = check_bundle(bundle, given, raw)
    for finding in report.findings:
        console.print(str(finding), style="red", markup=False)
    console.print(report.summary(), markup=False, style=None if report.intact else "bold")
    console.print(report.key_note(), markup=False)
    if not report.intact:
        raise typer.Exit(2)
