"""The checker can fail: a consistent world passes, and each kind of damage is reported, naming what
is missing or doubled. Pure (no system, no broker); the fault suite's baseline scenario does the same
to a real running system (tests/faults/test_faults.py::test_no_fault)."""
from __future__ import annotations

import copy

import pytest

from tests.faults.checker import CONSUMES, Finding, ServiceState, Snapshot, TopicState, evaluate
from tests.faults.load import BatchUpload, Ledger, SingleWarning, Told

pytestmark = pytest.mark.faults

PREFIX = "x."
V1, V2 = "410721001001", "410721002001"


def topic(service: str) -> str:
    return f"{PREFIX}fangpin.{service}.events"


def world() -> tuple[Snapshot, Ledger]:
    """Two households, each warned once (a single warning and a batch row), each with its case and a task."""
    intake = ServiceState(
        events=[(1, "e-h1", "HouseholdRegistered"), (2, "e-c1", "RiskClueRaised"), (4, "e-c2", "RiskCluesRaised")],
        payloads={"e-c1": {"clue_id": "c1"}, "e-c2": {"clues": [{"clue_id": "c2"}]}},
        cursors={topic("intake"): 4},
        tables={
            "warnings": [
                {"department": "civil_affairs", "source_record_id": "S-1", "status": "accepted", "clue_id": "c1",
                 "household_id": "F1"},
                {"department": "civil_affairs", "source_record_id": "B-1", "status": "accepted", "clue_id": "c2",
                 "household_id": "F2"}],
            "clues": [
                {"clue_id": "c1", "household_id": "F1", "department": "civil_affairs", "source_record_id": "S-1"},
                {"clue_id": "c2", "household_id": "F2", "department": "civil_affairs", "source_record_id": "B-1"}],
        },
    )
    screening = ServiceState(
        events=[(1, "e-k1", "VerificationCaseOpened"), (2, "e-k2", "VerificationCaseOpened")],
        payloads={"e-k1": {"case_id": "k1", "clue_id": "c1"}, "e-k2": {"case_id": "k2", "clue_id": "c2"}},
        cursors={topic("screening"): 2},
        inbox=[("e-h1", "applied"), ("e-c1", "applied"), ("e-c2", "applied")],
        tables={"cases": [
            {"case_id": "k1", "household_id": "F1", "region_code": V1, "status": "open", "clue_ids": ["c1"]},
            {"case_id": "k2", "household_id": "F2", "region_code": V2, "status": "open", "clue_ids": ["c2"]}]},
    )
    notifier = ServiceState(
        events=[(1, "e-s1", "StaffRegistered"), (2, "e-s2", "StaffRegistered"), (3, "e-n1", "NotificationSent"),
                (4, "e-n2", "NotificationSent")],
        payloads={"e-n1": {"notification_id": "n1"}, "e-n2": {"notification_id": "n2"}},
        cursors={topic("notifier"): 4},
        # notifier reads intake's, screening's, assistance's and exit_review's topics (routing)
        inbox=[("e-h1", "applied"), ("e-c1", "applied"), ("e-c2", "applied"), ("e-k1", "applied"), ("e-k2", "applied")],
        tables={
            "staff": [{"staff_id": "cadre-1", "role": "village_cadre", "region_code": V1},
                      {"staff_id": "cadre-2", "role": "village_cadre", "region_code": V2},
                      {"staff_id": "town-1", "role": "township_officer", "region_code": V1[:9]}],
            "notifications": [{"notification_id": "n1", "staff_id": "cadre-1", "kind": "verify_household", "reference": "case:k1"},
                              {"notification_id": "n2", "staff_id": "cadre-2", "kind": "verify_household", "reference": "case:k2"}],
        },
    )
    # assistance reads intake's, screening's and notifier's topics (and exit_review's, empty here)
    assistance = ServiceState(inbox=[("e-h1", "applied"), ("e-c1", "ignored"), ("e-c2", "ignored"), ("e-k1", "ignored"),
                                     ("e-k2", "ignored"), ("e-s1", "applied"), ("e-s2", "applied"), ("e-n1", "ignored"),
                                     ("e-n2", "ignored")])
    # exit_review reads intake's, screening's and assistance's topics (its evidence)
    exit_review = ServiceState(inbox=[("e-h1", "applied"), ("e-c1", "applied"), ("e-c2", "applied"), ("e-k1", "ignored"),
                                      ("e-k2", "ignored")])
    services = {"intake": intake, "screening": screening, "notifier": notifier, "assistance": assistance,
                "exit_review": exit_review}
    topics = {}
    for name, state in services.items():
        topics[topic(name)] = TopicState(6, [e for _, e, _ in state.events], len(state.events))
        topics[topic(name) + ".dlq"] = TopicState(6)
    snapshot = Snapshot(services=services, topics=topics, readyz={name: "200" for name in services}, topics_read=True)
    ledger = Ledger()
    ledger.singles["S-1"] = SingleWarning("S-1", "F1", Told("k-1", ["500", "201"], 201, {
        "outcome": "accepted", "warning_id": "w1", "clue_id": "c1", "household_id": "F1"}, 1.0))
    ledger.batches.append(BatchUpload([("B-1", "F2")], Told("k-b", ["ReadError", "200"], 200, {
        "rows": 1, "accepted": 0, "duplicate": 1, "unmatched": 0, "invalid": 0, "rejected": []}, 2.0)))
    return snapshot, ledger


