"""The `fangpin` CLI's offline commands: JSON Schema of every event, development tokens."""
import json

import pytest
from typer.testing import CliRunner

from contracts.catalog import all_payload_classes
from runtime.auth import decode_token
from runtime.cli import app
from runtime.keys import local_keys
from runtime.problems import Problem
from runtime.settings import Settings

runner = CliRunner()


def test_schema_writes_one_document_per_event_and_the_envelope(tmp_path):
    result = runner.invoke(app, ["schema", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = {p.name for p in tmp_path.iterdir()}
    assert "EventEnvelope.schema.json" in written
    for event_type in all_payload_classes():
        if event_type.startswith("UnitTest"):
            continue  # test-only payloads registered by other unit tests
        assert f"{event_type}.schema.json" in written
    clue = json.loads((tmp_path / "RiskClueRaised.schema.json").read_text())
    assert clue["x-producer"] == "intake" and "household_id" in clue["required"]
    assert "id_number" not in json.dumps(clue), "events never carry raw ID numbers"


def test_token_prints_a_bearer_token_for_the_role_and_region(tmp_path, monkeypatch):
    monkeypatch.setattr("runtime.cli.DATA_DIR", tmp_path)  # no keys.env: the development key
    result = runner.invoke(app, ["token", "--role", "county_officer", "--region", "410700"])
    assert result.exit_code == 0, result.output
    principal = decode_token(Settings(), result.output.strip())
    assert (principal.kind, principal.role, principal.region, principal.sub) == ("staff", "county_officer", "410700", "dev-county_officer")


def test_token_is_signed_with_the_key_fangpin_up_made(tmp_path, monkeypatch):
    monkeypatch.setattr("runtime.cli.DATA_DIR", tmp_path)
    keys = local_keys(tmp_path, create=True)
    result = runner.invoke(app, ["token", "--role", "village_cadre", "--region", "410721001001"])
    assert result.exit_code == 0, result.output
    own = Settings(jwt_secret=keys["FANGPIN_JWT_SECRET"])
    assert decode_token(own, result.output.strip()).role == "village_cadre"
    with pytest.raises(Problem):
        decode_token(Settings(), result.output.strip())


def test_a_staff_token_without_a_region_is_refused_unless_national(tmp_path, monkeypatch):
    monkeypatch.setattr("runtime.cli.DATA_DIR", tmp_path)
    refused = runner.invoke(app, ["token", "--role", "county_officer"])
    assert refused.exit_code == 2 and "give --region" in refused.output
    national = runner.invoke(app, ["token", "--role", "national_officer"])
    assert national.exit_code == 0 and decode_token(Settings(), national.output.strip()).region == ""


class _Processes:
    """What `fangpin up` supervises: real child processes, started by `start_service`."""

    def __init__(self, tmp_path, command):
        import subprocess
        import sys

        self.logs, self.command, self.started = tmp_path, command, []
        self._spawn = lambda: subprocess.Popen([sys.executable, "-c", self.command])
        self.processes = {"screening": self._spawn()}

    def start_service(self, service):
        self.started.append(service)
        self.processes[service] = self._spawn()


def test_up_starts_an_exited_service_again(tmp_path):
    import threading
    import time

    from runtime.cli import supervise

    system = _Processes(tmp_path, "raise SystemExit(70)")
    stopping = {"now": False}
    system.processes["screening"].wait()

    def then_heal_and_stop():
        while not system.started:
            time.sleep(0.05)
        system.command = "import time; time.sleep(30)"  # the restarted process stays up
        time.sleep(1.5)
        stopping["now"] = True

    helper = threading.Thread(target=then_heal_and_stop)
    helper.start()
    supervise(system, stopping)
    helper.join()
    assert 1 <= len(system.started) <= 2 and system.processes["screening"].poll() is None
    system.processes["screening"].kill()


def test_up_stops_when_a_service_keeps_exiting(tmp_path):
    from runtime.cli import RESTARTS_ALLOWED, supervise

    system = _Processes(tmp_path, "raise SystemExit(70)")
    stopping = {"now": False}
    supervise(system, stopping)  # returns by itself
    assert stopping["now"] is True and system.started == ["screening"] * RESTARTS_ALLOWED


def said(result) -> str:
    """What a command printed, without the line breaks and box of a rich error panel."""
    return " ".join(result.output.replace("│", " ").split())


def test_up_refuses_a_simulation_clock_without_a_time_zone_or_outside_development(tmp_path, monkeypatch):
    data_dir = tmp_path / "rehearsal"
    monkeypatch.setenv("FANGPIN_ENVIRONMENT", "development")
    naive = runner.invoke(app, ["up", "--clock", "2025-04-10T10:00", "--data-dir", str(data_dir)])
    assert naive.exit_code == 2 and "has no time zone" in said(naive), naive.output
    garbled = runner.invoke(app, ["up", "--clock", "next tuesday", "--data-dir", str(data_dir)])
    assert garbled.exit_code == 2 and "not an ISO 8601 moment" in said(garbled), garbled.output
    stopped = runner.invoke(app, ["up", "--clock", "2025-04-10T10:00+08:00", "--speed", "0", "--data-dir", str(data_dir)])
    assert stopped.exit_code == 2 and "must be above 0" in said(stopped), stopped.output
    alone = runner.invoke(app, ["up", "--speed", "60", "--data-dir", str(data_dir)])
    assert alone.exit_code == 2 and "give --clock too" in said(alone), alone.output

    monkeypatch.setenv("FANGPIN_ENVIRONMENT", "production")
    refused = runner.invoke(app, ["up", "--clock", "2025-04-10T10:00+08:00", "--data-dir", str(data_dir)])
    assert refused.exit_code == 2, refused.output
    assert "FANGPIN_ENVIRONMENT=development ./fangpin up --clock 2025-04-10T10:00+08:00" in said(refused)
    assert not data_dir.exists()  # refused before anything started or was written


def test_audit_public_key_is_the_public_half_of_the_signing_key_fangpin_up_made(tmp_path, monkeypatch):
    from runtime.integrity import public_key_hex, signing_key
    from runtime.settings import DEV_AUDIT_SIGNING_KEY

    monkeypatch.delenv("FANGPIN_AUDIT_SIGNING_KEY", raising=False)
    monkeypatch.setattr("runtime.cli.DATA_DIR", tmp_path / "none")  # no keys.env: the development key
    assert runner.invoke(app, ["audit", "public-key"]).output.strip() == public_key_hex(signing_key(DEV_AUDIT_SIGNING_KEY))
    keys = local_keys(tmp_path, create=True)
    result = runner.invoke(app, ["audit", "public-key", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == public_key_hex(signing_key(keys["FANGPIN_AUDIT_SIGNING_KEY"]))
    assert keys["FANGPIN_AUDIT_SIGNING_KEY"] != DEV_AUDIT_SIGNING_KEY
    printed = runner.invoke(app, ["keys", "new"]).output
    assert len(bytes.fromhex(dict(line.split("=", 1) for line in printed.split())["FANGPIN_AUDIT_SIGNING_KEY"])) == 32
