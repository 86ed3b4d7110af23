"""The `fangpin` CLI's offline commands: JSON Schema of every event, development tokens."""
import json

from typer.testing import CliRunner

from contracts.catalog import all_payload_classes
from runtime.auth import decode_token
from runtime.cli import app
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


def test_token_prints_a_bearer_token_for_the_role_and_region():
    result = runner.invoke(app, ["token", "--role", "county_officer", "--region", "410700"])
    assert result.exit_code == 0, result.output
    principal = decode_token(Settings(), result.output.strip())
    assert (principal.kind, principal.role, principal.region, principal.sub) == ("staff", "county_officer", "410700", "dev-county_officer")