def findings_of(snapshot: Snapshot, ledger: Ledger) -> list[Finding]:
    return evaluate(snapshot, ledger, PREFIX, 6)


def only(findings: list[Finding], check: str, *words: str) -> None:
    """Exactly the findings of `check` (at least one), and one of them names every word."""
    assert findings, "the checker found nothing"
    assert {f.check for f in findings} == {check}, "\n".join(map(str, findings))
    assert any(all(w in f.message for w in words) for f in findings), "\n".join(map(str, findings))


def test_a_consistent_world_passes():
    assert findings_of(*world()) == []
    from runtime.app import load_definition

    # The checker keeps its own copy of who consumes what: held to the services' definitions here.
    assert CONSUMES == {s: load_definition(s).consumes for s in ("intake", "screening", "assistance", "exit_review", "notifier")}


def test_a_lost_clue_row_is_reported_with_its_warning():
    snapshot, ledger = world()
    snapshot.services["intake"].tables["clues"].pop()  # B-1's clue
    found = findings_of(snapshot, ledger)
    assert {f.check for f in found} == {"intake", "screening"}
    assert any(f.check == "intake" and "B-1: 0 clues" in f.message for f in found), found
    assert any(f.check == "intake" and "c2" in f.message and "no clue row" in f.message for f in found), found


def test_a_doubled_clue_is_reported():
    snapshot, ledger = world()
    snapshot.services["intake"].tables["clues"].append(
        {"clue_id": "c9", "household_id": "F1", "department": "civil_affairs", "source_record_id": "S-1"})
    found = findings_of(snapshot, ledger)
    assert any(f.check == "intake" and "S-1: 2 clues" in f.message for f in found), found


def test_a_warning_told_accepted_but_never_stored_is_reported():
    snapshot, ledger = world()
    snapshot.services["intake"].tables["warnings"].pop(0)
    only(findings_of(snapshot, ledger), "intake", "no row in intake's warnings", "S-1")


def test_a_lost_task_is_reported_with_its_case():
    snapshot, ledger = world()
    notifier = snapshot.services["notifier"]
    notifier.tables["notifications"].pop()
    found = findings_of(snapshot, ledger)
    only(found, "notifier", "no task", "case:k2", "cadre-2")


def test_a_doubled_task_is_reported():
    snapshot, ledger = world()
    notifier = snapshot.services["notifier"]
    notifier.tables["notifications"].append({"notification_id": "n3", "staff_id": "cadre-1", "kind": "verify_household", "reference": "case:k1"})
    only(findings_of(snapshot, ledger), "notifier", "doubled", "case:k1", "cadre-1")


def test_a_clue_in_no_case_or_in_two_is_reported():
    snapshot, ledger = world()
    snapshot.services["screening"].tables["cases"][1]["clue_ids"] = []
    only(findings_of(snapshot, ledger), "screening", "in no case", "c2", "told accepted")

    snapshot, ledger = world()
    screening = snapshot.services["screening"]
    screening.tables["cases"].append({"case_id": "k3", "household_id": "F1", "region_code": V1, "status": "open",
                                      "clue_ids": ["c1"]})
    found = findings_of(snapshot, ledger)
    assert any(f.check == "screening" and "c1" in f.message and "two cases" in f.message for f in found), found
    assert any(f.check == "screening" and "F1 (2 open cases)" in f.message for f in found), found
    assert any(f.check == "notifier" and "case:k3" in f.message for f in found), found  # and its task is missing


def test_an_event_missing_from_its_topic_is_reported():
    snapshot, ledger = world()
    snapshot.topics[topic("screening")].event_ids.remove("e-k2")
    only(findings_of(snapshot, ledger), "topics", "1 of screening's 2 events are not on", "2 VerificationCaseOpened e-k2")


def test_a_relay_cursor_behind_the_store_is_reported():
    snapshot, ledger = world()
    snapshot.services["intake"].cursors[topic("intake")] = 2
    only(findings_of(snapshot, ledger), "topics", "intake's relay cursor is at 2", "last position is 4")


