"""The pure parts of `fangpin audit timeline` (audit/timeline.py): the one-line summary of each event
type, and the causal order of a household's events. No database."""
from __future__ import annotations

from audit.timeline import StoredEvent, causal_order, summarize, timeline_entries

CLUE = {"clue_id": "clue-1", "household_id": "H1", "channel": "department_warning",
        "source": {"department": "civil_affairs", "source_record_id": "R-1"}, "indicator": "new_dibao",
        "amount": None, "observed_at": "2026-11-01T00:00:00Z", "risk_types": ["income_drop"], "priority_groups": [],
        "detail": "new minimum-allowance case"}


def test_each_known_event_type_has_its_own_line_from_its_payload():
    assert summarize("RiskClueRaised", CLUE) == (
        "clue clue-1 via department_warning from civil_affairs (new_dibao); risks: income_drop")
    assert summarize("VerificationCaseOpened", {
        "case_id": "c-1", "household_id": "H1", "region_code": "410721001001", "clue_id": "clue-1",
        "risk_types": ["illness", "income_drop"], "step": "verification_visit", "due_date": "2026-11-27"}) == (
        "case c-1 opened from clue clue-1; risks: illness, income_drop; verification_visit due 2026-11-27")
    assert summarize("HouseholdVerified", {
        "case_id": "c-1", "household_id": "H1", "step": "village_deliberation", "due_date": "2026-11-30",
        "per_capita_net_income": "6200.00", "rigid_expenditure": "0", "education_ok": True, "medical_ok": True,
        "housing_safe": True, "water_safe": True, "monitoring_line": "8000", "income_year": 2026, "eligible": True,
        "reasons": ["per-capita net income 6200.00 is under the monitoring line 8000"],
        "risk_types": ["income_drop"]}) == (
        "verified: per-capita net income 6200.00 against the 2026 line 8000: eligible; next: village_deliberation")
    assert summarize("SubjectIdentified", {"case_id": "c-1", "household_id": "H1", "step": "closed",
                                           "category": "sudden_hardship", "risk_types": ["income_drop"]}) == (
        "monitoring subject (sudden_hardship); risks: income_drop")
    assert summarize("NotificationSent", {"notification_id": "n-1", "staff_id": "cadre-1", "kind": "verify_household",
                                          "subject": "Verify household H1", "reference": "case:c-1"}) == (
        "verify_household task to staff cadre-1 (case:c-1)")
    assert summarize("IdentificationRejected", {"case_id": "c-1", "household_id": "H1", "step": "closed",
                                                "level": "county", "reason": "income verified above the line " * 5}) \
        .startswith("not identified (county): “income verified above the line")
    assert len(summarize("IdentificationRejected", {"level": "county", "reason": "x" * 500})) < 100


def test_a_batch_of_clues_is_summed_up_by_the_households_own_clue():
    other = {**CLUE, "clue_id": "clue-2", "household_id": "H2", "indicator": "extreme_poverty_support"}
    batch = {"clues": [{**other, "region_code": "410721001001"}, {**CLUE, "region_code": "410721001001"}]}
    line = summarize("RiskCluesRaised", batch, "H1")
    assert line == ("batch of 2 clues; this household's: clue clue-1 via department_warning from civil_affairs "
                    "(new_dibao); risks: income_drop")
    assert "clue-2" not in line and "H2" not in line
    assert summarize("RiskCluesRaised", {"clues": batch["clues"][1:]}, "H1").startswith("batch of 1 clue; ")


def test_an_unknown_type_or_a_payload_not_of_its_types_shape_falls_back_to_its_fields():
    assert summarize("SomethingNew", {"plan_id": "p-1", "measures": 3, "nested": {"a": 1}}) == (
        "SomethingNew: plan_id=p-1, measures=3")
    assert summarize("SomethingNew", {}) == "SomethingNew"
    assert summarize("VerificationCaseOpened", {"case_id": "c-1"}) == "VerificationCaseOpened: case_id=c-1"
    assert summarize("HouseholdVerified", ["not", "an", "object"]) == "HouseholdVerified"
    assert len(summarize("SomethingNew", {f"field_{n}": "v" * 30 for n in range(20)})) <= 200


def _event(service: str, position: int, event_id: str, event_type: str, *, stream: str, at: str,
           causation: str | None = None, stream_position: int = 1, household: str | None = "H1") -> StoredEvent:
    return StoredEvent(service, position, {
        "event_id": event_id, "event_type": event_type, "schema_version": 1, "stream_id": stream,
        "stream_position": stream_position, "household_id": household, "region_code": "410721001001",
        "occurred_at": at, "recorded_at": at, "producer": service,
        "actor": {"kind": "system", "id": f"fangpin-{service}", "role": "service", "region": None},
        "correlation_id": "00000000-0000-7000-8000-000000000001", "causation_id": causation, "traceparent": None,
        "prev_hash": "0" * 64, "hash": "1" * 64, "payload": {}})


def _id(n: int) -> str:
    return f"0190f000-0000-7000-8000-{n:012d}"


def test_an_event_comes_after_its_cause_and_its_streams_earlier_event_whatever_the_clocks_say():
    at, later = "2026-11-20T01:00:00.000000Z", "2026-11-20T01:00:05.000000Z"
    clue = _event("intake", 7, _id(5), "RiskClueRaised", stream="clue-1", at=later)
    # screening's clock is behind intake's: its case looks older than the clue that opened it
    case = _event("screening", 3, _id(6), "VerificationCaseOpened", stream="case-1", at=at, causation=_id(5))
    task = _event("notifier", 2, _id(7), "NotificationSent", stream="notification-1", at=at, causation=_id(6))
    read = _event("notifier", 4, _id(9), "NotificationRead", stream="notification-1", at=at, stream_position=2,
                  household=None)
    registered = _event("intake", 5, _id(1), "HouseholdRegistered", stream="household-H1", at=at)
    # one moment (a fixed clock): the time-ordered ids decide
    verified = _event("screening", 4, _id(8), "HouseholdVerified", stream="case-1", at=later, stream_position=2)
    ordered = causal_order([read, verified, task, case, clue, registered])
    assert [e.event_type for e in ordered] == [
        "HouseholdRegistered", "RiskClueRaised", "VerificationCaseOpened", "NotificationSent", "NotificationRead",
        "HouseholdVerified"]


def test_a_cycle_of_causes_in_a_tampered_store_still_lists_every_event_once():
    at = "2026-11-20T01:00:00.000000Z"
    a = _event("intake", 1, _id(1), "A", stream="a", at=at, causation=_id(2))
    b = _event("intake", 2, _id(2), "B", stream="b", at=at, causation=_id(1))
    c = _event("intake", 3, _id(3), "C", stream="c", at=at)
    assert [e.event_type for e in causal_order([c, b, a])] == ["C", "A", "B"]


def test_the_json_entries_carry_the_links_and_the_summary_but_not_the_payload():
    at = "2026-11-20T01:00:00.000000Z"
    case = _event("screening", 3, _id(6), "VerificationCaseOpened", stream="case-1", at=at, causation=_id(5))
    [entry] = timeline_entries([case], "H1")
    assert entry["event_id"] == _id(6) and entry["causation_id"] == _id(5) and entry["service"] == "screening"
    assert entry["recorded_at"] == at and entry["global_position"] == 3 and entry["stream_id"] == "case-1"
    assert entry["actor"] == {"kind": "system", "id": "fangpin-screening", "role": "service", "region": None}
    assert entry["summary"] == "VerificationCaseOpened" and "payload" not in entry
