"""Starting and stopping the embedded system as an operator does, with `fangpin up` as a process of its
own: Ctrl-C and a closed terminal stop the services, then the broker, then PostgreSQL; a second system
on the same ports is refused before anything starts; what a `fangpin up` killed with SIGKILL left
running is stopped by the next `down` or `up`, never used again."""
from __future__ import annotations

import fcntl
import os
import random
import select
import signal
import socket
import subprocess
import sys
import termios
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from threading import Thread

import psutil
import pytest
from typer.testing import CliRunner

from contracts.topics import SERVICES
from runtime.cli import app
from runtime.embedded import EmbeddedSystem, TansuBroker, free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]
FANGPIN = [sys.executable, "-c", "from runtime.cli import main; main()"]  # what ./fangpin execs, from this tree


def free_ports() -> tuple[int, int]:
    """A broker port and the first of five consecutive free service ports (`up --ports-from`)."""
    while True:
        first = random.randrange(20_000, 60_000)
        ports = [first - 1, *range(first, first + 5)]
        try:
            for port in ports:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first - 1, first


def up_command(data_dir: Path, kafka_port: int, first_port: int) -> list[str]:
    return [*FANGPIN, "up", "--data-dir", str(data_dir), "--kafka-port", str(kafka_port), "--ports-from", str(first_port)]


