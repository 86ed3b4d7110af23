"""FANGPIN_TEST_BACKEND (tests/backends.py): the embedded pair by default, containers when asked for and
Docker answers, the embedded pair with one line saying why when it does not, and a clear refusal of
anything else. No Docker needed: a Docker that does not answer is a DOCKER_HOST on a socket that is
not there."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import backends

ROOT = Path(__file__).resolve().parents[2]
FALLBACK_END = "; running on the embedded PostgreSQL and Tansu"


def _no_probe():
    raise AssertionError("Docker was asked about although containers were not")


@pytest.mark.parametrize("environ", [{}, {"FANGPIN_TEST_BACKEND": ""}, {"FANGPIN_TEST_BACKEND": "embedded"}])
def test_the_default_is_the_embedded_pair_and_docker_is_not_asked(environ):
    assert backends.choose(environ, docker_problem=_no_probe) == backends.Choice("embedded", None)


@pytest.mark.parametrize("value", ["kafka", "docker", "container", "testcontainers"])
def test_an_unknown_backend_is_refused_naming_the_accepted_ones(value):
    with pytest.raises(pytest.UsageError) as refused:
        backends.choose({"FANGPIN_TEST_BACKEND": value}, docker_problem=_no_probe)
    message = str(refused.value)
    assert f"FANGPIN_TEST_BACKEND='{value}'" in message
    assert "embedded" in message and "containers" in message


def test_containers_where_docker_answers_are_containers():
    assert backends.choose({"FANGPIN_TEST_BACKEND": "containers"}, docker_problem=lambda: None) \
        == backends.Choice("containers", None)


def test_containers_without_docker_fall_back_to_the_embedded_pair_saying_why_in_one_line(monkeypatch, tmp_path):
    socket = tmp_path / "no-docker-here.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket}")
    choice = backends.choose({"FANGPIN_TEST_BACKEND": "containers"})
    assert choice.backend == "embedded"
    assert choice.note is not None and "\n" not in choice.note
    assert choice.note.startswith(f"FANGPIN_TEST_BACKEND=containers: Docker does not answer here (unix://{socket}: ")
    assert choice.note.endswith(FALLBACK_END)


def test_containers_without_testcontainers_fall_back_saying_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "testcontainers.core.docker_client", None)  # import fails
    choice = backends.choose({"FANGPIN_TEST_BACKEND": "containers"})
    assert choice.backend == "embedded"
    assert choice.note.startswith("FANGPIN_TEST_BACKEND=containers: testcontainers is not installed (")
    assert choice.note.endswith(FALLBACK_END)


@pytest.mark.parametrize(("test", "embedded_only"), [
    ("faults/test_faults.py", True),
    ("e2e/test_up_down.py", True),
    ("integration/runtime/test_relay.py", False),
    ("security/test_keys.py", False),
    ("faultsy/test_x.py", False),
])
def test_the_fault_suite_and_the_end_to_end_tests_keep_the_embedded_pair(tmp_path, test, embedded_only):
    assert backends.runs_embedded_only(tmp_path / "tests" / test, tmp_path / "tests") is embedded_only


class _Server:
    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://u@h/{database}"


class _Tansu:
    kind = "tansu"
    bootstrap = "127.0.0.1:19092"


class _Kafka:
    kind = "kafka"
    bootstrap = "127.0.0.1:19092"
    idempotent = True


class TestTheProducerIsIdempotentOnKafkaOnly:
    """service_settings (tests/conftest.py) turns the idempotent producer on for Apache Kafka only."""

    @pytest.fixture
    def postgres(self):
        return _Server()

    @pytest.fixture(params=[_Kafka, _Tansu], ids=["kafka", "tansu"])
    def broker(self, request):
        return request.param()

    def test_on_the_sessions_broker(self, service_settings, broker):
        assert service_settings("intake").kafka_idempotence is (broker.kind == "kafka")

    def test_not_on_a_broker_the_test_starts_of_its_own(self, service_settings):
        assert service_settings("intake", kafka_bootstrap="127.0.0.1:29092").kafka_idempotence is False

    def test_as_a_test_asks(self, service_settings, broker):
        asked = broker.kind == "tansu"  # the other way round
        assert service_settings("intake", kafka_idempotence=asked).kafka_idempotence is asked


def _pytest(tmp_path, *args, **environ) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "FANGPIN_TEST_BACKEND"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
         "--basetemp", str(tmp_path / "inner"), *args],
        cwd=ROOT, env={**env, **environ}, capture_output=True, text=True, timeout=120,
    )


def test_a_session_asked_for_containers_without_docker_says_so_once_even_with_q(tmp_path):
    one = f"{Path(__file__).relative_to(ROOT)}::test_containers_where_docker_answers_are_containers"
    run = _pytest(tmp_path, one, FANGPIN_TEST_BACKEND="containers", DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock")
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [line for line in (run.stdout + run.stderr).splitlines() if "FANGPIN_TEST_BACKEND" in line]
    assert len(lines) == 1, run.stdout + run.stderr
    assert lines[0].startswith("FANGPIN_TEST_BACKEND=containers: Docker does not answer here (")
    assert lines[0].endswith(FALLBACK_END)


def test_a_session_with_an_unknown_backend_does_not_start(tmp_path):
    one = f"{Path(__file__).relative_to(ROOT)}::test_containers_where_docker_answers_are_containers"
    run = _pytest(tmp_path, one, FANGPIN_TEST_BACKEND="kafka")
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.stdout + run.stderr
    assert "FANGPIN_TEST_BACKEND='kafka' is not a test backend: use embedded or containers" in run.stderr
    assert "passed" not in run.stdout


@pytest.fixture
def no_docker_client(monkeypatch):
    """testcontainers' containers make their Docker client as they are made: none here, nothing started."""
    import testcontainers.core.container

    monkeypatch.setattr(testcontainers.core.container, "DockerClient", lambda **kwargs: None)


def test_the_postgresql_container_gives_an_asyncpg_url_per_database(monkeypatch, no_docker_client):
    from testcontainers.community.postgres import PostgresContainer

    started = []
    monkeypatch.setattr(PostgresContainer, "start", lambda self: started.append(self) or self)
    monkeypatch.setattr(PostgresContainer, "get_connection_url",
                        lambda self, host=None, driver=None: f"postgresql://test:p%40ss@127.0.0.1:32768/{self.dbname}")
    server = backends.PostgresInContainer()
    assert started == [server.container] and server.container.image == backends.POSTGRES_IMAGE
    assert server.url("t1_intake") == "postgresql+asyncpg://test:p%40ss@127.0.0.1:32768/t1_intake"
    with pytest.raises(pytest.skip.Exception, match="embedded PostgreSQL's data folder"):
        server.server


def test_the_kafka_container_runs_in_kraft_mode_and_is_idempotent(monkeypatch, no_docker_client):
    from testcontainers.community.kafka import KafkaContainer

    started = []
    monkeypatch.setattr(KafkaContainer, "start", lambda self, timeout=30: started.append((self, timeout)) or self)
    monkeypatch.setattr(KafkaContainer, "get_bootstrap_server", lambda self: "127.0.0.1:32769")
    kafka = backends.KafkaInContainer()
    assert started == [(kafka.container, 120)]
    assert kafka.container.kraft_enabled and kafka.container.image == backends.KAFKA_IMAGE
    assert kafka.bootstrap == "127.0.0.1:32769" and kafka.idempotent is True
