"""`fangpin audit timeline` (issue 15, part 3): a household's history across the services' stores,
in causal order — the warning's clue, the case it opened, the cadre's task, a batch clue whose
envelope names no household, the ladder, the subject — with the causation that links them."""
from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from tests.integration.audit.household_history import (
    HOUSEHOLD, NOTICE_DAYS, START, cli_run, household_history,
)

pytestmark = pytest.mark.integration
# The notifier's tasks for each ladder step (opened by a step, completed by the next): checked on
# their own below, left out of the rest, which follows the household's own path.
TASK_CHAIN = ("TaskOpened", "TaskCompleted", "TaskReminded", "TaskEscalated")


def without_task_chain(entries: list[dict]) -> list[dict]:
    """The entries less the task chain and the notifications of later steps (the first, the visit's
    task, stays: it is the case's reaction the timeline shows)."""
    sent = [e for e in entries if e["event_type"] == "NotificationSent"]
    return [e for e in entries if e["event_type"] not in TASK_CHAIN and (e["event_type"] != "NotificationSent" or e is sent[0])]


LADDER = ["HouseholdVerified", "VillageDeliberated", "PublicNoticePosted", "PublicNoticeClosed", "TownshipReviewed",
          "CountyDecided", "SubjectIdentified"]


@pytest.fixture(autouse=True)
def _no_keys_file(monkeypatch, tmp_path):
    monkeypatch.setattr("runtime.cli.DATA_DIR", tmp_path)


async def _timeline(history, *args: str) -> list[dict]:
    result = await cli_run("timeline", "--household", HOUSEHOLD, "--json", "--database-url", history.database_url, *args)
    assert result.exit_code == 0, result.output
    return orjson.loads(result.output)


