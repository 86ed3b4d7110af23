"""`fangpin audit export` and `fangpin audit check-bundle` (issue 15, part 3): a household's events
exported with their proofs in each service's signed checkpoint check with no database; a byte or a
field changed anywhere fails the check, naming the event or the checkpoint; what is not a bundle is
refused in one line."""
from __future__ import annotations

from datetime import timedelta

import asyncpg
import orjson
import pytest
import sqlalchemy as sa

from audit.bundle import bundle_bytes, check_bundle, read_bundle
from contracts.envelope import Actor, utc_spelling
from contracts.notifier import NotificationRead
from tests.integration.audit.test_timeline import without_task_chain
from runtime.checkpoints import CheckpointWriter
from runtime.eventstore import EventMetadata, NewEvent
from runtime.integrity import public_key_hex, signing_key
from runtime.service import unit_of_work
from runtime.settings import Settings
from tests.factories import household
from tests.integration.audit.household_history import HOUSEHOLD, START, cli_run, household_history

pytestmark = pytest.mark.integration
SERVICES_KEY = public_key_hex(signing_key(Settings().audit_signing_key))  # the development key the tests run on


@pytest.fixture(autouse=True)
def _no_keys_file(monkeypatch, tmp_path):
    monkeypatch.setattr("runtime.cli.DATA_DIR", tmp_path)


def _no_database_from_here(monkeypatch) -> None:
    """The check must not reach for a database: any attempt fails the test."""
    async def refuse(*args, **kwargs):
        raise AssertionError("check-bundle reached for a database")

    monkeypatch.setattr(asyncpg, "connect", refuse)


async def _exported(history, out, *args: str) -> bytes:
    result = await cli_run("export", "--household", HOUSEHOLD, "--out", str(out), "--database-url",
                           history.database_url, *args)
    assert result.exit_code == 0, result.output
    return out.read_bytes()


def _entry(bundle: dict, service: str) -> dict:
    return next(entry for entry in bundle["services"] if entry["service"] == service)


def _event(bundle: dict, service: str, event_type: str) -> dict:
    return next(e for e in _entry(bundle, service)["events"] if e["envelope"]["event_type"] == event_type)


async def test_a_households_bundle_checks_offline_against_the_services_key(run_services, service_context, tmp_path,
                                                                          monkeypatch):
    history = await household_history(run_services, service_context)
    raw = await _exported(history, tmp_path / "TL1.bundle.json")
    timeline = await cli_run("timeline", "--household", HOUSEHOLD, "--json", "--database-url", history.database_url)
    printed_key = await cli_run("public-key")
    bundle = orjson.loads(raw)
    assert bundle["household_id"] == HOUSEHOLD and bundle["public_key"] == SERVICES_KEY == printed_key.output.strip()
    assert [entry["service"] for entry in bundle["services"]] == ["intake", "screening", "notifier"]
    # The bundle holds the timeline's events, each whole as stored, under a checkpoint that covers it.
    assert {e["envelope"]["event_id"] for entry in bundle["services"] for e in entry["events"]} == {
        e["event_id"] for e in orjson.loads(timeline.output)}
    for entry in bundle["services"]:
        assert all(e["global_position"] <= entry["checkpoint"]["upto_position"] for e in entry["events"])
    assert _event(bundle, "intake", "RiskCluesRaised")["envelope"]["household_id"] is None

    _no_database_from_here(monkeypatch)
    report = check_bundle(read_bundle(raw), SERVICES_KEY, raw)
    assert report.intact, [str(f) for f in report.findings]
    assert sorted(report.services) == sorted((e["service"], len(e["events"]), e["checkpoint"]["sequence"])
                                             for e in bundle["services"])
    checked = await cli_run("check-bundle", str(tmp_path / "TL1.bundle.json"), "--public-key", SERVICES_KEY)
    assert checked.exit_code == 0, checked.output
    exported = sum(len(entry["events"]) for entry in bundle["services"])
    assert f"{exported} events of household TL1 in 3 services, each proven in its service's signed checkpoint" in checked.output
    assert "the bundle is as exported" in checked.output and "Checked with the public key given" in checked.output
    own_key = await cli_run("check-bundle", str(tmp_path / "TL1.bundle.json"))
    assert own_key.exit_code == 0 and "Checked with the bundle's own public key" in own_key.output
    other = await cli_run("check-bundle", str(tmp_path / "TL1.bundle.json"), "--public-key", "ab" * 32)
    assert other.exit_code == 2 and "bundle: public key: its public key is not the one given" in other.output


