"""Pure rules, no I/O: ID numbers, household registration, warnings, clue routing, the hash chain,
payload upcasting."""
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.base import EventPayload, decode_payload, upcaster
from contracts.envelope import verify_chain
from contracts.intake import HouseholdRegistered, HouseholdUpdated, RiskClueRaised
from contracts.reference import MissingRegionYearValue
from contracts.screening import ClueAttachedToCase, VerificationCaseOpened, SubjectRiskAdded
from contracts.vocabulary import PriorityGroup, ClueChannel, LaborCapacity, RiskType
from services.intake import domain as intake
from services.screening.domain import MonitoredSubject, OpenCase, take_clue
from tests.factories import envelope

# --- ID numbers (GB 11643) ---------------------------------------------------------------


def test_a_published_example_id_number_has_x_as_its_check_character():
    assert intake.id_check_digit("11010519491231002") == "X"
    assert intake.parse_id_number("11010519491231002x") == date(1949, 12, 31)


@given(st.dates(date(1900, 1, 1), date(2025, 12, 31)), st.integers(0, 999), st.sampled_from(["410721", "340421"]))
def test_every_number_with_its_computed_check_digit_parses_and_any_other_digit_fails(born, sequence, region):
    first17 = f"{region}{born:%Y%m%d}{sequence:03d}"
    check = intake.id_check_digit(first17)
    assert intake.parse_id_number(first17 + check) == born
    wrong = next(c for c in "0123456789X" if c != check)
    with pytest.raises(intake.InvalidIdNumber, match="check digit"):
        intake.parse_id_number(first17 + wrong)


@pytest.mark.parametrize("bad", ["41072119800101123", "4107211980010112345", "41072119800A01123X",
                                 "٤١٠٧٢١١٩٨٠٠١٠١٠٠١X"])  # the last: digits of another script
def test_wrong_length_or_letters_are_refused(bad):
    with pytest.raises(intake.InvalidIdNumber, match="17 digits"):
        intake.parse_id_number(bad)


def test_a_birth_date_that_is_no_date_is_refused_even_with_a_right_check_digit():
    first17 = "41072119800230001"
    with pytest.raises(intake.InvalidIdNumber, match="not a date"):
        intake.parse_id_number(first17 + intake.id_check_digit(first17))


def test_id_numbers_are_masked_to_region_and_last_four():
    assert intake.mask_id_number("11010519491231002X") == "110105********002X"


def test_names_shown_outside_the_registry_keep_only_their_first_and_last_character():
    assert [intake.mask_name(n) for n in ("张三明", "张三", "欧阳小明", "张", " 李四 ")] == ["张*明", "张*", "欧**明", "*", "李*"]


def test_the_head_of_household_is_the_member_registered_as_head():
    from types import SimpleNamespace as Member

    family = [Member(relation="child", name="张小"), Member(relation="head", name="张三明")]
    assert intake.head_of_household(family).name == "张三明"
    assert intake.head_of_household(family[:1]) is None


# --- households --------------------------------------------------------------------------


def facts(**overrides) -> intake.HouseholdFacts:
    member = intake.Member("m-1", "head", date(1980, 6, 15), LaborCapacity.FULL, False, False)
    values = dict(household_id="H1", region_code="410721001001", group="3", poverty_status="ordinary",
                  grid_worker_id="gw-1", members=(member,))
    values.update(overrides)
    return intake.HouseholdFacts(**values)


def test_a_new_household_is_registered_with_ages_not_birth_dates():
    [event] = intake.register_or_update(None, facts(), today=date(2026, 6, 14))
    assert isinstance(event, HouseholdRegistered)
    assert event.members[0].age == 45  # the day before the 46th birthday


def test_registering_the_same_facts_again_changes_nothing_and_new_facts_update():
    today = date(2026, 11, 24)
    [registered] = intake.register_or_update(None, facts(), today)
    assert intake.register_or_update(registered, facts(), today) == []
    [updated] = intake.register_or_update(registered, facts(grid_worker_id="gw-2"), today)
    assert isinstance(updated, HouseholdUpdated) and updated.grid_worker_id == "gw-2"


MEDICAL = ("medical_insurance", "high_medical_expense")
THRESHOLDS = intake.IndicatorThresholds({(*MEDICAL, "410721", 2026): Decimal("10000"),
                                         (*MEDICAL, "410721001", 2026): Decimal("8000")})