async def test_the_timeline_shows_clue_case_task_ladder_and_subject_each_after_its_cause(run_services, service_context):
    history = await household_history(run_services, service_context)
    everything = await _timeline(history)
    # Each step that waits for someone opens a task the next step completes: the visit, the
    # deliberation, the township's review and the county's decision.
    chain = [e for e in everything if e["event_type"] in TASK_CHAIN]
    assert [e["event_type"] for e in chain].count("TaskOpened") == 4
    assert [e["event_type"] for e in chain].count("TaskCompleted") == 4
    line_of = {e["event_id"]: n for n, e in enumerate(everything)}
    completed_by = [everything[line_of[e["causation_id"]]]["event_type"] for e in chain if e["event_type"] == "TaskCompleted"]
    assert completed_by == ["HouseholdVerified", "VillageDeliberated", "TownshipReviewed", "CountyDecided"]
    entries = without_task_chain(everything)
    types = [e["event_type"] for e in entries]
    assert types == ["HouseholdRegistered", "RiskClueRaised", "VerificationCaseOpened", "NotificationSent",
                     "RiskCluesRaised", "ClueAttachedToCase", "NotificationRead", *LADDER], types
    by_type = {e["event_type"]: e for e in entries}

    # The causation chain across the three stores: each reaction names the event it consumed.
    clue, case, task = by_type["RiskClueRaised"], by_type["VerificationCaseOpened"], by_type["NotificationSent"]
    assert (clue["service"], case["service"], task["service"]) == ("intake", "screening", "notifier")
    assert case["causation_id"] == clue["event_id"] and task["causation_id"] == case["event_id"]
    assert clue["correlation_id"] == case["correlation_id"] == task["correlation_id"]
    batch, attached = by_type["RiskCluesRaised"], by_type["ClueAttachedToCase"]
    assert batch["household_id"] is None and attached["causation_id"] == batch["event_id"]
    # Commands from people cause nothing recorded before them; their reactions share their correlation.
    assert all(by_type[t]["causation_id"] is None for t in LADDER if t != "SubjectIdentified")
    assert by_type["SubjectIdentified"]["correlation_id"] == by_type["CountyDecided"]["correlation_id"]
    ladder = [e for e in entries if e["stream_id"] == f"case-{history.case_id}"]
    assert [e["stream_position"] for e in ladder] == list(range(1, len(ladder) + 1))
    line_of = {e["event_id"]: n for n, e in enumerate(entries)}
    assert all(line_of[e["causation_id"]] < n for n, e in enumerate(entries) if e["causation_id"] in line_of)

    # The read task names no household: it is the household's through its notification's stream.
    read = by_type["NotificationRead"]
    assert read["household_id"] is None and read["stream_id"] == f"notification-{history.notification_id}"
    assert read["actor"]["id"] == "cadre-1" and read["actor"]["role"] == "village_cadre"
    assert {e["household_id"] for e in entries} == {HOUSEHOLD, None}  # nothing of the neighbour's

    summaries = {e["event_type"]: e["summary"] for e in entries}
    assert summaries["RiskClueRaised"].endswith("via department_warning from civil_affairs (new_dibao); "
                                                "risks: income_drop")
    assert summaries["RiskCluesRaised"].startswith("batch of ") and "; this household's: clue " in summaries["RiskCluesRaised"]
    assert summaries["RiskCluesRaised"].endswith("via department_warning from civil_affairs (relief_application); "
                                                 "risks: expense_surge")
    assert summaries["VerificationCaseOpened"].startswith(f"case {history.case_id} opened from clue ")
    assert summaries["NotificationSent"] == f"verify_household task to staff cadre-1 (case:{history.case_id})"
    assert summaries["HouseholdVerified"] == ("verified: per-capita net income 6200.00 against the 2026 line 8000: "
                                              "eligible; next: village_deliberation")
    assert summaries["SubjectIdentified"] == "monitoring subject (sudden_hardship); risks: income_drop"
    assert all(e["recorded_at"].endswith("Z") for e in entries)
    assert by_type["PublicNoticeClosed"]["recorded_at"].startswith((START + NOTICE_DAYS).strftime("%Y-%m-%dT%H"))

    table = await cli_run("timeline", "--household", HOUSEHOLD, "--database-url", history.database_url)
    assert table.exit_code == 0, table.output
    assert f"Household {HOUSEHOLD}: {len(everything)} events" in table.output
    lines = table.output.splitlines()
    shown = [next(i for i, line in enumerate(lines) if f" {t} " in line) for t in types]
    assert shown == sorted(shown)  # the table's rows in the same order
    [case_row] = [line for line in lines if " VerificationCaseOpened " in line]
    assert "2026-11-20 09:00:00" in case_row and "#2" in case_row.split("│")[-2]  # China time; after the clue's row


async def test_as_of_cuts_the_timeline_and_bad_input_is_one_line_and_exit_1(run_services, service_context):
    history = await household_history(run_services, service_context)
    before_notice_closed = (START + timedelta(days=1)).isoformat()
    cut = without_task_chain(await _timeline(history, "--as-of", before_notice_closed))
    assert [e["event_type"] for e in cut][-3:] == ["HouseholdVerified", "VillageDeliberated", "PublicNoticePosted"]
    assert len(cut) == 10

    for args, said in (
        (["--household", "nosuch"], "No event of household 'nosuch' in any service's store: is the household id right?"),
        (["--household", HOUSEHOLD, "--as-of", "2026-11-20T08:59:59+08:00"],
         f"No event of household '{HOUSEHOLD}' in any service's store recorded at or before 2026-11-20T08:59:59+08:00"),
        (["--household", HOUSEHOLD, "--as-of", "yesterday"], "--as-of 'yesterday' is not an ISO 8601 moment"),
        (["--household", HOUSEHOLD, "--as-of", "2026-11-21T10:00"], "has no time zone"),
    ):
        result = await cli_run("timeline", *args, "--database-url", history.database_url)
        assert result.exit_code == 1 and said in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
