"""Routing as data (issue 18), pure: the shipped table sends every kind of event the issue lists to
the right role at the right level, a wrong table is refused naming its line and column, working days
skip weekends and holidays and count make-up days, and a task's chain is planned from them."""
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.notifier.domain.calendar import WorkingCalendar
from services.notifier.domain.routing import RoutingError, RoutingTable
from services.notifier.domain.tasks import plan_schedule
from services.notifier.reference import DATA, routing_table, working_calendar

VILLAGE = "410721001001"
CST = ZoneInfo("Asia/Shanghai")
TABLE = routing_table(None)

# event type, payload fields that matter, and who must be told: (role, level, task?)
EXPECTED = [
    ("VerificationCaseOpened", {}, {("village_cadre", "village", True)}),
    ("HouseholdVerified", {"step": "village_deliberation"}, {("village_cadre", "village", True)}),
    ("CaseReturned", {"step": "verification_visit", "reason": "r", "by": "township_review"}, {("village_cadre", "village", True)}),
    ("PublicNoticeClosed", {"step": "township_review"}, {("township_officer", "township", True)}),
    ("TownshipReviewed", {"step": "county_decision"}, {("county_officer", "county", True)}),
    ("ObjectionRaised", {"step": "public_notice", "objection_id": "o1", "by": "x", "reason": "r"},
     {("township_officer", "township", True)}),
    ("CaseStepOverdue", {"step": "verification_visit"}, {("township_officer", "township", True)}),
    ("CaseStepOverdue", {"step": "township_review"}, {("county_officer", "county", True)}),
    ("QualityIssueRaised", {"issue_id": "q1", "kind": "allowance_outside_monitoring", "detail": "d"},
     {("township_officer", "township", True)}),
    ("HelperAssigned", {"helper_id": "h1"}, {("helper", "helper", False), ("township_officer", "township", False)}),
    ("HelperNotFound", {}, {("township_officer", "township", True)}),
    ("PlanGapFound", {"gap": "income_not_recorded", "detail": "d"}, {("helper", "helper", True), ("township_officer", "township", False)}),
    ("ExitProposed", {"exit_id": "e1", "step": "exit_consent"}, {("village_cadre", "village", True), ("helper", "helper", True)}),
    ("ExitNoticeClosed", {"exit_id": "e1", "step": "township_verification"}, {("township_officer", "township", True)}),
    ("ExitTownshipVerified", {"exit_id": "e1", "step": "county_decision"}, {("county_officer", "county", True)}),
    ("ExitStepOverdue", {"exit_id": "e1", "step": "exit_consent"}, {("township_officer", "township", True)}),
    ("ExitStepOverdue", {"exit_id": "e1", "step": "county_decision"}, {("county_officer", "county", True)}),
    ("LookBackDue", {"exit_id": "e1", "due_on": "2027-06-01"}, {("township_officer", "township", True)}),
    ("ExitRollbackRequested", {"exit_id": "e1", "reason": "r"}, {("county_officer", "county", True)}),
    ("ExitRolledBack", {"exit_id": "e1", "reason": "r"}, {("township_officer", "township", False), ("helper", "helper", False)}),
    ("FilingOverdue", {"level": "township", "period": "2026-11", "due_on": "2026-11-25"},
     {("county_officer", "county", True), ("township_officer", "township", True)}),
    ("WarningUnmatched", {"warning_id": "w1", "department": "civil_affairs", "source_record_id": "r", "indicator": "i"},
     {("department_system", "department", False)}),
]


@pytest.mark.parametrize("event_type, fields, told", EXPECTED, ids=[f"{e[0]}-{i}" for i, e in enumerate(EXPECTED)])
def test_the_shipped_table_tells_each_event_to_its_roles(event_type, fields, told):
    payload = {"household_id": "H1", "case_id": "c1", "due_date": "2026-12-20", **fields}
    routes = TABLE.routes(event_type, payload, VILLAGE)
    assert {(r.rule.role, r.rule.level, r.rule.task) for r in routes} == told
    for route in routes:
        assert route.subject_zh and route.subject_en and "{" not in route.subject_zh + route.reference


def test_the_next_step_closes_the_tasks_of_its_case_and_an_overdue_report_closes_none():
    assert TABLE.closes("HouseholdVerified", {"case_id": "c1", "step": "village_deliberation"}) == ["case:c1"]
    assert TABLE.closes("CaseStepOverdue", {"case_id": "c1", "step": "verification_visit"}) == []
    assert TABLE.closes("PlanGapClosed", {"household_id": "H1", "gap": "risk_unanswered", "risk_type": "illness"}) == \
        ["gap:H1:risk_unanswered:illness"]