VILLAGE = "410721002001"


def judge(department, indicator, amount, over_threshold=None, region_code=VILLAGE, year=2026):
    return intake.judge_warning(department, indicator, None if amount is None else Decimal(amount), over_threshold,
                                region_code, year, THRESHOLDS)


def test_warnings_map_to_risk_types_through_the_catalogue():
    assert judge("civil_affairs", "new_dibao", None).risk_types == (RiskType.INCOME_DROP,)
    assert judge(*MEDICAL, "10000").risk_types == (RiskType.ILLNESS, RiskType.EXPENSE_SURGE)
    with pytest.raises(intake.UnknownIndicator, match="no indicator"):
        judge("civil_affairs", "lottery_win", None)
    with pytest.raises(intake.UnknownIndicator, match="unknown department"):
        judge("tax", "new_dibao", None)


def test_an_amount_under_the_threshold_of_the_households_region_and_year_points_to_no_risk():
    below = judge(*MEDICAL, "9999.99")
    assert below.below_threshold and below.risk_types == () and below.threshold == Decimal("10000")
    assert judge(*MEDICAL, "10000").threshold == Decimal("10000") and not judge(*MEDICAL, "10000").below_threshold
    # the township 410721001 has its own threshold: the most specific prefix wins
    assert not judge(*MEDICAL, "8000", region_code="410721001003").below_threshold
    assert judge(*MEDICAL, "7999.99", region_code="410721001003").threshold == Decimal("8000")


def test_a_departments_own_judgement_of_its_threshold_is_taken_as_given():
    over = judge(*MEDICAL, "10", over_threshold=True)
    assert over.risk_types == (RiskType.ILLNESS, RiskType.EXPENSE_SURGE) and over.threshold is None
    under = judge(*MEDICAL, "50000", over_threshold=False)
    assert under.below_threshold and under.threshold is None
    # taken as given, the table is not asked: a region and year it lacks are no error
    assert not judge(*MEDICAL, None, over_threshold=True, region_code="340421001001", year=2019).below_threshold
    assert judge("civil_affairs", "new_dibao", None, over_threshold=True).risk_types == (RiskType.INCOME_DROP,)


def test_a_region_and_year_without_a_threshold_is_a_configuration_error_naming_the_row_to_add():
    with pytest.raises(MissingRegionYearValue) as missing:
        judge(*MEDICAL, "20000", year=2019)
    assert str(missing.value) == (
        "no indicator threshold of medical_insurance/high_medical_expense for region 410721002001 in 2019: add a row "
        "(department,indicator,prefix,year,yuan) for it or for a prefix of it to the indicator-thresholds table "
        "(FANGPIN_INDICATOR_THRESHOLDS), e.g. medical_insurance,high_medical_expense,410721002001,2019,<yuan>")
    with pytest.raises(MissingRegionYearValue, match="region 340421001001 in 2026"):
        judge(*MEDICAL, "20000", region_code="340421001001")


def test_a_warning_that_cannot_be_judged_as_sent_names_the_field_to_change():
    assert intake.warning_problem("civil_affairs", "new_dibao", None, None) is None
    assert intake.warning_problem(*MEDICAL, Decimal("1"), None) is None
    assert intake.warning_problem(*MEDICAL, None, True) is None
    field, code, reason = intake.warning_problem(*MEDICAL, None, None)
    assert (field, code) == ("amount", "amount_or_judgement_missing") and "give the amount, or over_threshold" in reason
    field, code, reason = intake.warning_problem("civil_affairs", "new_dibao", None, False)
    assert (field, code) == ("over_threshold", "over_threshold_without_threshold") and "no threshold" in reason
    assert intake.warning_problem("civil_affairs", "lottery_win", None, None)[:2] == ("indicator", "indicator_unknown")


def test_the_thresholds_table_holds_only_indicators_the_catalogue_gives_a_threshold():
    with pytest.raises(ValueError, match="civil_affairs/new_dibao is not an indicator with a threshold"):
        intake.IndicatorThresholds({("civil_affairs", "new_dibao", "410721", 2026): Decimal("1")})
    with pytest.raises(ValueError, match="medical_insurance/high_medical_expence is not an indicator"):
        intake.IndicatorThresholds({("medical_insurance", "high_medical_expence", "410721", 2026): Decimal("1")})