def _screening_verified(bundle):
    event = _event(bundle, "screening", "HouseholdVerified")
    event["envelope"]["payload"]["per_capita_net_income"] = "6300.00"
    return event, None


def _notifier_hash(bundle):
    event = _event(bundle, "notifier", "NotificationSent")
    stored = event["envelope"]["hash"]
    event["envelope"]["hash"] = ("0" if stored[0] != "0" else "1") + stored[1:]
    return event, None


def _intake_proof(bundle):
    event = _event(bundle, "intake", "RiskClueRaised")
    node = event["proof"][0]
    event["proof"][0] = node[:-1] + ("0" if node[-1] != "0" else "1")
    return event, None


def _screening_root(bundle):
    checkpoint = _entry(bundle, "screening")["checkpoint"]
    checkpoint["root"] = ("f" if checkpoint["root"][0] != "f" else "e") + checkpoint["root"][1:]
    return None, ("screening", checkpoint["sequence"])


def _notifier_signature(bundle):
    checkpoint = _entry(bundle, "notifier")["checkpoint"]
    checkpoint["signature"] = checkpoint["signature"][:10] + ("a" if checkpoint["signature"][10] != "a" else "b") \
        + checkpoint["signature"][11:]
    return None, ("notifier", checkpoint["sequence"])


@pytest.mark.parametrize("change", [_screening_verified, _notifier_hash, _intake_proof, _screening_root,
                                    _notifier_signature], ids=lambda change: change.__name__.strip("_"))
async def test_one_byte_changed_in_the_bundle_fails_the_check_and_names_the_event_or_checkpoint(
        run_services, service_context, tmp_path, change):
    history = await household_history(run_services, service_context)
    raw = await _exported(history, tmp_path / "TL1.bundle.json")
    bundle = orjson.loads(raw)
    event, checkpoint = change(bundle)
    changed = bundle_bytes(bundle)
    assert len(changed) == len(raw) and sum(a != b for a, b in zip(raw, changed)) == 1  # one byte, nothing else
    (tmp_path / "changed.json").write_bytes(changed)

    result = await cli_run("check-bundle", str(tmp_path / "changed.json"), "--public-key", SERVICES_KEY)
    assert result.exit_code == 2, result.output
    assert "bundle: digest: its digest does not match its content" in result.output
    assert "the bundle is not as exported" in result.output
    if event is not None:
        envelope = event["envelope"]
        named = (f"{envelope['producer']}: stream {envelope['stream_id']} position {envelope['stream_position']}, "
                 f"global position {event['global_position']}, event {envelope['event_id']}: ")
        assert named in result.output, result.output
    else:
        service, sequence = checkpoint
        assert f"{service}: checkpoint {sequence}: checkpoint: its signature does not verify" in result.output