def test_an_event_without_a_region_goes_nowhere_and_levels_count_from_the_village():
    assert TABLE.routes("VerificationCaseOpened", {"case_id": "c"}, None) == []
    [route] = TABLE.routes("PublicNoticeClosed", {"case_id": "c", "step": "township_review"}, VILLAGE)
    assert (route.region_at("township"), route.region_at("county")) == ("410721001", "410721")


@pytest.mark.parametrize("line, message", [
    ("NoSuchEvent,,village_cadre,village,k,yes,,no,no,r,t,t", "line 2, event_types: no event type 'NoSuchEvent'"),
    ("VerificationCaseOpened,,mayor,village,k,yes,,no,no,r,t,t", "line 2, role: no role 'mayor'"),
    ("VerificationCaseOpened,,village_cadre,street,k,yes,,no,no,r,t,t", "line 2, level: one of"),
    ("VerificationCaseOpened,,village_cadre,village,k,maybe,,no,no,r,t,t", "line 2, task: yes or no"),
    ("VerificationCaseOpened,,village_cadre,village,k,yes,two,no,no,r,t,t", "line 2, due_working_days"),
    ("VerificationCaseOpened,,village_cadre,village,k,yes,,no,no,case:{case_number},t,t",
     "line 2, reference: VerificationCaseOpened has no field case_number"),
    ("VerificationCaseOpened,step,village_cadre,village,k,yes,,no,no,r,t,t", "line 2, when: write field=value"),
])
def test_a_wrong_routing_table_is_refused_naming_line_and_column(line, message):
    header = (DATA / "routing.csv").read_text(encoding="utf-8").splitlines()[0]
    with pytest.raises(RoutingError, match=message.replace("(", r"\(").replace("{", r"\{")):
        RoutingTable.parse(f"{header}\n{line}\n")


CALENDAR = working_calendar(None)


@pytest.mark.parametrize("start, days, expected", [
    (date(2026, 12, 4), 1, date(2026, 12, 7)),  # Friday + 1: Monday
    (date(2026, 12, 5), 1, date(2026, 12, 8)),  # from a Saturday: counted from Monday
    (date(2026, 9, 30), 1, date(2026, 10, 8)),  # National Day holidays 1-7 October
    (date(2026, 10, 9), 1, date(2026, 10, 10)),  # Saturday 10 October is a make-up working day
    (date(2026, 2, 13), 1, date(2026, 2, 14)),  # and so is Saturday 14 February, before the Spring Festival
    (date(2026, 12, 7), -1, date(2026, 12, 4)),  # a working day before Monday: Friday
])
def test_working_days_skip_weekends_and_holidays_and_count_make_up_days(start, days, expected):
    moment = datetime(start.year, start.month, start.day, 9, 0, tzinfo=CST)
    assert CALENDAR.add_working_days(moment, days, CST) == datetime.combine(expected, moment.timetz())


def test_a_calendar_file_with_a_bad_row_is_refused(tmp_path: Path):
    bad = tmp_path / "cal.csv"
    bad.write_text("date,kind,name\n2026-13-01,holiday,x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2"):
        WorkingCalendar.from_csv(bad)


def test_a_village_task_is_reminded_then_escalated_to_township_and_county_in_working_days():
    due = datetime(2026, 12, 4, 0, 0, tzinfo=CST)  # the end of Thursday 3rd
    now = datetime(2026, 12, 1, 9, 0, tzinfo=CST)
    steps = plan_schedule(due_at=due, level="village", role="village_cadre", now=now, calendar=CALENDAR, tz=CST,
                          remind_days_before=1, escalate_after_days=[1, 2])
    assert [(s.action, s.level, s.role, s.at) for s in steps] == [
        ("remind", "village", "village_cadre", datetime(2026, 12, 3, 0, 0, tzinfo=CST)),
        ("escalate", "township", "township_officer", datetime(2026, 12, 7, 0, 0, tzinfo=CST)),
        ("escalate", "county", "county_officer", datetime(2026, 12, 8, 0, 0, tzinfo=CST)),
    ]
    late = plan_schedule(due_at=due, level="township", role="township_officer", now=due + timedelta(hours=1),
                         calendar=CALENDAR, tz=CST, remind_days_before=1, escalate_after_days=[1, 2])
    assert [(s.action, s.level) for s in late] == [("escalate", "county")], "a reminder in the past is not planned"
    assert plan_schedule(due_at=None, level="village", role="village_cadre", now=now, calendar=CALENDAR, tz=CST,
                         remind_days_before=1, escalate_after_days=[1]) == []
    assert all(s.at.tzinfo for s in steps) and steps[0].at.utcoffset() == timedelta(hours=8)