@pytest.mark.parametrize("department, indicator, risks, observed, status, expected", [
    ("civil_affairs", "new_dibao", [RiskType.INCOME_DROP], 2026, "ordinary", [PriorityGroup.NEW_ALLOWANCE_OR_EXTREME_POVERTY]),
    ("civil_affairs", "new_tekun", [RiskType.LACK_OF_LABOUR], 2026, "ordinary", [PriorityGroup.NEW_ALLOWANCE_OR_EXTREME_POVERTY]),
    ("civil_affairs", "new_dibao", [RiskType.INCOME_DROP], 2025, "ordinary", []),  # not this year's
    ("rural_revitalization", "income_fell_last_year", [RiskType.INCOME_DROP], 2026, "out_of_poverty", [PriorityGroup.INCOME_FELL_LAST_YEAR]),
    ("rural_revitalization", "income_fell_two_years", [RiskType.INCOME_DROP], 2026, "out_of_poverty", [PriorityGroup.INCOME_FELL_LAST_YEAR]),
    ("rural_revitalization", "income_fell_last_year", [RiskType.INCOME_DROP], 2026, "ordinary", []),  # never poor
    ("rural_revitalization", "quarterly_income_fall", [RiskType.INCOME_DROP], 2026, "out_of_poverty", [PriorityGroup.QUARTERLY_INCOME_FALL]),
    ("rural_revitalization", "quarterly_income_fall", [RiskType.INCOME_DROP], 2025, "out_of_poverty", []),
    ("human_resources", "unemployment", [RiskType.UNSTABLE_EMPLOYMENT], 2020, "ordinary", [PriorityGroup.SHOCK]),
    (None, None, [RiskType.ACCIDENT, RiskType.ILLNESS], 2026, "ordinary", [PriorityGroup.SHOCK]),  # a visit or declaration
    (None, None, [RiskType.ILLNESS], 2026, "out_of_poverty", []),
    ("civil_affairs", "relief_application", [RiskType.EXPENSE_SURGE], 2024, "ordinary", [PriorityGroup.RELIEF_APPLICATION]),
])
def test_priority_groups_of_the_concentrated_screening(department, indicator, risks, observed, status, expected):
    assert intake.priority_groups(department, indicator, risks, observed, status, current_year=2026) == expected


def test_the_groups_of_the_year_are_those_a_clue_of_another_year_is_not_in():
    """GROUPS_OF_THE_YEAR (what ?priority_group=&as_of= holds to as_of's year) says what priority_groups does."""
    facts = [("civil_affairs", "new_dibao"), ("civil_affairs", "new_tekun"), ("civil_affairs", "relief_application"),
             ("rural_revitalization", "income_fell_last_year"), ("rural_revitalization", "quarterly_income_fall")]
    of_the_year = set()
    for department, indicator in facts:
        for risks in ([RiskType.INCOME_DROP], [RiskType.ACCIDENT]):
            same = intake.priority_groups(department, indicator, risks, 2025, "out_of_poverty", current_year=2025)
            other = intake.priority_groups(department, indicator, risks, 2025, "out_of_poverty", current_year=2026)
            of_the_year |= set(same) - set(other)
    assert of_the_year == intake.GROUPS_OF_THE_YEAR


def test_a_december_warning_raised_in_january_is_in_decembers_years_group():
    """'This year' is the year of the clue's own facts, not of the clock that raises it (issue 14)."""
    from datetime import datetime, timedelta, timezone

    import orjson

    from services.intake.commands import clue_on_its_own, raise_clue
    from services.intake.projections import CLUE_COLUMNS, clue_record
    from services.intake.store import HouseholdRef

    east8 = timezone(timedelta(hours=8))
    january = datetime(2026, 1, 5, 2, 0, tzinfo=timezone.utc)
    household = HouseholdRef("H1", "410721001001", "ordinary")
    for observed_at, year in ((datetime(2025, 12, 28, 9, 0, tzinfo=east8), 2025),
                              (datetime(2026, 1, 1, 5, 0, tzinfo=east8), 2026),  # 2025 in UTC: the local year counts
                              (None, 2026)):  # no date of its own: the year it is raised in
        clue = raise_clue("c1", household, ClueChannel.DEPARTMENT_WARNING, january, [RiskType.INCOME_DROP],
                          department="civil_affairs", source_record_id="MCA-1", indicator="new_dibao",
                          observed_at=observed_at)
        assert clue["priority_groups"] == [PriorityGroup.NEW_ALLOWANCE_OR_EXTREME_POVERTY.value]
        # The row the projection writes from the event as stored (its payload written out as JSON).
        _, [new] = clue_on_its_own(clue)
        as_stored = orjson.loads(orjson.dumps(new.payload.model_dump(mode="json")))
        assert dict(zip(CLUE_COLUMNS, clue_record(as_stored, household.region_code, january)))["period_year"] == year