async def test_what_is_not_a_bundle_is_refused_in_one_line_with_exit_1(run_services, service_context, tmp_path):
    history = await household_history(run_services, service_context)
    raw = await _exported(history, tmp_path / "TL1.bundle.json")
    timeline = await cli_run("timeline", "--household", HOUSEHOLD, "--json", "--database-url", history.database_url)
    witness = tmp_path / "intake.checkpoints.jsonl"
    assert (await cli_run("checkpoints", "--service", "intake", "--out", str(witness), "--database-url",
                          history.database_url.replace("{service}", "intake"))).exit_code == 0
    files = {
        "table.txt": (b"Household TL1: 14 events\n", "is not JSON"),
        "timeline.json": (timeline.output.encode(), "is not a Fangpin audit bundle"),  # JSON, of another shape
        "witness.jsonl": (witness.read_bytes(), "is not JSON"),
        "v2.json": (raw.replace(b'"version": 1', b'"version": 2', 1), "format version 2; this fangpin reads version 1"),
    }
    for name, (content, said) in files.items():
        (tmp_path / name).write_bytes(content)
        result = await cli_run("check-bundle", str(tmp_path / name))
        assert result.exit_code == 1 and said in result.output, (name, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
    absent = await cli_run("check-bundle", str(tmp_path / "nosuch.json"))
    assert absent.exit_code == 1 and "nosuch.json cannot be read" in absent.output


async def test_as_of_exports_what_was_recorded_by_then_under_the_first_checkpoint_signed_after(
        run_services, service_context, tmp_path):
    history = await household_history(run_services, service_context)
    as_of = START + timedelta(days=1)  # before the notice closed
    raw = await _exported(history, tmp_path / "TL1.as-of.json", "--as-of", as_of.isoformat())
    bundle = read_bundle(raw)
    assert bundle["as_of"] == as_of.isoformat()
    events = [e["envelope"] for entry in bundle["services"] for e in entry["events"]]
    assert len(without_task_chain(events)) == 10 and all(e["recorded_at"] <= utc_spelling(as_of) for e in events)
    screening = _entry(bundle, "screening")["checkpoint"]
    assert screening["signed_at"] > utc_spelling(as_of)  # signed after the cut, covering what came before it
    assert check_bundle(bundle, SERVICES_KEY, raw).intact


async def test_an_unknown_household_is_not_exported_one_line_exit_1(run_services, service_context, tmp_path):
    history = await household_history(run_services, service_context)
    unknown = await cli_run("export", "--household", "nosuch", "--out", str(tmp_path / "x.json"), "--database-url",
                            history.database_url)
    assert unknown.exit_code == 1 and "No event of household 'nosuch'" in unknown.output
    assert len(unknown.output.strip().splitlines()) == 1 and not (tmp_path / "x.json").exists()


async def test_events_no_checkpoint_covers_yet_are_not_exported_the_user_is_told_to_wait(
        run_services, service_context, tmp_path):
    async with run_services("intake") as system:  # checkpoint_interval_seconds=0: no checkpoint is signed
        county = system.token("county_officer", "410721")
        assert (await system.clients["intake"].post("/v1/households", headers=county,
                                                    json=household("NC1", 7))).status_code == 201
        for other in ("screening", "assistance", "exit_review", "notifier"):
            await service_context(other)
        url = system.settings["intake"].database_url.replace("_intake?", "_{service}?")
        result = await cli_run("export", "--household", "NC1", "--out", str(tmp_path / "NC1.json"), "--database-url", url)
    assert result.exit_code == 1, result.output
    assert ("intake has signed no checkpoint yet, so household NC1's events there cannot be proven: wait for its first "
            "(every FANGPIN_CHECKPOINT_INTERVAL_SECONDS; 0 signs none) and export again.") in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "NC1.json").exists()


async def test_a_store_that_disagrees_with_its_checkpoint_is_not_exported_exit_2(service_context, tmp_path):
    contexts = {name: await service_context(name) for name in ("intake", "screening", "assistance", "exit_review",
                                                              "notifier")}
    ctx = contexts["notifier"]
    meta = EventMetadata(actor=Actor(kind="system", id="test"))
    async with unit_of_work(ctx, meta) as uow:
        for n, household_id in enumerate(("HD1", "HD2", "HD1")):
            await uow.append(f"notification-{n}", 0, [NewEvent(NotificationRead(
                notification_id=str(n), staff_id="cadre-1", read_at=START), household_id=household_id)])
    assert (await CheckpointWriter(ctx).write())["sequence"] == 1
    url = ctx.settings.database_url.replace("_notifier?", "_{service}?")

    async def export():
        return await cli_run("export", "--household", "HD1", "--out", str(tmp_path / "HD1.json"), "--database-url", url)

    assert (await export()).exit_code == 0
    async with ctx.sessions() as session, session.begin():  # another household's event, deleted: the tree differs
        await session.execute(sa.text("delete from events where household_id = 'HD2'"))
    gone = await export()
    assert gone.exit_code == 2, gone.output
    assert ("notifier: the events up to global position 3 do not give the tree checkpoint 1 signs: run "
            "`fangpin audit verify --service notifier`") in gone.output
    async with ctx.sessions() as session, session.begin():  # the household's own event, altered
        await session.execute(sa.text("update events set payload = jsonb_set(payload, '{staff_id}', '\"x\"') "
                                      "where stream_id = 'notification-0'"))
    altered = await export()
    assert altered.exit_code == 2 and "does not give its hash: run `fangpin audit verify" in altered.output