class Up:
    """`fangpin up` in a process group of its own, as a terminal's foreground job: os.killpg is what
    Ctrl-C (SIGINT) does. With `terminal`, it runs in a terminal of its own (a pseudo-terminal it
    controls, as a shell's job does) that hang_up() closes."""

    def __init__(self, data_dir: Path, kafka_port: int, first_port: int, terminal: bool = False) -> None:
        self.data_dir = data_dir
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.output_path = data_dir.parent / f"{data_dir.name}-up-{uuid.uuid4().hex[:6]}.out"
        command = up_command(data_dir, kafka_port, first_port)
        if not terminal:
            with self.output_path.open("wb") as out:
                self.process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                                start_new_session=True)
            return
        self.output_path.touch()  # read before the reader's first line
        self.terminal, side = os.openpty()
        self.process = subprocess.Popen(command, cwd=REPO, stdin=side, stdout=side, stderr=side, start_new_session=True,
                                        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(side)
        self.reading = True
        self.reader = Thread(target=self._read_terminal, daemon=True)
        self.reader.start()

    def _read_terminal(self) -> None:
        with self.output_path.open("ab") as out:
            while self.reading:
                if select.select([self.terminal], [], [], 0.1)[0]:
                    try:
                        out.write(os.read(self.terminal, 65536))
                    except OSError:
                        return
                    out.flush()

    def hang_up(self) -> None:
        """Close the terminal: the kernel sends SIGHUP to `up` (and to its process group), and what
        `up` writes to the terminal from then on fails."""
        self.reading = False
        self.reader.join()
        os.close(self.terminal)

    @property
    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def wait_until_up(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while "Fangpin is up" not in self.output:
            assert self.process.poll() is None, f"`fangpin up` exited ({self.process.returncode}):\n{self.output}"
            assert time.monotonic() < deadline, f"not up within {timeout}s:\n{self.output}"
            time.sleep(0.2)

    def parts(self) -> dict[str, psutil.Process]:
        """Its five services, Tansu and PostgreSQL, by name."""
        found = {}
        for child in psutil.Process(self.process.pid).children():
            command = child.cmdline()
            if "runtime.serve" in command:
                found[command[-1]] = child
            elif "--listener-url" in command:
                found["tansu"] = child
        found["postgres"] = psutil.Process(int((self.data_dir / "pg" / "postmaster.pid").read_text().split()[0]))
        assert set(found) == {*SERVICES, "tansu", "postgres"}, found
        return found


def running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def exit_times(processes: dict[str, psutil.Process], timeout: float = 90) -> dict[str, float]:
    """When each process was first seen gone, watching from now: the start of the sweep that found it.
    Processes found gone in one sweep share its time, since the sweep cannot tell which went first
    (a service reaped and the broker stopped right after it can both fall between two sweeps)."""
    gone: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(gone) < len(processes) and time.monotonic() < deadline:
        sweep = time.monotonic()
        for name, process in processes.items():
            if name not in gone and not running(process):
                gone[name] = sweep
        time.sleep(0.01)
    return gone


def assert_stopped_in_order(gone: dict[str, float], parts: dict[str, psutil.Process]) -> None:
    """Each later part was not seen gone in an earlier sweep than one it must outlive (stopping in the
    wrong order shows as whole sweeps apart: a service takes a second or more to stop)."""
    assert set(gone) == set(parts), f"still running: {set(parts) - set(gone)}"
    last_service = max(gone[service] for service in SERVICES)
    assert last_service <= gone["tansu"], f"the broker stopped while a service ran: {gone}"
    assert gone["tansu"] <= gone["postgres"], f"PostgreSQL stopped before the broker: {gone}"


@pytest.fixture
def leave_nothing_running(tmp_path):
    """Whatever a test's systems leave running (a failed test), ended: the processes of its brokers
    and services (found by port, so it does not rely on the code under test) and its PostgreSQLs."""
    systems: list[tuple[Up | None, int]] = []
    yield systems
    for up, kafka_port in systems:
        if up and up.process.poll() is None:
            os.killpg(up.process.pid, signal.SIGKILL)
            up.process.wait()
    bootstraps = {f"127.0.0.1:{port}" for _, port in systems}
    ours = []
    for process in psutil.process_iter():
        try:
            command = " ".join(process.cmdline())
            if (any(f"tcp://{b} " in command + " " for b in bootstraps)
                    or process.environ().get("FANGPIN_KAFKA_BOOTSTRAP") in bootstraps
                    or (process.name() == "postgres" and f"-D {tmp_path}" in command)):
                ours.append(process)
        except psutil.Error:
            pass
    for process in ours:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(ours, timeout=20)


def test_ctrl_c_stops_the_services_then_the_broker_then_postgres_and_a_second_system_on_its_ports_is_refused(
        tmp_path, leave_nothing_running):
    kafka_port, first_port = free_ports()
    first = Up(tmp_path / "first", kafka_port, first_port)
    leave_nothing_running.append((first, kafka_port))
    first.wait_until_up()
    parts = first.parts()

    # Another data folder, the same ports: refused before anything is started or written.
    second_dir = tmp_path / "second"
    second = subprocess.run(up_command(second_dir, kafka_port, first_port), cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    said = " ".join(second.stdout.split())
    assert second.returncode == 1, said
    assert f"{kafka_port} (Tansu), {first_port} (intake)" in said, said
    assert f"another Fangpin (pid {first.process.pid}, data folder {first.data_dir})" in said, said
    assert "Fangpin is up" not in said and not second_dir.exists()
    assert all(running(process) for process in parts.values()), "the first system was disturbed"

    os.killpg(first.process.pid, signal.SIGINT)  # Ctrl-C in the terminal `up` runs in
    gone = exit_times(parts)
    assert first.process.wait(30) == 0, first.output
    assert_stopped_in_order(gone, parts)
    assert not (first.data_dir / "fangpin.pid").exists()


def test_closing_the_terminal_stops_everything_and_removes_the_pid_file(tmp_path, leave_nothing_running):
    kafka_port, first_port = free_ports()
    up = Up(tmp_path / "system", kafka_port, first_port, terminal=True)
    leave_nothing_running.append((up, kafka_port))
    up.wait_until_up()
    parts = up.parts()

    up.hang_up()
    gone = exit_times(parts)
    assert up.process.wait(30) == 0, up.output
    assert_stopped_in_order(gone, parts)
    assert not (up.data_dir / "fangpin.pid").exists()


def test_down_stops_what_a_hard_killed_up_left_running(tmp_path, leave_nothing_running):
    kafka_port, first_port = free_ports()
    up = Up(tmp_path / "system", kafka_port, first_port)
    leave_nothing_running.append((up, kafka_port))
    up.wait_until_up()
    parts = up.parts()
    os.kill(up.process.pid, signal.SIGKILL)  # cannot be caught: nothing is stopped
    up.process.wait()
    time.sleep(1)
    assert all(running(process) for process in parts.values())

    down = CliRunner().invoke(app, ["down", "--data-dir", str(up.data_dir)])
    said = " ".join(down.output.split())
    assert down.exit_code == 0, said
    assert f"names pid {up.process.pid}, which is not running" in said, said
    assert f"intake (pid {parts['intake'].pid})" in said and f"Tansu (pid {parts['tansu'].pid})" in said, said
    assert f"PostgreSQL (pid {parts['postgres'].pid}" in said, said
    assert not any(running(process) for process in parts.values())
    assert not (up.data_dir / "fangpin.pid").exists()


def test_up_stops_a_postgres_left_by_a_hard_killed_up_before_anything_else(tmp_path, leave_nothing_running):
    """The orphan is stopped (not used again) and the stale pid file removed even when `up` then
    refuses to start, here because another program holds the broker's port."""
    data_dir = tmp_path / "system"
    data_dir.mkdir()
    # A stand-in for `up` killed with SIGKILL after PostgreSQL started (faster than a whole start).
    killed = subprocess.Popen([sys.executable, "-c", "import os, signal, sys; from pathlib import Path; "
                               "from runtime.embedded import EmbeddedPostgres; EmbeddedPostgres(Path(sys.argv[1])); "
                               "os.kill(os.getpid(), signal.SIGKILL)", str(data_dir / "pg")], cwd=REPO)
    assert killed.wait(60) == -signal.SIGKILL
    (data_dir / "fangpin.pid").write_text(str(killed.pid))
    orphan = psutil.Process(int((data_dir / "pg" / "postmaster.pid").read_text().split()[0]))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        kafka_port = holder.getsockname()[1]
        leave_nothing_running.append((None, kafka_port))
        _, first_port = free_ports()
        refused = subprocess.run(up_command(data_dir, kafka_port, first_port), cwd=REPO, capture_output=True, text=True,
                                 timeout=120)
    said = " ".join(refused.stdout.split())
    assert refused.returncode == 1, said
    assert f"PostgreSQL (pid {orphan.pid}" in said and not running(orphan), said
    assert f"Port {kafka_port} (Tansu) in use: by " in said and f"(pid {os.getpid()})" in said, said
    assert not (data_dir / "fangpin.pid").exists() and not (data_dir / "logs").exists()


class _Ready(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"status": "ready"}')

    def log_message(self, *args):
        pass


def test_a_service_is_ready_only_if_this_system_started_it(postgres, broker, tmp_path):
    """Another system's service on the port (here a stand-in answering every /readyz with 200) does
    not make this system's intake ready: intake cannot listen there, and the start fails."""
    other = HTTPServer(("127.0.0.1", 0), _Ready)
    Thread(target=other.serve_forever, daemon=True).start()
    system = EmbeddedSystem(tmp_path, ports={**{s: free_port() for s in SERVICES}, "intake": other.server_address[1]},
                            postgres=postgres, broker=broker, namespace=f"r{uuid.uuid4().hex[:8]}.", services=("intake",))
    try:
        with pytest.raises(RuntimeError, match="intake exited"):
            system.start(lambda _: None)
    finally:
        system.stop(lambda _: None)
        other.shutdown()
        other.server_close()


def test_a_broker_is_not_started_on_a_port_another_broker_listens_on(broker):
    """Tansu would share the port with it (SO_REUSEPORT), and the check that it listens reach the other one."""
    second = TansuBroker(broker.port)
    try:
        with pytest.raises(RuntimeError, match=f"port {broker.port} is in use"):
            second.start()
    finally:
        second.stop()