# --- screening ---------------------------------------------------------------------------


def clue(clue_id: str, *risks: RiskType) -> RiskClueRaised:
    return RiskClueRaised(clue_id=clue_id, household_id="H1", channel=ClueChannel.DEPARTMENT_WARNING,
                          source={"department": "civil_affairs", "source_record_id": clue_id}, risk_types=list(risks))


def test_the_first_clue_opens_a_case_due_after_the_configured_days():
    [opened] = take_clue(None, clue("c1", RiskType.ILLNESS), "410721001001", "case-1", date(2026, 11, 24), 7)
    assert isinstance(opened, VerificationCaseOpened)
    assert (opened.case_id, opened.step, opened.due_date) == ("case-1", "verification_visit", date(2026, 12, 1))


def test_later_clues_attach_to_the_open_case_once():
    case = OpenCase("case-1", "H1", ("c1",))
    [attached] = take_clue(case, clue("c2", RiskType.DISASTER), "410721001001", "unused", date(2026, 11, 24), 7)
    assert isinstance(attached, ClueAttachedToCase) and attached.case_id == "case-1"
    assert take_clue(case, clue("c1"), "410721001001", "unused", date(2026, 11, 24), 7) == []


def test_a_clue_about_a_monitored_subject_is_a_new_risk_not_a_case():
    subject = MonitoredSubject("H1", ("c0",))
    [added] = take_clue(None, clue("c2", RiskType.DISASTER), "410721001001", "unused", date(2026, 11, 24), 7, subject)
    assert isinstance(added, SubjectRiskAdded) and added.risk_types == [RiskType.DISASTER]
    assert take_clue(None, clue("c0"), "410721001001", "unused", date(2026, 11, 24), 7, subject) == []
    # No longer monitored (exited, removed): the subject is not passed, and a new risk opens a case.
    [opened] = take_clue(None, clue("c3", RiskType.ILLNESS), "410721001001", "case-2", date(2026, 11, 24), 7, None)
    assert isinstance(opened, VerificationCaseOpened)


# --- the hash chain and upcasting --------------------------------------------------------------


def chain(length: int):
    events, prev = [], None
    for position in range(1, length + 1):
        events.append(envelope(payload={"n": position}, stream_id="s", position=position, prev_hash=prev))
        prev = events[-1].hash
    return events


def test_an_untouched_chain_verifies_and_survives_a_json_round_trip():
    events = chain(3)
    assert verify_chain(events) == []
    assert verify_chain([type(e).from_json(e.to_json()) for e in events]) == []


def test_an_altered_a_missing_and_a_reordered_event_are_each_found():
    events = chain(3)
    altered = [events[0], events[1].model_copy(update={"payload": {"n": 99}}), events[2]]
    assert any("altered" in p for p in verify_chain(altered))
    assert any("missing" in p for p in verify_chain([events[0], events[2]]))
    assert any("prev_hash" in p for p in verify_chain([events[1], events[0], events[2]]))


class UnitTestRenamed(EventPayload):
    producer = "tests"
    schema_version = 2
    full_name: str


@upcaster("UnitTestRenamed", from_version=1)
def _rename(old: dict) -> dict:
    return {"full_name": old["name"]}


def test_an_old_payload_is_upcast_before_it_is_read():
    old = envelope(event_type="UnitTestRenamed", payload={"name": "王五"})
    assert old.schema_version == 1
    assert decode_payload(old) == UnitTestRenamed(full_name="王五")
    with pytest.raises(LookupError):
        decode_payload(envelope(event_type="NoSuchEvent"))