def test_a_missing_topic_or_one_of_other_partitions_is_reported():
    snapshot, ledger = world()
    del snapshot.topics[topic("screening") + ".dlq"]
    snapshot.topics[topic("intake")].partitions = 4
    found = findings_of(snapshot, ledger)
    only(found, "topics", "screening.events.dlq does not exist")
    assert any("intake.events has 4 partitions, not 6" in f.message for f in found), found

    snapshot, ledger = world()
    del snapshot.topics[topic("assistance") + ".dlq"]  # nobody consumes assistance's topic yet; its relay makes it
    only(findings_of(snapshot, ledger), "topics", "assistance.events.dlq does not exist")


def test_an_event_a_consumer_never_applied_is_reported():
    snapshot, ledger = world()
    snapshot.services["notifier"].inbox.pop()
    only(findings_of(snapshot, ledger), "inboxes", "notifier has not applied 1 of screening's 2 events", "e-k2")


def test_dead_letters_are_reported():
    snapshot, ledger = world()
    snapshot.topics[topic("screening") + ".dlq"] = TopicState(6, ["e-k2"], 1, "ValueError: boom")
    snapshot.services["notifier"].inbox[1] = ("e-k2", "dead_lettered")
    found = findings_of(snapshot, ledger)
    assert {f.check for f in found} == {"dead_letters", "inboxes"}, found
    assert any("screening.events.dlq holds 1 messages" in f.message and "boom" in f.message for f in found)
    assert any("notifier's inbox has 1 dead-lettered" in f.message for f in found)


def test_a_request_never_answered_or_refused_is_reported():
    snapshot, ledger = world()
    ledger.singles["S-2"] = SingleWarning("S-2", "F2", Told("k-2", ["409", "409", "409"]))
    only(findings_of(snapshot, ledger), "answers", "never got an answer", "S-2", "409")

    snapshot, ledger = world()
    ledger.batches[0].told = Told("k-b", ["200"], 200, {"rows": 1, "accepted": 0, "duplicate": 0, "unmatched": 1,
                                                        "invalid": 0})
    found = findings_of(snapshot, ledger)
    assert any(f.check == "answers" and "not every row accepted" in f.message for f in found), found


def test_a_dead_or_unready_service_is_reported():
    snapshot, ledger = world()
    snapshot.exited["screening"] = -9
    snapshot.readyz["notifier"] = "503 {}"
    found = findings_of(snapshot, ledger)
    only(found, "health", "screening has exited (code -9)")
    assert any("notifier /readyz answered 503" in f.message for f in found)


def test_what_cannot_be_read_is_a_finding():
    snapshot, ledger = world()
    broken = copy.copy(snapshot)
    broken.errors = ["the broker's topics: KafkaConnectionError"]
    broken.topics, broken.topics_read = {}, False
    only(findings_of(broken, ledger), "unreadable", "KafkaConnectionError")


def test_rows_without_their_events_are_reported():
    snapshot, ledger = world()
    notifier = snapshot.services["notifier"]
    notifier.events.pop()  # n2's NotificationSent
    snapshot.services["assistance"].inbox.remove(("e-n2", "ignored"))  # so no consumer saw it either
    snapshot.topics[topic("notifier")].event_ids.remove("e-n2")
    notifier.cursors[topic("notifier")] = 3
    only(findings_of(snapshot, ledger), "notifier", "rows without event: n2")

    snapshot, ledger = world()
    screening = snapshot.services["screening"]
    screening.events.append((3, "e-k9", "VerificationCaseOpened"))
    screening.payloads["e-k9"] = {"case_id": "k9", "clue_id": "c2"}
    snapshot.topics[topic("screening")].event_ids.append("e-k9")
    screening.cursors[topic("screening")] = 3
    for consumer in ("notifier", "assistance", "exit_review"):
        snapshot.services[consumer].inbox.append(("e-k9", "applied"))
    found = findings_of(snapshot, ledger)
    only(found, "screening", "events without row: k9")
    assert any("c2" in f.message and "2 screening events" in f.message for f in found), found


def test_an_unanswered_warning_may_be_stored_once_but_not_twice():
    snapshot, ledger = world()
    ledger.batches[0].told = Told("k-b", ["ReadError"] * 3)  # never answered: B-1 may or may not be stored
    found = findings_of(snapshot, ledger)
    only(found, "answers", "batch 0 (1 rows, key k-b) never got an answer")
    snapshot.services["intake"].tables["clues"].append(
        {"clue_id": "c8", "household_id": "F2", "department": "civil_affairs", "source_record_id": "B-1"})
    found = findings_of(snapshot, ledger)
    assert any(f.check == "intake" and "more than one clue" in f.message and "B-1 (2 clues)" in f.message
               for f in found), found


def test_an_event_twice_in_an_inbox_is_reported():
    snapshot, ledger = world()
    snapshot.services["screening"].inbox.append(("e-c1", "applied"))
    only(findings_of(snapshot, ledger), "inboxes", "screening's inbox holds 1 events twice: e-c1")
